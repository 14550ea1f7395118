"""A processed test set from a per-image plan: one "social network" chain, applied alike to every class.

Run by `python -m freqforensics.tools.process`. After Corvi et al. (ICASSP 2023): per image, from the
seed and its relative path alone, a square crop of random side and position, a resize to one size and
a JPEG re-save at a random quality (`Chain`), so every class ends in one format, size and quality
distribution. `process_folder` writes the copy in the source's own layout with `plan.csv` and
`process.json`, through `folder_copy.copy_folder`; docs/format_shortcut.md gives the draws.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from pathlib import Path
from typing import Any, Unpack

import numpy as np
from PIL import Image

from freqforensics.data import folder_copy, images
from freqforensics.errors import UserError
from freqforensics.files import ownership

_VERSION = 1
PLAN = "plan.csv"
SETTINGS = "process.json"
COLUMNS = ("file", "output", "width", "height", "side", "left", "top", "size", "quality")


@dataclasses.dataclass(frozen=True)
class Chain:
  """The processing chain's distribution: target size, smallest crop (a fraction of it), JPEG qualities."""

  size: int = 0  # side of the processed images; 0 = the median short side of the images
  min_crop: float = 0.8  # smallest crop side, as a fraction of `size` (Corvi et al.: 160 of 200)
  jpeg_quality: tuple[int, int] = (65, 100)  # JPEG quality, uniform on these integers (inclusive)

  def __post_init__(self):
    q = tuple(int(v) for v in self.jpeg_quality)
    q = q * 2 if len(q) == 1 else q
    object.__setattr__(self, "jpeg_quality", q)
    if len(q) != 2 or not 1 <= q[0] <= q[1] <= 100:
      raise UserError(f"--jpeg_quality={self.jpeg_quality}: give one quality or low,high with 1 <= low <= high <= 100")
    if self.size < 0 or not 0 < self.min_crop <= 4:
      raise UserError(
        f"--size={self.size} / --min_crop={self.min_crop}: give a size >= 0 (0 = the images' median short side)"
        " and a smallest crop in (0, 4] times the size"
      )


def draw(seed: int, relative_path: str, width: int, height: int, chain: Chain) -> dict[str, Any]:
  """The plan row of one image of `width` x `height` (a function of these arguments only).

  Args:
    seed: the plan's seed.
    relative_path: the file's path relative to the source (the draws depend on it, never on the class).
    width: the image's width in pixels.
    height: the image's height in pixels.
    chain: the size, smallest crop and JPEG quality range drawn from.
  """
  rng = folder_copy.file_rng(seed, relative_path)
  short = min(width, height)
  side = int(rng.integers(min(short, math.ceil(chain.min_crop * chain.size)), short, endpoint=True))
  left, top = int(rng.integers(0, width - side, endpoint=True)), int(rng.integers(0, height - side, endpoint=True))
  quality = int(rng.integers(chain.jpeg_quality[0], chain.jpeg_quality[1], endpoint=True))
  return {
    "file": relative_path,
    "width": width,
    "height": height,
    "side": side,
    "left": left,
    "top": top,
    "size": chain.size,
    "quality": quality,
  }


def apply(image: np.ndarray, row: dict[str, Any]) -> bytes:
  """The JPEG file of one image `(H, W, C)` uint8 processed by its plan row: crop, resize, JPEG."""
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  side, size = int(row["side"]), int(row["size"])
  pil = pil.crop((int(row["left"]), int(row["top"]), int(row["left"]) + side, int(row["top"]) + side))
  if side > size:
    pil = pil.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=None)
  elif side < size:
    pil = pil.resize((size, size), Image.Resampling.BICUBIC)
  buf = io.BytesIO()
  pil.save(buf, format="JPEG", quality=int(row["quality"]))
  return buf.getvalue()


def median_short_side(files: list[Path]) -> int:
  """The median short side of image files, from their headers (`images.read_header`: a file it refuses,
  such as a decompression bomb, is left out here and skipped with its reason by the copy); 0 when none
  can be read."""
  sides = []
  for f in files:
    try:
      header = images.read_header(f)
    except images.ImageDecodeError:
      continue
    sides.append(min(header.width, header.height))
  return int(np.median(sides)) if sides else 0


def _one(
  path: Path, rel: str, out_name: str, out: ownership.OwnershipRecord, seed: int, chain: Chain
) -> dict[str, Any]:
  try:
    image = images.read_image(path)  # EXIF orientation applied: the plan is of the upright image
  except images.ImageDecodeError as e:
    return {"source": rel, "error": str(e)}
  row = draw(seed, rel, image.shape[1], image.shape[0], chain)
  folder_copy.write_output(out, out_name + ".jpg", apply(image, row))
  return dict(row, source=rel, output=out_name + ".jpg")


def read_plan(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
  """The rows of a processed copy's `plan.csv`, numbers as ints."""
  with open(Path(out_dir) / PLAN, newline="") as f:
    return [{k: (v if k in ("file", "output") else int(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def process_folder(
  source_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  chain: Chain | None = None,
  **options: Unpack[folder_copy.CopyOptions],
) -> dict[str, Any]:
  """Writes the processed copy of `source_dir` and its `plan.csv` into `out_dir`; returns counts and ranges.

  `source_dir` holds class folders or the cross-generator layout; `chain` defaults to `Chain()` (size 0:
  the images' median short side); `options` as `folder_copy.CopyOptions` says (`seed`: the plan's).
  """
  seed = options.get("seed", 0)
  chain = chain or Chain()
  folders = images.list_class_folders(source_dir, min_classes=1, option="--source_dir")
  files = [f for name in folders.class_names for f in folders.files[name]]
  if chain.size == 0:
    chain = dataclasses.replace(chain, size=median_short_side(files))
    if chain.size == 0:
      raise UserError(f"no image in {source_dir} can be read: nothing to process")
  settings = {"version": _VERSION, "seed": int(seed), "chain": dataclasses.asdict(chain)}
  rows, resumed = folder_copy.copy_folder(
    folders,
    out_dir,
    settings,
    lambda f, rel, name, out: _one(f, rel, name, out, seed, chain),
    settings_name=SETTINGS,
    what="processed copy",
    extras=(PLAN,),
    **folder_copy.copy_run(options),
  )
  plan = sorted((r for r in rows if "output" in r), key=lambda r: r["file"])
  buf = io.StringIO()
  writer = csv.DictWriter(buf, COLUMNS, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(plan)
  ownership.OwnershipRecord(Path(out_dir).expanduser()).write_text(PLAN, buf.getvalue())
  return {
    "written": len(plan),
    "resumed": resumed,
    "skipped": sum("error" in r for r in rows),
    "size": chain.size,
    "side": (min((r["side"] for r in plan), default=0), max((r["side"] for r in plan), default=0)),
    "quality": (min((r["quality"] for r in plan), default=0), max((r["quality"] for r in plan), default=0)),
    "out_dir": str(Path(out_dir).expanduser()),
  }
