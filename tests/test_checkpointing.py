"""The checkpoint wrapper: what is kept follows the loop's record, also after a restart."""

from __future__ import annotations

import numpy as np


def test_kept_checkpoints_follow_the_loops_record_across_restarts(tmp_path):
  import jax.numpy as jnp

  from freqforensics import checkpointing

  ckpt = checkpointing.Checkpointer(tmp_path / "ck")
  state = {"w": jnp.zeros(3)}
  ckpt.save(10, state, {"epoch": 1}, keep=[10])
  ckpt.save(20, {"w": jnp.ones(3)}, {"epoch": 2}, keep=[10])
  ckpt.close()
  again = checkpointing.Checkpointer(tmp_path / "ck")  # a restart: nothing held in memory any more
  again.save(30, {"w": jnp.full(3, 2.0)}, {"epoch": 3}, keep=[10])
  assert again.all_steps() == [10, 30]
  restored, record = again.restore(10, state)
  np.testing.assert_array_equal(np.asarray(restored["w"]), np.zeros(3))
  assert record == {"epoch": 1}
