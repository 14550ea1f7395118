r"""Write a processed test set: every image of every class through one crop, resize and JPEG chain, from a plan.

  python -m freqforensics.tools.process --source_dir=SRC --out_dir=OUT [--seed=0] [--size=0] \
      [--min_crop=0.8] [--jpeg_quality=65,100] [--num_threads=0] [--overwrite]

SRC's layout is kept; OUT gets the images, `plan.csv`, `process.json` and `manifest.jsonl`, and
resumes after an interruption. docs/format_shortcut.md describes the plan and how to evaluate on it.
The library is `freqforensics.data.processing_plan`.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from freqforensics.data import folder_copy, processing_plan
from freqforensics.errors import UserError
from freqforensics.tools import cli

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  d = processing_plan.Chain()
  _F["source_dir"] = flags.DEFINE_string(
    "source_dir", None, "Class-folder directory (or generator folders) to process."
  )
  _F["out_dir"] = flags.DEFINE_string("out_dir", None, "Where the processed copy goes (new or empty folder).")
  _F["seed"] = flags.DEFINE_integer("seed", 0, "Seed of the plan's per-image draws.", lower_bound=0)
  _F["size"] = flags.DEFINE_integer("size", d.size, "Side of the processed images; 0 = the median short side.")
  _F["min_crop"] = flags.DEFINE_float("min_crop", d.min_crop, "Smallest crop side, as a fraction of --size.")
  _F["jpeg_quality"] = flags.DEFINE_list(
    "jpeg_quality", [str(q) for q in d.jpeg_quality], "JPEG quality: one value, or low,high (uniform integers)."
  )
  cli.define_copy_flags(_F)


def main(argv: Sequence[str]) -> None:
  cli.flags_only(argv)
  for name in ("source_dir", "out_dir"):
    if not _F[name].value:
      cli.fail("pass --source_dir=DIR (one folder per class) and --out_dir=DIR (the processed copy)")
  try:
    quality = tuple(int(v) for v in _F["jpeg_quality"].value)
  except ValueError:
    raise UserError("--jpeg_quality must be one integer or low,high (e.g. 65,100)") from None
  chain = processing_plan.Chain(size=_F["size"].value, min_crop=_F["min_crop"].value, jpeg_quality=quality)
  counts = processing_plan.process_folder(_F["source_dir"].value, _F["out_dir"].value, chain, **cli.copy_options(_F))
  details = (
    f"{counts['size']}x{counts['size']} JPEG, crop sides {counts['side'][0]}..{counts['side'][1]},"
    f" qualities {counts['quality'][0]}..{counts['quality'][1]}; the plan: {counts['out_dir']}/plan.csv"
  )
  print(folder_copy.summary(counts, [details]))


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
