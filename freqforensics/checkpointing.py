"""One thin wrapper that owns orbax: save per epoch, keep the latest and the best, restore either.

A checkpoint is a composite of the training state (a pure dict of arrays: model parameters,
optimizer state, batch statistics, RNG state) and a small JSON record of the loop (epoch, step in
the epoch, partial epoch sums, early-stopping counters). Steps are global training steps. The preservation policy keeps the latest checkpoint (for resume) and the one with the
lowest validation loss (for restore-best), nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers


class Checkpointer:
  """Saves and restores `(state, record)` pairs at integer steps (completed epochs)."""

  def __init__(self, directory: str | os.PathLike):
    policy = checkpoint_managers.AnyPreservationPolicy([
        checkpoint_managers.LatestN(1),
        # reverse=True sorts descending, so the kept "best" is the lowest validation loss.
        checkpoint_managers.BestN(get_metric_fn=lambda m: m["val_loss"], reverse=True, n=1,
                                  keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, enable_async_checkpointing=False)
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, record: dict[str, Any], val_loss: float | None) -> None:
    """Writes the checkpoint of `step`; returns when it is on disk (so a crash cannot lose it).

    `val_loss` is given at epoch ends (it ranks the best checkpoint); mid-epoch checkpoints have
    none and are kept only while they are the latest.
    """
    self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)),
        metrics=None if val_loss is None else {"val_loss": float(val_loss)},
    )
    self._manager.wait_until_finished()

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    """Restores `step` into the structure (and shardings) of `target`; returns (state, record)."""
    restored = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["record"])

  def close(self) -> None:
    self._manager.close()
