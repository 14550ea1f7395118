r"""Command line of the classic baselines (kNN, Eigenfaces, PRNU) on the project's prepared data.

  python -m freqforensics.tools.classic_baselines COMMAND --config=configs/baselines.py:NAME --workdir=DIR \
      [--split=test] [--overwrite] [--config.x=y ...]

COMMAND is grid_search (fit on train, score on val, over the grid), train (fit with the chosen or
best parameters, save, score on test) or test (load the saved model, score `--split`). NAME is
knn, eigenfaces or prnu. Results go to DIR/NAME.json; mistakes end with one line and exit code 2.
The library is `freqforensics.baselines` (`baselines.commands.run`).
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from freqforensics.tools import cli

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  _F["config"] = config_flags.DEFINE_config_file(
    "config", None, "configs/baselines.py:knn|eigenfaces|prnu[,tiny]", lock_config=True
  )
  _F["workdir"] = flags.DEFINE_string("workdir", None, "Directory for the results JSON and the saved model.")
  _F["split"] = flags.DEFINE_string("split", "test", "test command: the split to score (train, val or test).")
  _F["overwrite"] = flags.DEFINE_bool(
    "overwrite", False, "Replace this baseline's results of other settings in --workdir."
  )


def main(argv: Sequence[str]) -> None:
  from freqforensics.baselines import commands  # pylint: disable=g-import-not-at-top  (fast --help)

  if len(argv) != 2:
    cli.fail(
      f"give one command ({', '.join(commands.COMMANDS)}), e.g. python -m freqforensics.tools.classic_baselines"
      " grid_search --config=configs/baselines.py:knn --workdir=runs/knn"
    )
  config = cli.loaded_config(_F["config"], "configs/baselines.py:knn")
  if config is None or "baseline" not in config:
    cli.fail("no baseline config given: pass --config=configs/baselines.py:knn (or :eigenfaces, :prnu)")
  workdir, split = _F["workdir"].value, _F["split"].value
  if not workdir:
    cli.fail("no work dir given: pass --workdir=DIR (results and the saved model go there)")
  absl_logging.set_verbosity(absl_logging.WARNING)
  out = commands.run(config, workdir, argv[1], split=split, overwrite=_F["overwrite"].value)
  print(commands.format_summary(config, argv[1], out, split))
  print(f"results: {workdir}/{config.baseline.name}.json")


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags, all_cores=True)


if __name__ == "__main__":
  run()
