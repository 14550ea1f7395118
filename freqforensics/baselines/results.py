"""A baseline's files in the work dir: its results JSON, pass checkpoints and saved model.

`WORKDIR/<name>.json` holds readable rows, e.g. `{"n_neighbors": 65, "accuracy": 0.93, ...}` per
grid point, then the `train` and `test` sections. It also records the settings the numbers depend
on (prepared data, features, subset, grid); a later command with other settings is refused unless
`--overwrite`, which removes exactly this baseline's files. Long passes save their accumulators to
`WORKDIR/<name>_work/` every few batches (atomically, .npz without pickle), so an interrupted
grid search resumes at the last saved batch; caches that later commands reuse (Eigenfaces' PCA and
projections) live there too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from freqforensics.errors import UserError
from freqforensics.evaluation import metrics
from freqforensics.files import atomic


class Results:
  """`WORKDIR/<name>.json` plus the baseline's progress folder and model folder."""

  def __init__(self, workdir: Path, name: str, settings: dict[str, Any], *, overwrite: bool = False):
    self.workdir, self.name, self.settings = workdir, name, settings
    self.path = workdir / f"{name}.json"
    self.work_dir = workdir / f"{name}_work"
    self.model_dir = workdir / f"{name}_model"
    if overwrite:
      self.remove()
    workdir.mkdir(parents=True, exist_ok=True)
    self.data: dict[str, Any] = {"baseline": name, "settings": settings}
    if self.path.is_file():
      old = json.loads(self.path.read_text())
      if old.get("settings") != settings:
        diff = sorted(
          k for k in set(settings) | set(old.get("settings", {})) if settings.get(k) != old.get("settings", {}).get(k)
        )
        raise UserError(
          f"{self.path} holds results of other settings ({', '.join(diff)}): use a new --workdir,"
          " or pass --overwrite to replace this baseline's results"
        )
      self.data = old

  def remove(self) -> None:
    """Removes this baseline's files (and only those)."""
    for p in (self.path, self.work_dir, self.model_dir):
      if p.is_dir():
        shutil.rmtree(p)
      elif p.exists():
        p.unlink()

  def save(self) -> None:
    atomic.write_json(self.path, self.data)

  @property
  def rows(self) -> list[dict[str, Any]]:
    return self.data.setdefault("grid_search", {}).setdefault("rows", [])

  def row(self, params: dict[str, Any]) -> dict[str, Any] | None:
    """The finished grid row of `params`, if any (resume)."""
    return next((r for r in self.rows if all(r.get(k) == v for k, v in params.items())), None)

  def add_row(self, row: dict[str, Any]) -> None:
    self.rows.append(row)
    self.save()

  def finish_grid_search(self) -> bool:
    """Marks the grid search complete (every row scored on the validation split) and saves; True."""
    self.data["grid_search"]["split"] = "val"
    self.save()
    return True

  def best(self, keys: tuple[str, ...]) -> dict[str, Any]:
    """Parameters of the grid row with the highest accuracy (the first in grid order on ties)."""
    done = [r for r in self.rows if r.get("accuracy") is not None]
    if not done:
      raise UserError(
        f"{self.path} holds no grid search: run the grid_search command first, or give the"
        f" parameters ({', '.join('baseline.' + self.name + '.' + k for k in keys)})"
      )
    best = max(done, key=lambda r: r["accuracy"])  # max keeps the first of equal values
    return {k: best[k] for k in keys}

  def chosen(self, given: dict[str, Any]) -> dict[str, Any]:
    """The parameters to train with: those given (non-zero), the rest from the best grid row."""
    if all(given.values()):
      return dict(given)
    best = self.best(tuple(given))
    return {k: v or best[k] for k, v in given.items()}

  def record(self, section: str, value: dict[str, Any]) -> None:
    self.data[section] = value
    self.save()


class Progress:
  """Checkpoints of one long pass: named arrays and a position, in `<name>_work/<pass>.npz`."""

  def __init__(self, results: Results, name: str):
    self.path = results.work_dir / f"{name}.npz"

  def load(self) -> tuple[int, dict[str, np.ndarray]] | None:
    """(position, arrays) of the last save, or None to start from the beginning."""
    if not self.path.is_file():
      return None
    with np.load(self.path, allow_pickle=False) as f:
      return int(f["__position"]), {k: f[k] for k in f.files if k != "__position"}

  def save(self, position: int, arrays: dict[str, np.ndarray]) -> None:
    self.path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(self.path, lambda tmp: np.savez(tmp, __position=np.asarray(position), **arrays))

  def clear(self) -> None:
    if self.path.exists():
      self.path.unlink()


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
  """Counts (rows: true label, columns: predicted), int64."""
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
  return out


def accuracy(conf: np.ndarray) -> float:
  n = int(conf.sum())
  return float(np.trace(conf)) / n if n else float("nan")


def summary(conf: np.ndarray, label_names: tuple[str, ...]) -> dict[str, Any]:
  """Accuracy, per-class accuracy and report, and the confusion matrix, keyed by label name."""
  conf = np.asarray(conf, np.int64)
  support = conf.sum(axis=1)
  return {
    "num_examples": int(conf.sum()),
    "accuracy": accuracy(conf),
    "per_class_accuracy": {
      n: (float(conf[i, i] / support[i]) if support[i] else None) for i, n in enumerate(label_names)
    },
    "per_class": metrics.per_class_report(conf, label_names),
    "confusion_matrix": conf.tolist(),
    "label_names": list(label_names),
  }
