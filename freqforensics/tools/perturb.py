r"""Write a perturbed copy of a class-folder directory, for use with other tools.

  python -m freqforensics.tools.perturb --source_dir=SRC --out_dir=OUT --kind=combined [--probability=0.5] \
      [--seed=0] [--jpeg_quality=10,74] [--blur_kernel=3,5,7,9] [--blur_sigma=] [--noise_std=5,20] \
      [--crop_fraction=0.05,0.2] [--num_threads=0] [--overwrite]

Each image is read at its own size (EXIF orientation applied), perturbed with probability
`--probability` by `--kind` and written to the same relative path under OUT (PNG, or the JPEG file
itself when the last perturbation is JPEG), with `perturb.json` and `manifest.jsonl`. An interrupted
run resumes. The library is `freqforensics.data.folder_copy` (and the perturbations `data.distortions`).
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from freqforensics.data import distortions, folder_copy
from freqforensics.errors import UserError
from freqforensics.tools import cli

_F: dict[str, flags.FlagHolder] = {}
_RANGES = (
  ("jpeg_quality", "JPEG quality: one value, or low,high (integers)"),
  ("blur_kernel", "Gaussian kernel sizes (one drawn per image)"),
  ("blur_sigma", "blur sigma: empty = from the kernel size (OpenCV), one value, or low,high"),
  ("noise_std", "noise std in pixel units: one value, or low,high"),
  ("crop_fraction", "share of height and width cut away: one value, or low,high"),
)


def _define_flags() -> None:
  d = distortions.Perturbation()
  _F["source_dir"] = flags.DEFINE_string("source_dir", None, "Class-folder directory to copy.")
  _F["out_dir"] = flags.DEFINE_string("out_dir", None, "Where the perturbed copy goes (new or empty folder).")
  _F["kind"] = flags.DEFINE_enum("kind", "combined", list(distortions.KINDS), "Perturbation (combined: one per image).")
  _F["probability"] = flags.DEFINE_float("probability", d.probability, "Chance that an image is perturbed.")
  _F["seed"] = flags.DEFINE_integer("seed", 0, "Seed of the random draws.")
  for name, help_ in _RANGES:
    _F[name] = flags.DEFINE_list(name, [f"{v:g}" for v in getattr(d, name)], help_ + ".")
  cli.define_copy_flags(_F)


def main(argv: Sequence[str]) -> None:
  cli.flags_only(argv)
  for name in ("source_dir", "out_dir"):
    if not _F[name].value:
      cli.fail(f"no --{name} given: pass --source_dir=DIR (one folder per class) and --out_dir=DIR (the copy)")
  ranges = {}
  for name, _ in _RANGES:
    try:
      ranges[name] = tuple(float(v) for v in _F[name].value)
    except ValueError:
      raise UserError(f"--{name} must be a comma-separated list of numbers") from None
  perturbation = distortions.Perturbation(_F["kind"].value, _F["probability"].value, **ranges)
  counts = folder_copy.perturb_folder(_F["source_dir"].value, _F["out_dir"].value, perturbation, **cli.copy_options(_F))
  print(folder_copy.summary(counts, [f"{kind}: {n}" for kind, n in counts["perturbations"].items()]))


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
