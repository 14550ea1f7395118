r"""Command-line entry point: prepare, compute statistics, train, evaluate.

  python -m freqforensics.main --config=configs/demo.py --workdir=/tmp/ff_demo [--config.x=y ...]

Thin on purpose: the work is `train.train_and_evaluate`, which tests and notebooks call directly.
Problems a user can fix (bad config keys, missing data, a work dir of another run) end with one
line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from freqforensics import host_devices, text
from freqforensics.errors import UserError
from freqforensics.tools import cli

host_devices.use_all_cores()  # before JAX starts: one CPU device per core (no effect on GPUs)

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/demo.py[:tiny].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a run of another config in --workdir.")

_fail = cli.fail


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    _fail(f"unexpected arguments {' '.join(argv[1:])}: options take the form --name=value")
  config = cli.loaded_config(_CONFIG, "configs/demo.py or configs/demo.py:tiny")
  if config is None:
    _fail("no config given: pass --config=configs/demo.py (or another file in configs/)")
  if not _WORKDIR.value:
    _fail("no work dir given: pass --workdir=DIR (checkpoints and results go there)")
  # Our progress at INFO; the libraries' (orbax, tfds, grain) chatter only from WARNING up.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("freqforensics").setLevel(logging.INFO)
  from freqforensics import sharding, train  # pylint: disable=g-import-not-at-top  (fast --help)
  from freqforensics.evaluation import metrics, results, runner  # pylint: disable=g-import-not-at-top

  sharding.initialize(config)
  if config.mode == "eval":
    reports = runner.evaluate_workdir(config, _WORKDIR.value)
  elif config.mode == "train":
    reports = {"": results.SplitResult(train.train_and_evaluate(config, _WORKDIR.value, overwrite=_OVERWRITE.value))}
  else:
    raise UserError(f"unknown mode {config.mode!r}: use --config.mode=train or --config.mode=eval")
  if not sharding.is_main_process():
    return
  for name, r in reports.items():
    m = r.metrics
    if isinstance(r, results.GeneratorReport):  # mode=eval on the cross-generator layout
      about = f"{m['model']} on {m['features']} features, generators of {m['source_dir']}; {m['threshold_note']}"
      print(f"\n{text.for_terminal(about)}:")
      print(r.markdown)  # escaped as markdown: no control characters
      print(f"report: {text.for_terminal(_WORKDIR.value)}/eval_{text.for_terminal(name)}.json (+ .md, _roc.png)")
      continue
    if name:  # mode=eval
      print(
        f"\n{text.for_terminal(m['model'])} on {text.for_terminal(m['features'])} features, {text.for_terminal(name)}:"
      )
      print(metrics.format_summary(m))
      print(
        f"metrics: {text.for_terminal(_WORKDIR.value)}/eval_{text.for_terminal(name)}.json (+ _confusion.png, _roc.png)"
      )
      continue
    split = m["split"]
    print(f"\n{m['model']} on {m['features']} features, {split} split (best epoch {m['epoch']}):")
    print(metrics.format_summary(m))
    print(
      f"metrics: {_WORKDIR.value}/{split}_metrics.json  per-epoch: {_WORKDIR.value}/metrics.jsonl"
      f"  checkpoints: {_WORKDIR.value}/checkpoints"
    )


def run() -> None:
  cli.run(main)


if __name__ == "__main__":
  run()
