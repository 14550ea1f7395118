r"""Write a processed test set: every image of every class through one crop, resize and JPEG chain, from a plan.

  python -m freqforensics.tools.process --source_dir=SRC --out_dir=OUT [--seed=0] [--size=0] \
      [--min_crop=0.8] [--jpeg_quality=65,100] [--num_threads=0] [--overwrite]

Per image, from the seed and its relative path: a square crop of random side (`--min_crop` x
`--size` up to the short side) and position, a resize to `--size` (0 = the images' median short
side; anti-aliased when shrinking, bicubic when enlarging) and a JPEG re-save at a quality uniform
on `--jpeg_quality` (Corvi et al., ICASSP 2023). SRC's layout is kept (class folders, or
`ROOT/<generator>/[<subset>/]{0_real,1_fake}/`); OUT gets the images, `plan.csv` (the per-image
plan), `process.json` and `manifest.jsonl`. An interrupted run resumes; an OUT holding a copy of other
settings is refused unless `--overwrite` (which removes only what that copy wrote). Evaluate a model
on it with `python -m freqforensics.main --config=... --workdir=RUN --config.mode=eval
--config.eval.source_dir=OUT`. The library is `freqforensics.data.processing_plan`.
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
  _F["num_threads"] = flags.DEFINE_integer("num_threads", 0, "Threads; 0 = one per core.", lower_bound=0)
  _F["overwrite"] = flags.DEFINE_bool("overwrite", False, "Replace a copy of other settings in --out_dir.")
  _F["progress"] = flags.DEFINE_bool("progress", True, "Progress bar on stderr.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}: options take the form --name=value")
  for name in ("source_dir", "out_dir"):
    if not _F[name].value:
      cli.fail("pass --source_dir=DIR (one folder per class) and --out_dir=DIR (the processed copy)")
  try:
    quality = tuple(int(v) for v in _F["jpeg_quality"].value)
  except ValueError:
    raise UserError("--jpeg_quality must be one integer or low,high (e.g. 65,100)") from None
  chain = processing_plan.Chain(size=_F["size"].value, min_crop=_F["min_crop"].value, jpeg_quality=quality)
  counts = processing_plan.process_folder(
    _F["source_dir"].value,
    _F["out_dir"].value,
    chain,
    seed=_F["seed"].value,
    num_threads=_F["num_threads"].value,
    overwrite=_F["overwrite"].value,
    progress=_F["progress"].value,
  )
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
