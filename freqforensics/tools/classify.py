r"""Classify image files and folders with a trained model (its bundle): one row per image, CSV or JSON lines.

  python -m freqforensics.tools.classify --workdir=runs/mine [--format=csv|jsonl] [--output=FILE] [--match_format] \
      [--allow_unfinished] [--read=native|resize] [--aggregate=mean|max|topk_mean:K] [--patch_stride=N] \
      [--max_patches=N] [--patch_logits] PATH [PATH ...]

Exit code 0 when every image was classified, 1 when some could not be used, 2 on usage errors. The
columns and options (native reading included) are in docs/classify.md. The library is
`freqforensics.evaluation.inference`, `freqforensics.data.decode` and `freqforensics.evaluation.predictions`.
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from absl import flags
from absl import logging as absl_logging

from freqforensics import text
from freqforensics.errors import UserError
from freqforensics.tools import cli, reading_flags

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  """Flags are defined when the command runs, not on import (`main` defines `--workdir` too)."""
  _F["workdir"] = flags.DEFINE_string("workdir", None, "Work dir of a finished training run, or its bundle/ folder.")
  _F["format"] = flags.DEFINE_enum("format", "csv", ["csv", "jsonl"], "Output format.")
  _F["output"] = flags.DEFINE_string(
    "output", None, "Output file ('-' = stdout); default WORKDIR/classify_<time>.<format>, never overwritten."
  )
  _F["batch_size"] = flags.DEFINE_integer("batch_size", 64, "Images per model call.", lower_bound=1)
  _F["match_format"] = flags.DEFINE_bool(
    "match_format", False, "Apply the format matching of the model's training data (its JPEG step) to every image."
  )
  _F["allow_unfinished"] = flags.DEFINE_bool(
    "allow_unfinished", False, "Use the bundle of a run that has not finished (uncalibrated, best epoch so far)."
  )
  reading_flags.define(_F)
  _F["patch_logits"] = flags.DEFINE_bool(
    "patch_logits", False, "Reading natively: write each patch's logits and corner (needs --format=jsonl)."
  )


def main(argv: Sequence[str]) -> None:
  paths = list(argv[1:])
  if not _F["workdir"].value:
    cli.fail("no work dir given: pass --workdir=DIR of a finished training run (or its bundle/ folder)")
  if not paths:
    cli.fail("no images given: pass image files or folders after the flags, e.g. ... --workdir=DIR photos/")
  absl_logging.set_verbosity(absl_logging.WARNING)  # stderr is for skipped files and the progress bar
  from freqforensics.data import decode, images  # pylint: disable=g-import-not-at-top  (after use_all_cores)
  from freqforensics.evaluation import inference, model_card, predictions, reading  # pylint: disable=g-import-not-at-top

  workdir = Path(_F["workdir"].value).expanduser()
  bundle_dir = inference.bundle_dir(workdir)  # a missing work dir is reported before any file is listed
  files, skipped = decode.collect_files(paths)
  if not files:
    raise UserError(
      f"no image files ({', '.join(images.IMAGE_EXTENSIONS)}) found in {' '.join(paths)}"
      + (f" ({len(skipped)} other files skipped by the listing rule)" if skipped else "")
    )
  if _F["patch_logits"].value and _F["format"].value != "jsonl":
    raise UserError("--patch_logits writes lists of logits: it needs --format=jsonl")
  clf = inference.load(bundle_dir, allow_unfinished=_F["allow_unfinished"].value, **reading_flags.values(_F))
  if _F["patch_logits"].value and not clf.reading.native:
    raise UserError("--patch_logits needs native reading: add --read=native")
  if _F["match_format"].value:
    clf = clf.matching(decode.relative_names(paths, files))
  # Never into a bundle folder given directly: that folder holds only the bundle's files.
  output = predictions.OutputFile(
    _F["output"].value, bundle_dir.parent if bundle_dir == workdir else workdir, _F["format"].value
  )
  # With --output=- the rows own stdout; the summary goes where it cannot mix with them.
  out = sys.stderr if output.path is None else sys.stdout
  card, block = clf.bundle.info.model_card, clf.bundle.info.outliers
  print(f"model: {text.for_terminal(card['summary'] if card else clf.bundle.info.model)}", file=out)
  if clf.bundle.note:
    print(f"note: {text.for_terminal(clf.bundle.note)}", file=out)
  warning = model_card.input_warning(card, files)
  if warning:
    print(warning, file=sys.stderr)
  if not clf.reading.native:
    seen = model_card.headers(files, model_card.INPUT_SAMPLE)
    if resized := reading.resize_warning(
      clf.bundle.info.image_size, clf.bundle.info.crop, seen["sizes"], seen["sampled"]
    ):
      print(resized, file=sys.stderr)
  else:
    r = clf.reading
    print(
      f"reading: native {clf.bundle.info.image_size}x{clf.bundle.info.image_size} patches, stride {r.patch_stride}, at most"
      f" {r.max_patches} per image, aggregated by {r.aggregate}",
      file=out,
    )
  start = time.perf_counter()
  writer = predictions.RowWriter(
    output.stream, _F["format"].value, clf.detector, block, clf.reading.native, _F["patch_logits"].value
  )
  counts, failed, decisions = predictions.classify_files(clf, files, writer, _F["batch_size"].value)
  output.finish()
  seconds = time.perf_counter() - start
  print(
    f"\nclassified {sum(counts.values())} of {len(files)} image files in {seconds:.1f} s"
    f" ({len(files) / seconds:.0f} images/s, decoding included, start-up excluded):",
    file=out,
  )
  print(predictions.format_summary(counts, clf.label_names), file=out)
  if decided := predictions.format_decisions(decisions, clf.detector, block):
    print(decided, file=out)
  if decisions["thinned"]:
    print(
      f"thinned {decisions['thinned']} images to at most {clf.reading.max_patches} patches, spread evenly over each"
      " image (raise --max_patches to read every pixel)",
      file=out,
    )
  if failed:
    print(f"skipped {len(failed)} unreadable files (listed above and in the output with their error)", file=out)
  if skipped:
    reasons = collections.Counter(reason for _, reason in skipped)
    print(
      f"ignored {len(skipped)} files of the folders by the listing rule ("
      + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items()))
      + ")",
      file=out,
    )
    for path, reason in skipped[:20]:
      print(f"  {text.for_terminal(path)}: {reason}", file=out)
    if len(skipped) > 20:
      print(f"  ... and {len(skipped) - 20} more", file=out)
  print(f"results: {output.name}", file=out)
  sys.exit(1 if failed else 0)


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags, all_cores=True)


if __name__ == "__main__":
  run()
