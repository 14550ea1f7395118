"""The three commands of every baseline: grid_search, train (then test), test.
Run by `python -m freqforensics.tools.classic_baselines`.

`run(config, workdir, command)` is what the command line, tests and the launch script call. Each
command records its outcome and peak memory in `WORKDIR/<name>.json` and returns that section.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import ml_collections

from freqforensics.baselines import config as bconfig
from freqforensics.baselines import eigenfaces, inputs, knn, prnu
from freqforensics.baselines.context import Context
from freqforensics.baselines.results import Results
from freqforensics.data import loading
from freqforensics.errors import UserError

log = logging.getLogger(__name__)

COMMANDS: tuple[str, ...] = ("grid_search", "train", "test")
MODULES = {"knn": knn, "eigenfaces": eigenfaces, "prnu": prnu}
SPLITS: tuple[str, ...] = ("train", "val", "test")


def settings(config: ml_collections.ConfigDict, prepared_path: Path) -> dict[str, Any]:
  """What a baseline's numbers depend on; a work dir holds results of one setting."""
  return {
    "prepared": str(prepared_path),
    "train_per_class": int(config.baseline.train_per_class),
    "seed": int(config.seed),
    **MODULES[config.baseline.name].settings(config),
  }


def run(
  config: ml_collections.ConfigDict, workdir: str | Path, command: str, *, split: str = "test", overwrite: bool = False
) -> dict[str, Any]:
  """Runs `command` of `config.baseline.name` on the config's prepared data; returns its results.

  Args:
    config: a baselines config (`configs/baselines.py`); `baseline.name` picks kNN, Eigenfaces or PRNU.
    workdir: the baseline's work dir (results and model files; one work dir can hold all three).
    command: `grid_search`, `train` (then test) or `test`.
    split: the split `test` evaluates (`val` or `test`).
    overwrite: replace results of other settings in the work dir.
  """
  if command not in COMMANDS:
    raise UserError(f"unknown command {command!r}: use one of {', '.join(COMMANDS)}")
  if split not in SPLITS:
    raise UserError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
  bconfig.check(config)
  started = time.perf_counter()
  progress = bool(config.progress)
  prepared = loading.prepare_from_config(config, progress=progress)
  workdir = Path(workdir).expanduser()
  res = Results(workdir, config.baseline.name, settings(config, prepared.path), overwrite=overwrite)
  ctx = Context(config, workdir, prepared, res, progress)
  module = MODULES[config.baseline.name]
  if command == "grid_search":
    if not module.grid_search(ctx):  # every grid point done earlier: report, rewrite nothing
      log.info("%s: every grid point is done already", res.path)
      return dict(res.data["grid_search"], already_done=True)
    out = dict(res.data["grid_search"])
    out["best"] = res.best(tuple(k for k in out["rows"][0] if k in _PARAM_KEYS))
  elif command == "train":
    out = module.train(ctx)
    out["test"] = module.test(ctx, "test")
  else:
    out = module.test(ctx, split)
  out["seconds"] = round(time.perf_counter() - started, 2)
  out["peak_rss_mib"] = inputs.peak_rss_mib()
  if command == "test":
    res.data.setdefault("test", {})[split] = out
    res.save()
  else:
    res.record(command, out)
  return out


_PARAM_KEYS = ("n_neighbors", "variance", "C", "levels", "sigma")


def format_summary(config: ml_collections.ConfigDict, command: str, out: dict[str, Any], split: str = "test") -> str:
  """A few readable lines for the terminal."""
  name = config.baseline.name
  lines = []
  if command == "grid_search":
    if out.get("already_done"):
      lines.append(
        f"{name}: every grid point is done already (delete the work dir's {name} files or pass"
        " --overwrite to search again)"
      )
    for r in out["rows"]:
      params = ", ".join(f"{k}={r[k]}" for k in _PARAM_KEYS if k in r)
      acc = f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else f"skipped ({r.get('skipped')})"
      lines.append(f"  {params}: val accuracy {acc}")
    lines.append(f"{name} best: {out['best']}")
  else:
    m = out["test"] if command == "train" else out
    params = ", ".join(f"{k}={v}" for k, v in m["params"].items())
    lines.append(
      f"{name} ({params}) on the {'test' if command == 'train' else split} split:"
      f" accuracy {m['accuracy']:.4f} on {m['num_examples']} images"
    )
    lines.append(
      "  per class: "
      + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in m["per_class_accuracy"].items())
    )
  rss = out["peak_rss_mib"]
  workers = f" (largest worker process {rss['largest_child']:.0f} MiB)" if name == "prnu" else ""
  lines.append(f"peak RSS: {rss['process']:.0f} MiB{workers}; {out['seconds']:.1f} s")
  return "\n".join(lines)
