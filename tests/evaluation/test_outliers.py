"""The open-set score: an image family unlike every training class is flagged, reals at the stated rate."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from freqforensics import spectral, stats
from freqforensics.evaluation import operating_points, outliers

SIZE = 16


def _real(rng: np.random.Generator, n: int) -> np.ndarray:
  """Smooth random colour images (blurred noise around a random mean): the 'real' class."""
  x = rng.normal(0, 40, (n, SIZE, SIZE, 3))
  x = scipy.ndimage.gaussian_filter(x, sigma=(0, 1.2, 1.2, 0)) * 3 + rng.uniform(60, 190, (n, 1, 1, 3))
  return np.clip(x, 0, 255).round().astype(np.uint8)


def _nearest(rng: np.random.Generator, n: int) -> np.ndarray:
  """A trained generator: real-like images at half size, nearest-neighbour upsampled."""
  return _real(rng, n)[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2)


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
  """The family no class resembles: real-like images with a transposed-conv checkerboard (+-4 levels)."""
  board = np.where((np.arange(SIZE)[:, None] + np.arange(SIZE)[None]) % 2 == 0, 4, -4)[None, :, :, None]
  return np.clip(_real(rng, n).astype(np.int64) + board, 0, 255).astype(np.uint8)


def _raw(images: np.ndarray) -> np.ndarray:
  return np.asarray(spectral.raw_features(jnp.asarray(images), outliers.SPACE))


def _scores(o: outliers.OutlierStats, images: np.ndarray) -> dict[str, np.ndarray]:
  got = outliers.spectral_scores(jnp.asarray(_raw(images)), outliers.device_arrays(o))
  return {k: np.asarray(v, np.float64) for k, v in got.items()}


@pytest.fixture(scope="module")
def fitted():
  rng = np.random.default_rng(0)
  train = {0: _real(rng, 300), 1: _nearest(rng, 300)}  # label 0 real, label 1 the trained generator
  acc = stats.class_init(2, (SIZE, SIZE, 3))
  for label, images in train.items():
    acc = stats.class_update(acc, jnp.asarray(_raw(images)), jnp.full((len(images),), label))
  var = np.asarray(acc.m2) / np.asarray(acc.count)[:, None, None, None]
  base = outliers.from_moments(np.asarray(acc.mean), var, 0, np.zeros((0, SIZE * SIZE * 3), np.float32))
  u = ((_raw(train[0]) - base.mean[0]) * base.inv_std[0]).reshape(300, -1)
  o = outliers.OutlierStats(base.mean, base.inv_std, 0, outliers.pca_components(u))
  return o, rng


@pytest.mark.parametrize("name", ["real_mahalanobis", "class_mahalanobis", "pca_real"])
def test_a_family_unlike_every_class_is_flagged_at_the_stated_real_rate(fitted, name):
  o, _ = fitted
  rng = np.random.default_rng(1)
  val_real, test_real = _real(rng, 400), _real(rng, 400)
  t = operating_points.fpr_threshold(_scores(o, val_real)[name], 0.05)
  assert np.mean(_scores(o, val_real)[name] > t) <= 0.05  # the stated rate on validation, by construction
  assert np.mean(_scores(o, test_real)[name] > t) <= 0.10  # and near it on fresh reals (sampling error)
  assert np.mean(_scores(o, _checkerboard(rng, 200))[name] > t) >= 0.95  # the unknown family: flagged
  if name == "class_mahalanobis":  # the trained generator is a training class: not an outlier
    assert np.mean(_scores(o, _nearest(rng, 200))[name] > t) <= 0.10


def test_scores_equal_the_formulas_in_numpy(fitted):
  o, rng = fitted
  images = _checkerboard(rng, 5)
  x = _raw(images).reshape(5, -1).astype(np.float64)
  mean, inv = o.mean.reshape(2, -1).astype(np.float64), o.inv_std.reshape(2, -1).astype(np.float64)
  d = np.stack([np.mean(((x - mean[c]) * inv[c]) ** 2, axis=-1) for c in range(2)])
  u = (x - mean[0]) * inv[0]
  resid = (np.sum(u**2, -1) - np.sum((u @ o.components.T.astype(np.float64)) ** 2, -1)) / u.shape[-1]
  got = _scores(o, images)
  np.testing.assert_allclose(got["real_mahalanobis"], d[0], rtol=1e-4)
  np.testing.assert_allclose(got["class_mahalanobis"], d.min(0), rtol=1e-4)
  np.testing.assert_allclose(got["pca_real"], resid, rtol=1e-3)
  logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(outliers.energy(logits), -np.log(np.exp(logits).sum(-1)))
  np.testing.assert_allclose(outliers.energy(np.array([[4.0]])), -np.log(np.exp(-2.0) + np.exp(2.0)))


def test_statistics_round_trip_and_refuse_other_shapes(fitted, tmp_path):
  o, _ = fitted
  o.save(tmp_path / "outliers.npz")
  back = outliers.OutlierStats.load(tmp_path / "outliers.npz", 2, (SIZE, SIZE, 3))
  np.testing.assert_array_equal(back.mean, o.mean)
  np.testing.assert_array_equal(back.components, o.components)
  with pytest.raises(ValueError, match="the model needs"):
    outliers.OutlierStats.load(tmp_path / "outliers.npz", 3, (SIZE, SIZE, 3))


def test_flag_rates_are_the_shares_above_each_threshold():
  scores = {"a": np.array([0.0, 2.0, 3.0, 1.0]), "b": np.array([5.0, 5.0, 0.0, 0.0]), "c": np.zeros(4)}
  is_real = np.array([True, True, False, False])
  rates = outliers.flag_rates(scores, is_real, {"a": 1.5, "b": 4.0})  # "c" has no threshold: left out
  assert rates == {
    "a": {"real_flagged": 0.5, "fake_flagged": 0.5},
    "b": {"real_flagged": 1.0, "fake_flagged": 0.0},
  }
  only_reals = outliers.flag_rates({"a": np.array([2.0])}, np.array([True]), {"a": 1.0})
  assert only_reals == {"a": {"real_flagged": 1.0, "fake_flagged": None}}
