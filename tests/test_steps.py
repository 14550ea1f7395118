"""The jitted steps: the same step on 1 and 4 devices, the device count, the learning-rate schedule."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from freqforensics import sharding, stats, steps
from freqforensics.data import loading
from freqforensics.errors import UserError


def test_same_train_step_on_1_and_4_devices(config):
  assert len(jax.devices()) == 4
  prepared = loading.prepare_from_config(config, progress=False)
  fs, _ = stats.feature_stats(prepared, "dct_log", sharding.make_mesh(1), batch_size=8, progress=False)
  src = prepared.source("train")
  batch = {
    "image": np.stack([src[i]["image"] for i in range(8)]),
    "label": np.array([src[i]["label"] for i in range(8)], np.int32),
  }
  results = []
  for n in (1, 4):
    mesh = sharding.make_mesh(n)
    graphdef, state, _ = steps.create_state(config, prepared.image_shape, 2)
    state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    step = steps.make_train_step(graphdef, "dct_log", mesh)
    put = sharding.make_put(mesh)
    assert len(put(batch)["image"].sharding.device_set) == n
    for _ in range(3):
      state, sums = step(state, put(batch), fs)
    results.append((jax.tree.map(np.asarray, state), jax.tree.map(float, sums)))
  (s1, m1), (s4, m4) = results
  assert m1["loss"] == pytest.approx(m4["loss"], rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s1, s4)
  # and training really moved the weights
  _, fresh, _ = steps.create_state(config, prepared.image_shape, 2)
  assert not np.allclose(jax.tree.leaves(s1)[0], jax.tree.leaves(jax.tree.map(np.asarray, fresh))[0])


def test_device_count_follows_the_batch_sizes(config):
  config.train.batch_size = 6
  config.eval.batch_size = 8
  assert steps.num_devices(config) == 2  # 4 devices exist; 6 and 8 both split over 2
  config.num_devices = 4
  with pytest.raises(UserError, match="num_devices=4 does not fit"):
    steps.num_devices(config)
  config.train.batch_size = 8
  assert steps.num_devices(config) == 4


def test_warmup_cosine_schedule_starts_at_zero_and_reaches_the_peak(config):
  import optax

  config.train.schedule = "warmup_cosine"
  config.train.warmup_epochs = 1.0
  config.train.epochs = 3
  tx = steps.make_optimizer(config, steps_per_epoch=4)
  params = {"w": np.ones(3, np.float32)}
  opt_state = tx.init(params)
  updates = []
  for _ in range(12):
    u, opt_state = tx.update({"w": np.ones(3, np.float32)}, opt_state, params)
    updates.append(float(np.abs(u["w"]).max()))
  # Adam's normalised step is ~lr: 0 at step 0, rising over the 4 warm-up steps to the peak 1e-3,
  # then decaying by the cosine to 0 after 12 steps.
  want = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 4, 12)
  np.testing.assert_allclose(updates, [float(want(i)) for i in range(12)], rtol=1e-3, atol=1e-9)
  assert updates[0] == 0.0 and max(updates) == pytest.approx(1e-3, rel=1e-3)
  config.train.schedule = "linear"
  with pytest.raises(UserError, match="unknown train.schedule"):
    steps.make_optimizer(config, 4)
