r"""Command line of the classic baselines (kNN, Eigenfaces, PRNU) on the project's prepared data.

  python -m freqforensics.baselines COMMAND --config=configs/baselines.py:NAME --workdir=DIR \
      [--split=test] [--overwrite] [--config.x=y ...]

COMMAND is grid_search (fit on train, score on val, over the grid), train (fit with the chosen or
best parameters, save, score on test) or test (load the saved model, score `--split`). NAME is
knn, eigenfaces or prnu. Results go to DIR/NAME.json; mistakes end with one line and exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from freqforensics import cli, host_devices
from freqforensics.errors import UserError

host_devices.use_all_cores()  # before JAX starts (features are computed on the device mesh)

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/baselines.py:knn|eigenfaces|prnu[,tiny]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the results JSON and the saved model.")
_SPLIT = flags.DEFINE_string("split", "test", "test command: the split to score (train, val or test).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace this baseline's results of other settings in --workdir.")


def main(argv: Sequence[str]) -> None:
  from freqforensics.baselines import run  # pylint: disable=g-import-not-at-top  (fast --help)

  if len(argv) != 2:
    cli.fail(f"give one command ({', '.join(run.COMMANDS)}), e.g. python -m freqforensics.baselines grid_search"
             " --config=configs/baselines.py:knn --workdir=runs/knn")
  try:
    config = _CONFIG.value
    if config is not None:
      config.to_dict()
  except (OSError, ValueError, TypeError, AttributeError, KeyError) as e:
    detail = [line.strip() for line in str(e).splitlines() if line.strip()][-1]
    cli.fail(f"cannot load --config={flags.FLAGS['config'].config_filename}: {detail}; give e.g."
             " configs/baselines.py:knn")
  if config is None or "baseline" not in config:
    cli.fail("no baseline config given: pass --config=configs/baselines.py:knn (or :eigenfaces, :prnu)")
  if not _WORKDIR.value:
    cli.fail("no work dir given: pass --workdir=DIR (results and the saved model go there)")
  absl_logging.set_verbosity(absl_logging.WARNING)
  try:
    out = run.run(config, _WORKDIR.value, argv[1], split=_SPLIT.value, overwrite=_OVERWRITE.value)
  except UserError as e:
    cli.fail(str(e))
  print(run.format_summary(config, argv[1], out, _SPLIT.value))
  print(f"results: {_WORKDIR.value}/{config.baseline.name}.json")


if __name__ == "__main__":
  cli.run(main)
