"""One thin wrapper that owns orbax: save per epoch, keep the latest and the best, restore either.

A checkpoint is a composite of the training state (a pure dict of arrays: model parameters,
optimizer state, batch statistics, RNG state) and a small JSON record of the loop (epoch, step in
the epoch, partial epoch sums, early-stopping counters). Steps are global training steps.

What is kept follows the training loop's own record, which is inside every checkpoint: the latest
checkpoint (for resume) and the steps the caller names (the best epoch, for restore-best), nothing
else. orbax's best-N policy is not used: it ranks checkpoints by metrics it keeps in memory only,
so after a restart it would delete the best checkpoint saved before the interruption.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores `(state, record)` pairs at integer steps (completed epochs)."""

  def __init__(self, directory: str | os.PathLike):
    # No preservation policy: orbax keeps everything, and `save` deletes what the loop no longer needs.
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, record: dict[str, Any], keep: Iterable[int] = ()) -> None:
    """Writes the checkpoint of `step`; returns when it is on disk (so a crash cannot lose it).

    Then deletes every other checkpoint but those of the steps in `keep` (the best epoch's). A
    crash between the two leaves an extra checkpoint, which the next save deletes.
    """
    self._manager.save(
      step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record))
    )
    self._manager.wait_until_finished()
    keep = {int(s) for s in keep} | {step}
    for old in self._manager.all_steps():
      if old not in keep:
        self._manager.delete(old)

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    """Restores `step` into the structure (and shardings) of `target`; returns (state, record)."""
    restored = self._manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore())
    )
    return restored["state"], dict(restored["record"])

  def close(self) -> None:
    self._manager.close()
