"""Synthetic stand-ins for the paper's data sets: their folder layout and image geometry, our pixels.

CelebA, LSUN and FFHQ cannot be downloaded here, so each paper config's `:tiny` form runs on a
stand-in with the same class folders and the data set's geometry, so that the config's crop rule
does its real work: `celeba` 218x178 images with the synthetic image in the crop window, `lsun`
images of side x 4/3 side around a centred square, `ffhq` square images at the target size. The
pixels come from the synthetic data set (`synthetic`): photo crops for the real class, simulated
upsamplers for the generators.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from freqforensics.errors import UserError
from freqforensics.files import ownership
from freqforensics.generators import synthetic

MARKER = "standin.json"  # the parameters of a finished stand-in, written last


@dataclasses.dataclass(frozen=True)
class Layout:
  """A paper data set's class folders (real first) and the synthetic classes that stand in for them."""

  classes: tuple[str, ...]
  sources: tuple[str, ...]  # synthetic class per folder
  crop: str


LAYOUTS: dict[str, Layout] = {
  "celeba": Layout(
    ("0_celeba", "1_progan", "2_sngan", "3_cramergan", "4_mmdgan"),
    (synthetic.REAL_CLASS, "B_nearest", "C_bilinear", "D_transposed", "E_nearest"),
    "celeba",
  ),
  "lsun": Layout(
    ("0_lsun_bedroom", "1_progan", "2_sngan", "3_cramergan", "4_mmdgan"),
    (synthetic.REAL_CLASS, "B_nearest", "C_bilinear", "D_transposed", "E_nearest"),
    "center",
  ),
  "ffhq": Layout(("0_ffhq", "1_stylegan"), (synthetic.REAL_CLASS, "C_bilinear"), "none"),
}


def _place(image: np.ndarray, layout: str) -> np.ndarray:
  """The raw stand-in image holding `image` where the layout's crop rule finds it."""
  s = image.shape[0]
  if layout == "celeba":
    if s != 128:
      raise UserError(f"the CelebA stand-in needs 128x128 synthetic images (its crop window), got {s}")
    return np.pad(image, ((185 - 128, 218 - 185), (153 - 128, 178 - 153), (0, 0)), mode="reflect")
  if layout == "lsun":
    extra = s // 3
    return np.pad(image, ((0, 0), (extra // 2, extra - extra // 2), (0, 0)), mode="reflect")
  return image


def _older_standin(out: Path, spec: Layout) -> dict[str, str]:
  """What a version without ownership records wrote in `out`, recognised by its marker."""
  if not (out / MARKER).is_file():
    return {}
  return {MARKER: "file", ".synthetic": "tree", **dict.fromkeys(spec.classes, "tree")}


def write(
  layout: str,
  out_dir: str | os.PathLike,
  *,
  num_per_class: int,
  image_size: int,
  seed: int = 0,
  progress: bool = True,
  lowpass: float = 0.0,
  fingerprint: float = 1.0,
  jpeg_quality: int = 0,
) -> Path:
  """Writes (or reuses) the stand-in of `layout` in `out_dir` (synthetic images of `image_size`).

  `lowpass`, `fingerprint` and `jpeg_quality` are the synthetic data set's options (`synthetic.generate`).

  Args:
    layout: the data set whose geometry is copied (`celeba`, `lsun` or `ffhq`).
    out_dir: where the class folders go; an earlier stand-in of the same parameters is reused.
    num_per_class: images per class.
    image_size: the side of the synthetic image inside each file.
    seed: the seed of the synthetic data set drawn from.
    progress: a progress bar on stderr.
    lowpass: the synthetic data set's option (`synthetic.generate`).
    fingerprint: the synthetic data set's option.
    jpeg_quality: the synthetic data set's option.
  """
  if layout not in LAYOUTS:
    raise UserError(f"unknown stand-in layout {layout!r}: use one of {', '.join(LAYOUTS)}")
  spec = LAYOUTS[layout]
  out = Path(out_dir)
  marker = out / MARKER
  params = {"layout": layout, "num_per_class": num_per_class, "image_size": image_size, "seed": seed}
  # Options only when set, so stand-ins written before they existed are reused.
  params.update(
    {
      k: v
      for k, v, default in (
        ("lowpass", lowpass, 0.0),
        ("fingerprint", fingerprint, 1.0),
        ("jpeg_quality", jpeg_quality, 0),
      )
      if v != default
    }
  )
  if marker.is_file() and json.loads(marker.read_text()) == params:
    return out
  rec = ownership.OwnershipRecord(out, adopt=lambda folder: _older_standin(folder, spec))
  if out.exists() and any(out.iterdir()) and not rec.is_ours():
    raise UserError(f"{out} exists and is not a stand-in written by freqforensics: choose another directory")
  rec.add(MARKER)
  rec.add(".synthetic", *spec.classes, tree=True)
  bench = synthetic.generate(
    out / ".synthetic",
    num_per_class=num_per_class,
    image_size=image_size,
    seed=seed,
    generators=tuple(s for s in spec.sources if s != synthetic.REAL_CLASS),
    progress=progress,
    lowpass=lowpass,
    fingerprint=fingerprint,
    jpeg_quality=jpeg_quality,
  )
  marker.unlink(missing_ok=True)
  for folder, source in zip(spec.classes, spec.sources):
    (out / folder).mkdir(parents=True, exist_ok=True)
    for png in sorted((bench.out_dir / source).glob("*.png")):
      raw = _place(np.asarray(Image.open(png).convert("RGB")), layout)
      Image.fromarray(raw).save(out / folder / png.name)
  rec.write_text(MARKER, json.dumps(params))
  return out
