"""The work dir of one run: its config, per-epoch metric files and TensorBoard events.

A work dir belongs to one config: a second run with another config is refused (one line, exit 2)
unless `--overwrite`, which removes exactly the files a run writes and nothing a user put there.
Only process 0 writes here in a multi-host run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import ml_collections

from freqforensics import defaults
from freqforensics.errors import UserError

# Files a run writes in its work dir; `--overwrite` removes exactly these, nothing else.
RUN_FILES: tuple[str, ...] = ("config.json", "checkpoints", "metrics.jsonl", "tensorboard", "bundle",
                              "test_metrics.json", "val_metrics.json")
# Config fields that do not change results: a resumed run may differ in these.
RUNTIME_KEYS: tuple[str, ...] = ("data.num_threads", "data.data_dir", "data.cache_gb", "progress", "distributed", "coordinator_address",
                                 "num_processes", "process_id", "train.checkpoint_every_steps", "mode", "eval.splits",
                                 "eval.source_dir", "eval.batch_size", "eval.perturb")


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
  return out


def check(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool, *, write: bool = True) -> None:
  """Creates the work dir; refuses one holding a run of another config unless `overwrite`."""
  if overwrite and write:
    for name in RUN_FILES:
      p = workdir / name
      if p.is_dir():
        shutil.rmtree(p)
      elif p.exists():
        p.unlink()
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / "config.json"
  current = json.loads(config.to_json())
  if path.exists():
    old, new = _flatten(json.loads(path.read_text())), _flatten(current)
    # A field added by a newer version is absent from an older run's config: at its default it
    # describes what that run did, so the run may resume.
    base = _flatten(json.loads(defaults.base_config().to_json()))
    old.update({k: base[k] for k in new if k not in old and k in base})
    diff = sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and not any(k == r or k.startswith(r + ".") for r in RUNTIME_KEYS))
    if diff:
      shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:3])
      raise UserError(
          f"work dir {workdir} holds a run of another config ({shown}{', ...' if len(diff) > 3 else ''}):"
          " use a new --workdir, or pass --overwrite to replace that run")
  elif any((workdir / name).exists() for name in RUN_FILES):
    raise UserError(f"work dir {workdir} holds run files but no config.json: use a new --workdir or --overwrite")
  if write:
    path.write_text(json.dumps(current, indent=2) + "\n")


class MetricsLog:
  """`metrics.jsonl` (one JSON row per epoch) and TensorBoard scalars; a no-op off process 0."""

  def __init__(self, workdir: Path, *, enabled: bool = True):
    self.path = workdir / "metrics.jsonl"
    self.enabled = enabled
    self._writer = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

      self._writer = SummaryWriter(str(workdir / "tensorboard"))

  def truncate(self, last_epoch: int) -> None:
    """Drops rows of epochs after the restored checkpoint (written just before an interruption)."""
    if self.enabled and self.path.exists():
      rows = [r for r in self.path.read_text().splitlines() if r and json.loads(r)["epoch"] <= last_epoch]
      self.path.write_text("".join(r + "\n" for r in rows))

  def write(self, row: dict[str, Any]) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    for k, v in row.items():
      if k != "epoch" and isinstance(v, (int, float)):
        self._writer.add_scalar(k, v, row["epoch"])
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
