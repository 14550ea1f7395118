r"""Prepare a class-folder directory once: `python -m freqforensics.tools.prepare`.

  python -m freqforensics.tools.prepare --source_dir=DIR --out_dir=OUT [--image_size=128] \
      [--crop=center|celeba|none|resize] [--split=0.7,0.1,0.2] [--channels=3] [--overwrite] \
      [--num_workers=0] [--match_format=jpeg:90|jpeg:65-100] \
      [--runner=local|beam --beam_args="--runner=DirectRunner ..."]

OUT becomes a tensorflow-datasets dataset (`data.prepared_dir` of a config trains on it); docs/data.md
describes it. Exit code 0 when the dataset is complete (skips and warnings included), 2 on usage
errors. The library is `freqforensics.data.preparation`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging

from freqforensics import text
from freqforensics.data import crops, format_audit, format_matching, images, preparation, reader
from freqforensics.errors import UserError
from freqforensics.tools import cli


def parse_split(text: str) -> tuple[float, ...]:
  """`"0.7,0.1,0.2"` -> floats (fractions); `"100,20,30"` -> ints (counts); anything else is a UserError."""
  parts = [p.strip() for p in text.split(",")]
  try:
    if any(("." in p or "e" in p.lower()) for p in parts):
      return tuple(float(p) for p in parts)
    return tuple(int(p) for p in parts)
  except ValueError:
    raise UserError(f"--split={text!r} is not three numbers: use e.g. 0.7,0.1,0.2 or 100000,20000,30000") from None


def summary(ds: reader.PreparedDataset) -> str:
  """The lines printed after preparation: sizes per split, classes, and skips per reason."""
  m = ds.metadata
  sizes = ", ".join(f"{s} {ds.num_examples.get(s, 0):,}" for s in reader.SPLITS)
  h, w, c = ds.image_shape
  lines = [
    f"prepared {ds.path}: {sizes} images of {len(ds.label_names)} classes"
    f" ({', '.join(map(text.for_terminal, ds.label_names))}), {h}x{w}x{c}, crop {m.get('crop')}"
  ]
  reasons = m.get("skipped_by_reason") or {}
  if reasons:
    lines.append(
      f"skipped {sum(reasons.values()):,} files ("
      + ", ".join(f"{r}: {n}" for r, n in reasons.items())
      + f"), listed in {ds.path / reader.REPORT}"
    )
  if m.get("match_format"):
    lines.append(format_matching.describe(m["match_format"]))
  lines += [f"warning: {line}" for line in format_audit.findings(m.get("audit"))]
  return "\n".join(lines)


def _define_flags() -> None:
  flags.DEFINE_string("source_dir", None, "Class-folder directory: one folder of images per class.")
  flags.DEFINE_string("out_dir", None, "Where the prepared dataset goes (a new or empty folder, or one to resume).")
  flags.DEFINE_integer("image_size", 128, "Side of the square images stored.", lower_bound=1)
  flags.DEFINE_enum("crop", "center", list(crops.CROPS), "How images are brought to size (see data/crops.py).")
  flags.DEFINE_enum("channels", "3", ["1", "3"], "3 = RGB, 1 = grayscale.")
  flags.DEFINE_string("split", "0.7,0.1,0.2", "Per class train,val,test: integers = counts, floats = fractions.")
  flags.DEFINE_integer("max_pixels", images.DEFAULT_MAX_PIXELS, "Skip images with more pixels, unread.", lower_bound=1)
  flags.DEFINE_string(
    "match_format", "", "Same JPEG step for every class before storing: '' (off), jpeg:Q or jpeg:LO-HI (per image)."
  )
  flags.DEFINE_integer("num_workers", 0, "Parallel decoding workers; 0 = one per core.", lower_bound=0)
  flags.DEFINE_bool("overwrite", False, "Replace an OUT prepared from other files or options.")
  flags.DEFINE_enum("runner", "local", ["local", "beam"], "Run the tasks here, or as Apache Beam pipelines.")
  flags.DEFINE_string("beam_args", "", "Beam pipeline options, e.g. '--runner=DataflowRunner ...'.")
  flags.DEFINE_bool("progress", True, "Progress bars (images/s, ETA) on stderr.")


def main(argv: Sequence[str]) -> None:
  absl_logging.set_verbosity(absl_logging.WARNING)  # the summary below says what matters; no tfds chatter
  f = flags.FLAGS
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}: this command takes only --flags")
  if not f.source_dir or not f.out_dir:
    cli.fail("pass --source_dir=DIR (one folder of images per class) and --out_dir=OUT (where the dataset goes)")
  try:
    options = preparation.PrepareOptions(
      image_size=f.image_size,
      channels=int(f.channels),
      split=parse_split(f.split),
      crop=f.crop,
      max_pixels=f.max_pixels,
      num_threads=f.num_workers,
      match_format=format_matching.check(f.match_format, "--match_format"),
      split_option="--split",
    )
    runner = None
    if f.runner == "beam":
      from freqforensics.data import beam  # pylint: disable=g-import-not-at-top

      runner = beam.beam_runner(f.beam_args)
    ds = preparation.prepare_to(
      f.source_dir,
      f.out_dir,
      options,
      overwrite=f.overwrite,
      progress=f.progress,
      runner=runner,
      source_option="--source_dir",
      out_option="--out_dir",
    )
  except UserError as e:
    cli.fail(str(e))
  print(summary(ds))
  sys.stdout.flush()


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
