r"""What a detector looks at: a linear model's weight map over frequencies, or one image's spectrum.

  python -m freqforensics.tools.explain --workdir=WORKDIR [--out=PNG] [--overwrite]               # weight map
  python -m freqforensics.tools.explain --workdir=WORKDIR --image=FILE [--out=PNG] [--overwrite]  # any model
      [--read=native|resize] [--aggregate=RULE] [--patch_stride=N] [--max_patches=N]     # as classify reads it

The weight map is for the `log*` models (one dense layer on standardised coefficients, so each
weight's size says how much that frequency moves a logit); `--image` shows an image's log-DCT
spectrum beside the mean spectra of the training classes, with the model's probabilities; read
natively, the image is scored by its patches' aggregate and the figure adds the patch map. An
existing output is refused; `--overwrite` replaces it only if freqforensics wrote it, and never the
`--image` being read. The bundle of a run that has not finished is refused without `--allow_unfinished`. The library is `freqforensics.analysis.explanations`.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging

from freqforensics.tools import cli, reading_flags

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  _F["workdir"] = flags.DEFINE_string("workdir", None, "Work dir of a finished run (reads WORKDIR/bundle).")
  _F["out"] = flags.DEFINE_string(
    "out", None, "Figure to write (default WORKDIR/weight_map.png or WORKDIR/spectrum_<image>.png)."
  )
  _F["image"] = flags.DEFINE_string("image", None, "An image to show beside the mean spectra of the training classes.")
  _F["overwrite"] = flags.DEFINE_bool(
    "overwrite", False, "Replace an existing --out figure that freqforensics wrote (never another file)."
  )
  _F["allow_unfinished"] = flags.DEFINE_bool(
    "allow_unfinished", False, "Use the bundle of a run that has not finished (its best epoch so far)."
  )
  reading_flags.define(_F)  # how --image is read, as classify reads it


def main(argv: Sequence[str]) -> None:
  cli.flags_only(argv)
  if not _F["workdir"].value:
    cli.fail("no work dir given: pass --workdir=DIR of a finished run (it holds bundle/)")
  absl_logging.set_verbosity(absl_logging.WARNING)  # as main.py: no backend-probe chatter
  from freqforensics.analysis import explanations  # pylint: disable=g-import-not-at-top  (fast --help)
  from freqforensics.data import images  # pylint: disable=g-import-not-at-top

  workdir, out, image, overwrite, unfinished = (
    _F[k].value for k in ("workdir", "out", "image", "overwrite", "allow_unfinished")
  )
  rule = reading_flags.values(_F)
  if not image and (given := [f"--{k}" for k, v in rule.items() if v is not None]):
    cli.fail(f"{', '.join(given)} apply to --image only: the weight map reads no image")
  try:
    if image:
      path = explanations.image_vs_classes(
        image, workdir, out, overwrite=overwrite, allow_unfinished=unfinished, **rule
      )
    else:
      path = explanations.explain_workdir(workdir, out, overwrite=overwrite, allow_unfinished=unfinished)
  except images.ImageDecodeError as e:  # an unreadable --image
    cli.fail(f"{e}: give a readable image file")
  print(f"{'spectrum comparison' if image else 'weight map'} written to {path}")


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
