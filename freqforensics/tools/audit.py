r"""Audit a data set's file formats: could a detector tell the classes by JPEG, size or metadata?

  python -m freqforensics.tools.audit --source_dir=DIR [--out_dir=OUT] [--max_per_class=0] [--num_threads=0]

DIR is a class-folder directory (one folder per class; every file by the one listing rule) or a
prepared dataset (the audit its preparation recorded). Per class: file formats, JPEG quality
estimated from the quantisation tables, chroma subsampling, progressive or baseline, image sizes and
aspect ratios, mode and bit depth, EXIF and other metadata. Prints the table (markdown) and one
`warning:` line per property in which two classes differ enough for a detector to learn it; with
`--out_dir`, also writes `audit.md`, `audit.json` and `audit.png` there (a new `audit_<time>` folder
inside it when it is not empty). Exit code 0 whatever it finds (the audit is information), 2 on
usage errors. The library is `freqforensics.data.format_audit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from absl import flags
from absl import logging as absl_logging

from freqforensics.tools import cli

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  _F["source_dir"] = flags.DEFINE_string("source_dir", None, "Class-folder directory, or a prepared dataset.")
  _F["out_dir"] = flags.DEFINE_string("out_dir", None, "Also write audit.md, audit.json and audit.png here.")
  _F["max_per_class"] = flags.DEFINE_integer(
    "max_per_class", 0, "Audit this many files per class, evenly spaced in sorted order; 0 = all.", lower_bound=0
  )
  _F["num_threads"] = flags.DEFINE_integer("num_threads", 0, "Threads reading headers; 0 = 2 per core.", lower_bound=0)


def main(argv: Sequence[str]) -> None:
  cli.flags_only(argv)
  if not _F["source_dir"].value:
    cli.fail("no --source_dir given: pass --source_dir=DIR (one folder of images per class, or a prepared dataset)")
  absl_logging.set_verbosity(absl_logging.WARNING)  # the table says what matters; no tfds chatter
  from freqforensics.data import format_audit  # pylint: disable=g-import-not-at-top
  from freqforensics.files import output_paths  # pylint: disable=g-import-not-at-top  (fast --help)

  source = _F["source_dir"].value
  audit = format_audit.audit_path(source, max_per_class=_F["max_per_class"].value, num_threads=_F["num_threads"].value)
  print(format_audit.markdown(audit, with_findings=False), end="")
  for line in format_audit.findings(audit):
    print(f"warning: {line}")
  if _F["out_dir"].value:
    out = Path(_F["out_dir"].value).expanduser()
    output_paths.check_separate(out, [source])
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
      out = output_paths.fresh_dir(out, "audit")
    for path in format_audit.write_report(audit, out):
      print(f"wrote {path}")


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
