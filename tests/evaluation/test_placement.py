"""A bundle placed on the mesh equals its model applied by hand to SciPy features."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.fft
import scipy.special

from freqforensics import bundle, models, sharding, stats
from freqforensics.evaluation import placement


def _bundle(tmp_path, features: str, outputs: int, rng) -> bundle.Bundle:
  shape = (16, 16, 3)
  model = models.create_model("log2", shape, outputs, seed=1)
  model.dense.kernel.value = rng.normal(size=model.dense.kernel.value.shape).astype(np.float32) * 0.1
  model.dense.bias.value = rng.normal(size=outputs).astype(np.float32)
  stats_file = None
  if features == "dct_log":
    train = rng.integers(0, 256, size=(40,) + shape).astype(np.float64)
    acc = stats.update(stats.init(shape), np.log(np.abs(scipy.fft.dctn(train, norm="ortho", axes=(1, 2))) + 1e-12))
    stats_file = tmp_path / "stats_dct_log.npz"
    stats.save(stats_file, acc, "dct_log")
  info = {
    "model": "log2",
    "features": features,
    "input_shape": list(shape),
    "outputs": outputs,
    "label_names": ["A_real", "B_gan"] if outputs == 1 else [f"c{k}" for k in range(outputs)],
  }
  bundle.save(tmp_path / "bundle", model, bundle.BundleInfo(**info), stats_file)
  return bundle.load(tmp_path / "bundle")


@pytest.mark.parametrize("features,outputs", [("dct_log", 3), ("pixel", 1)])
def test_placed_model_equals_the_model_applied_by_hand(tmp_path, features, outputs):
  rng = np.random.default_rng(0)
  b = _bundle(tmp_path, features, outputs, rng)
  images = rng.integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
  if features == "dct_log":  # the paper's feature, from SciPy and the saved statistics
    f = np.log(np.abs(scipy.fft.dctn(images.astype(np.float64), norm="ortho", axes=(1, 2))) + 1e-12)
    f = (f - b.feature_stats.mean) / b.feature_stats.std
  else:
    f = images / 127.5 - 1.0
  kernel, bias = np.asarray(b.model.dense.kernel.value, np.float64), np.asarray(b.model.dense.bias.value, np.float64)
  expected = f.reshape(len(f), -1) @ kernel + bias

  placed = placement.place(b, sharding.make_mesh())
  assert placed.mesh.size == jax.device_count() > 1  # the batch really is split over devices
  x = placed.put({"image": images})["image"]
  np.testing.assert_allclose(np.asarray(placed.logits(x)), expected, rtol=2e-4, atol=2e-4)
  probs = np.asarray(placed.probabilities(x))
  if outputs == 1:
    p = scipy.special.expit(expected[:, 0])
    np.testing.assert_allclose(probs, np.stack([1 - p, p], axis=-1), rtol=1e-4, atol=1e-5)
  else:
    np.testing.assert_allclose(probs, scipy.special.softmax(expected, axis=-1), rtol=1e-4, atol=1e-5)


def test_host_outputs_pad_a_batch_to_the_devices_and_drop_the_padding(tmp_path):
  rng = np.random.default_rng(1)
  b = _bundle(tmp_path, "dct_log", 3, rng)
  placed = placement.place(b, sharding.make_mesh())
  images = rng.integers(0, 256, size=(placed.mesh.size + 1, 16, 16, 3), dtype=np.uint8)  # not a multiple
  out = placed.outputs(images)
  assert set(out) == {"logits"} and out["logits"].shape == (len(images), 3)  # no open-set statistics here
  want = placed.logits(placed.put({"image": np.concatenate([images, images[: placed.mesh.size - 1]])})["image"])
  np.testing.assert_allclose(out["logits"], np.asarray(want)[: len(images)], rtol=1e-5, atol=1e-5)
