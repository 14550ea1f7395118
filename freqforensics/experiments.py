"""The paper's experiments as code: run configs, collect their numbers, write tables and figures.

Each script under `launch/paper_*.py` builds configs (the synthetic benchmark by default, any
config file by `--config`), runs them with `run`, and writes a markdown table, the same rows as JSON,
and its figures into `results_dir(...)`: a new folder per run, so a result is never overwritten.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections

from freqforensics.errors import UserError


def results_dir(root: str | os.PathLike, name: str) -> Path:
  """`root/name/<timestamp>[_k]`, created new: two runs never share a folder."""
  base = Path(root).expanduser() / name
  if base.exists() and not base.is_dir():
    raise UserError(f"{base} is a file: give --results a folder")
  base.mkdir(parents=True, exist_ok=True)
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  for k in range(1, 1000):
    out = base / (stamp if k == 1 else f"{stamp}_{k}")
    try:
      out.mkdir()
      return out
    except FileExistsError:
      continue
  raise UserError(f"no free results folder under {base}")


def load_config(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file (as `--config=path[:arg]` does)."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location(Path(path).stem, path)
  if spec is None or not Path(path).is_file():
    raise UserError(f"config file {path} does not exist")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # type: ignore[union-attr]
  return module.get_config(arg)


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, Any]:
  """Trains and tests `config` in `workdir` (a finished run there is reused, an interrupted one resumed).

  Returns the test metrics plus `seconds` (wall time of this call) and `parameters` (trainable
  parameters of the model).
  """
  from freqforensics import bundle, models, train  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  workdir = Path(workdir)
  metrics_file = workdir / "test_metrics.json"
  if metrics_file.is_file() and (workdir / "config.json").is_file() and json.loads(
      (workdir / "config.json").read_text()) == json.loads(config.to_json()):
    metrics = json.loads(metrics_file.read_text())
  else:
    metrics = train.train_and_evaluate(config, workdir)
  _, trainable = models.count_params(bundle.load(workdir / "bundle").model)
  return dict(metrics, seconds=time.perf_counter() - start, parameters=trainable)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
  """A markdown table: `columns` are (key, header, format spec); missing values print as `-`."""
  lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    cells = []
    for key, _, fmt in columns:
      value = row.get(key)
      cells.append("-" if value is None else format(value, fmt))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_results(out: Path, name: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]],
                  *, title: str, notes: str = "") -> Path:
  """Writes `name.md` (title, table, notes) and `name.json` (the rows) into `out`; returns the .md path."""
  md = out / f"{name}.md"
  md.write_text(f"# {title}\n\n{markdown_table(rows, columns)}" + (f"\n{notes}\n" if notes else ""))
  (out / f"{name}.json").write_text(json.dumps(list(rows), indent=2, default=float) + "\n")
  return md
