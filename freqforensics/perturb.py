r"""Writes a perturbed copy of a class-folder directory, for use with other tools.

  python -m freqforensics.perturb --source_dir=SRC --out_dir=OUT --kind=combined [--probability=0.5] \
      [--seed=0] [--jpeg_quality=10,74] [--blur_kernel=3,5,7,9] [--blur_sigma=] [--noise_std=5,20] \
      [--crop_fraction=0.05,0.2] [--num_threads=0] [--overwrite]

Every image below SRC (one folder per class, recursive) is decoded at its own size (grayscale
stays grayscale, everything else becomes RGB), perturbed with probability `--probability` by
`--kind` (`data/perturb.py`: jpeg | blur | noise | crop | combined | all) and written to the same
relative path under OUT: as a lossless PNG, or, when the last perturbation is JPEG, as the JPEG
file itself (the point of that perturbation). The draws for a file depend only on the seed and its
relative path, so a copy is reproducible file by file.

OUT also gets `perturb.json` (the settings) and `manifest.jsonl` (per source file: the output
file and the perturbations applied with their strengths, or why it could not be read). An
interrupted run resumes from the manifest; OUT holding a copy of other settings is refused unless
`--overwrite` (which removes only the files that copy wrote), and a non-empty OUT that is not such
a copy is always refused. No JAX: this runs anywhere Pillow and SciPy do.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from freqforensics import cli
from freqforensics.data import images
from freqforensics.data import perturb as P
from freqforensics.errors import UserError

_VERSION = 1
_CHUNK = 64  # files decoded, perturbed and written (in threads) between manifest updates


def file_rng(seed: int, relative_path: str) -> np.random.Generator:
  """The generator of one file's draws: a function of the seed and the file's relative path only."""
  digest = hashlib.sha256(relative_path.encode()).digest()
  return np.random.default_rng([int(seed) % (1 << 63), int.from_bytes(digest[:8], "little")])


def read_image(path: Path) -> np.ndarray:
  """Decodes `path` at its own size to uint8 `(H, W, 1)` (grayscale sources) or `(H, W, 3)`."""
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = Image.fromarray((np.asarray(im, np.float64) / 257.0).round().astype(np.uint8))
      gray = im.mode in ("1", "L", "LA", "I", "F")
      im = im.convert("L" if gray else "RGB")
      return np.asarray(im, np.uint8).reshape(im.height, im.width, 1 if gray else 3)
  except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
    raise images.ImageDecodeError(f"{type(e).__name__}: {e}") from e


def _output_names(files: Sequence[Path], root: Path) -> dict[Path, str]:
  """Relative output names before the extension: `a/x.jpg` -> `a/x`, or `a/x.jpg` where `a/x.png` exists too."""
  stems = collections.Counter(str(f.relative_to(root).with_suffix("")) for f in files)
  return {f: str(f.relative_to(root).with_suffix("")) if stems[str(f.relative_to(root).with_suffix(""))] == 1
          else str(f.relative_to(root)) for f in files}


def _write_atomic(path: Path, data: bytes) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(data)
  os.replace(tmp, path)


def _one(path: Path, rel: str, out_name: str, out_dir: Path, perturbation: P.Perturbation, seed: int) -> dict:
  try:
    image = read_image(path)
  except images.ImageDecodeError as e:
    return {"source": rel, "error": str(e)}
  rng = file_rng(seed, rel)
  steps = perturbation.sample(rng)
  out, jpeg_bytes = P.apply(image, steps, rng)
  if jpeg_bytes is not None:
    name, data = out_name + ".jpg", jpeg_bytes
  else:
    buf = io.BytesIO()
    Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out).save(buf, format="PNG")
    name, data = out_name + ".png", buf.getvalue()
  _write_atomic(out_dir / name, data)
  return {"source": rel, "output": name, "perturbations": steps}


def _prepare_out(out_dir: Path, source: Path, settings: dict, overwrite: bool) -> dict[str, dict]:
  """Checks OUT, returns the manifest rows of a copy to resume (empty for a fresh one)."""
  src, out = source.resolve(), out_dir.resolve()
  if out == src or src in out.parents or out in src.parents:
    raise UserError(f"--out_dir={out_dir} and --source_dir={source} overlap: write the copy to a separate folder")
  settings_file, manifest = out_dir / "perturb.json", out_dir / "manifest.jsonl"
  if settings_file.is_file():
    old = json.loads(settings_file.read_text())
    if old != settings:
      if not overwrite:
        raise UserError(f"{out_dir} holds a perturbed copy of other settings: use another --out_dir, or --overwrite"
                        " to replace that copy")
      rows = [json.loads(line) for line in manifest.read_text().splitlines()] if manifest.is_file() else []
      for row in rows:
        if "output" in row:
          (out_dir / row["output"]).unlink(missing_ok=True)
      manifest.unlink(missing_ok=True)
      settings_file.unlink()
      for d in sorted((p for p in out_dir.rglob("*") if p.is_dir()), reverse=True):  # emptied class folders
        if not any(d.iterdir()):
          d.rmdir()
  elif out_dir.is_dir() and any(out_dir.iterdir()):
    raise UserError(f"--out_dir={out_dir} is not empty and holds no perturbed copy (perturb.json): give a new or"
                    " empty folder")
  out_dir.mkdir(parents=True, exist_ok=True)
  if not settings_file.is_file():
    settings_file.write_text(json.dumps(settings, indent=2) + "\n")
    return {}
  rows = [json.loads(line) for line in manifest.read_text().splitlines()] if manifest.is_file() else []
  return {row["source"]: row for row in rows if "error" in row or (out_dir / row["output"]).is_file()}


def perturb_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike, perturbation: P.Perturbation, *,
                   seed: int = 0, num_threads: int = 0, overwrite: bool = False,
                   progress: bool = True) -> dict[str, Any]:
  """Writes the perturbed copy; returns counts (`written`, `resumed`, `skipped`, per perturbation)."""
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  folders = images.list_class_folders(source_dir, min_classes=1)
  out_dir = Path(out_dir).expanduser()
  settings = {"version": _VERSION, "source_dir": str(folders.root.resolve()), "seed": int(seed),
              "perturbation": dataclasses.asdict(perturbation)}
  settings = json.loads(json.dumps(settings))  # tuples -> lists, as read back
  done = _prepare_out(out_dir, folders.root, settings, overwrite)
  files = [f for name in folders.class_names for f in folders.files[name]]
  names = _output_names(files, folders.root)
  todo = [f for f in files if str(f.relative_to(folders.root)) not in done]
  rows = list(done.values())
  with concurrent.futures.ThreadPoolExecutor(num_threads or os.cpu_count() or 1) as pool, \
      open(out_dir / "manifest.jsonl", "w") as manifest, \
      tqdm(total=len(files), initial=len(files) - len(todo), unit="img", desc="perturb", disable=not progress) as bar:
    for row in rows:  # the resumed rows first: the manifest is rewritten whole, then appended to
      manifest.write(json.dumps(row) + "\n")
    it = iter(todo)
    while chunk := list(itertools.islice(it, _CHUNK)):
      new = list(pool.map(lambda f: _one(f, str(f.relative_to(folders.root)), names[f], out_dir, perturbation, seed),
                          chunk))
      for row in new:
        manifest.write(json.dumps(row) + "\n")
      manifest.flush()
      os.fsync(manifest.fileno())
      rows += new
      bar.update(len(chunk))
  kinds = collections.Counter("+".join(s["name"] for s in r["perturbations"]) or "none"
                              for r in rows if "perturbations" in r)
  return {"written": sum("output" in r for r in rows), "resumed": len(done), "skipped": sum("error" in r for r in rows),
          "perturbations": dict(sorted(kinds.items())), "out_dir": str(out_dir)}


# --- Command line ---------------------------------------------------------------------------------

_FLAGS: dict[str, Any] = {}


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top

  d = P.Perturbation()
  _FLAGS["source_dir"] = flags.DEFINE_string("source_dir", None, "Class-folder directory to copy.")
  _FLAGS["out_dir"] = flags.DEFINE_string("out_dir", None, "Where the perturbed copy goes (new or empty folder).")
  _FLAGS["kind"] = flags.DEFINE_enum("kind", "combined", list(P.KINDS), "Perturbation (combined: one per image).")
  _FLAGS["probability"] = flags.DEFINE_float("probability", d.probability, "Chance that an image is perturbed.")
  _FLAGS["seed"] = flags.DEFINE_integer("seed", 0, "Seed of the random draws.")
  for name, help_ in (("jpeg_quality", "JPEG quality: one value, or low,high (integers)"),
                      ("blur_kernel", "Gaussian kernel sizes (one drawn per image)"),
                      ("blur_sigma", "blur sigma: empty = from the kernel size (OpenCV), one value, or low,high"),
                      ("noise_std", "noise std in pixel units: one value, or low,high"),
                      ("crop_fraction", "share of height and width cut away: one value, or low,high")):
    _FLAGS[name] = flags.DEFINE_list(name, [f"{v:g}" for v in getattr(d, name)], help_ + ".")
  _FLAGS["num_threads"] = flags.DEFINE_integer("num_threads", 0, "Threads; 0 = one per core.", lower_bound=0)
  _FLAGS["overwrite"] = flags.DEFINE_bool("overwrite", False, "Replace a copy of other settings in --out_dir.")
  _FLAGS["progress"] = flags.DEFINE_bool("progress", True, "Progress bar on stderr.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}: options take the form --name=value")
  for name in ("source_dir", "out_dir"):
    if not _FLAGS[name].value:
      cli.fail(f"no --{name} given: pass --source_dir=DIR (one folder per class) and --out_dir=DIR (the copy)")
  try:
    ranges = {}
    for name in ("jpeg_quality", "blur_kernel", "blur_sigma", "noise_std", "crop_fraction"):
      try:
        ranges[name] = tuple(float(v) for v in _FLAGS[name].value)
      except ValueError:
        raise UserError(f"--{name} must be a comma-separated list of numbers") from None
    perturbation = P.Perturbation(_FLAGS["kind"].value, _FLAGS["probability"].value, **ranges)
    counts = perturb_folder(_FLAGS["source_dir"].value, _FLAGS["out_dir"].value, perturbation,
                            seed=_FLAGS["seed"].value, num_threads=_FLAGS["num_threads"].value,
                            overwrite=_FLAGS["overwrite"].value, progress=_FLAGS["progress"].value)
  except UserError as e:
    cli.fail(str(e))
  resumed = f" ({counts['resumed']} from an earlier, interrupted run)" if counts["resumed"] else ""
  print(f"wrote {counts['written']} images to {counts['out_dir']}{resumed}")
  for kind, n in counts["perturbations"].items():
    print(f"  {kind}: {n}")
  if counts["skipped"]:
    print(f"skipped {counts['skipped']} unreadable files (listed with the reason in manifest.jsonl)")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
