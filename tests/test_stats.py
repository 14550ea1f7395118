"""Streaming moments against numpy over several merged, masked batches; the .npz round trip."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from freqforensics import stats
from freqforensics.errors import UserError


def test_streaming_moments_equal_numpy_over_uneven_batches():
  rng = np.random.default_rng(0)
  data = rng.normal(loc=1e4, scale=3.0, size=(203, 5, 4, 3)).astype(np.float32)  # large mean: a naive
  acc = stats.init((5, 4, 3))  # sum of squares fails
  for lo, hi in [(0, 64), (64, 100), (100, 101), (101, 203)]:
    acc = stats.update(acc, jnp.asarray(data[lo:hi]))
  ref = data.astype(np.float64)
  assert float(acc.count) == 203
  assert acc.mean.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(acc.mean), ref.mean(0), rtol=1e-12)
  np.testing.assert_allclose(stats.variance(acc), ref.var(0), rtol=1e-9)


def test_masked_rows_do_not_count_and_merge_is_exact():
  rng = np.random.default_rng(1)
  data = rng.normal(size=(50, 3, 3, 1))
  padded = np.concatenate([data[40:], np.full((6, 3, 3, 1), 1e6)])  # padding must not count
  mask = np.r_[np.ones(10), np.zeros(6)]
  a = stats.update(stats.init((3, 3, 1)), jnp.asarray(data[:40], jnp.float32))
  b = stats.update(stats.init((3, 3, 1)), jnp.asarray(padded, jnp.float32), jnp.asarray(mask))
  merged = stats.merge(a, b)
  ref = data.astype(np.float32).astype(np.float64)
  assert float(merged.count) == 50
  np.testing.assert_allclose(np.asarray(merged.mean), ref.mean(0), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(stats.variance(merged), ref.var(0), rtol=1e-9)


def test_save_load_roundtrip_without_pickle(tmp_path):
  rng = np.random.default_rng(2)
  data = rng.normal(size=(30, 4, 4, 3))
  data[:, 0, 0, 0] = 7.0  # a constant coefficient: std must become 1, not 0
  acc = stats.update(stats.init((4, 4, 3)), jnp.asarray(data, jnp.float32))
  path = tmp_path / "stats_dct_log.npz"
  stats.save(path, acc, "dct_log")
  with np.load(path, allow_pickle=False) as f:
    assert str(f["kind"]) == "dct_log" and float(f["count"]) == 30
    np.testing.assert_allclose(f["var"], data.astype(np.float32).astype(np.float64).var(0), rtol=1e-9, atol=1e-12)
  fs = stats.load(path, "dct_log")
  assert fs.mean.dtype == jnp.float32
  assert float(fs.std[0, 0, 0]) == 1.0
  np.testing.assert_allclose(fs.std[1:], data.astype(np.float32).std(0)[1:], rtol=1e-5)
  with pytest.raises(ValueError, match="not 'dct'"):
    stats.load(path, "dct")


def test_variance_of_empty_accumulator_raises():
  with pytest.raises(ValueError):
    stats.variance(stats.init((2, 2, 1)))


def test_per_class_moments_equal_numpy_and_are_saved(tmp_path):
  rng = np.random.default_rng(3)
  data = rng.normal(loc=5.0, scale=2.0, size=(70, 4, 3, 2))
  labels = rng.integers(0, 3, 70)
  labels[:5] = 2  # every class present
  acc, classes = stats.init((4, 3, 2)), stats.class_init(3, (4, 3, 2))
  for lo, hi in [(0, 32), (32, 64), (64, 70)]:
    n = hi - lo
    x = np.concatenate([data[lo:hi], np.full((32 - n,) + data.shape[1:], 1e6)])  # padded batches
    lab = np.concatenate([labels[lo:hi], np.zeros(32 - n, int)])
    mask = jnp.asarray(np.r_[np.ones(n), np.zeros(32 - n)])
    acc = stats.update(acc, jnp.asarray(x, jnp.float32), mask)
    classes = stats.class_update(classes, jnp.asarray(x, jnp.float32), jnp.asarray(lab), mask)
  ref = data.astype(np.float32).astype(np.float64)
  for c in range(3):
    np.testing.assert_allclose(np.asarray(classes.mean[c]), ref[labels == c].mean(0), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(classes.m2[c]) / float(classes.count[c]), ref[labels == c].var(0), rtol=1e-9)
  path = tmp_path / "stats_dct_log.npz"
  stats.save(path, acc, "dct_log", classes)
  count, mean, var = stats.load_class_moments(path)
  assert count.tolist() == [float(np.sum(labels == c)) for c in range(3)]
  np.testing.assert_allclose(var[1], ref[labels == 1].var(0), rtol=1e-9)
  stats.save(path, acc, "dct_log")  # a file from before the per-class moments
  assert stats.load_class_moments(path) is None


def test_the_whole_splits_moments_come_from_the_per_class_ones():
  rng = np.random.default_rng(5)
  data = rng.normal(loc=1e3, scale=2.0, size=(90, 4, 4, 3)).astype(np.float32)
  labels = rng.integers(0, 4, size=90)
  labels[labels == 2] = 3  # a label with no examples at all must not count
  classes = stats.class_init(4, (4, 4, 3))
  for lo, hi in [(0, 32), (32, 33), (33, 90)]:
    classes = stats.class_update(classes, jnp.asarray(data[lo:hi]), jnp.asarray(labels[lo:hi]))
  acc = stats.combine_classes(classes)
  ref = data.astype(np.float64)
  assert float(acc.count) == 90
  np.testing.assert_allclose(acc.mean, ref.mean(0), rtol=1e-12)
  np.testing.assert_allclose(stats.variance(acc), ref.var(0), rtol=1e-9)


def _cache(tmp_path, **arrays):
  """A statistics file of 2 classes of (4, 4, 1) features in a data cache, as `feature_stats` writes it, with
  `arrays` replaced; and a stand-in for the prepared dataset it belongs to."""
  from types import SimpleNamespace

  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4, 4, 1)), jnp.float32)
  labels = jnp.asarray([0, 1] * 4)
  classes = stats.class_update(stats.class_init(2, (4, 4, 1)), x, labels)
  stats.save(tmp_path / "stats_dct_log.npz", stats.combine_classes(classes), "dct_log", classes)
  with np.load(tmp_path / "stats_dct_log.npz") as f:
    saved = dict({k: f[k] for k in f.files}, **arrays)
  with open(tmp_path / "stats_dct_log.npz", "wb") as f:
    np.savez(f, **saved)  # object arrays are pickled, as a hand-made file would be
  return SimpleNamespace(path=tmp_path, image_shape=(4, 4, 1), label_names=("A_real", "B_gan"))


def test_a_cached_statistics_file_is_used_as_written(tmp_path):
  prepared = _cache(tmp_path)
  got, path = stats.feature_stats(prepared, "dct_log", mesh=None, batch_size=4, progress=False)
  assert path == tmp_path / "stats_dct_log.npz" and got.mean.shape == (4, 4, 1)


@pytest.mark.parametrize(
  "arrays,needle",
  [
    ({"class_mean": np.array([{"a": 1}], dtype=object)}, "Object arrays cannot be loaded"),
    ({"mean": np.array(["x"], dtype=object)}, "Object arrays cannot be loaded"),
    ({"var": np.full((4, 4, 1), np.nan)}, "non-finite"),
    ({"class_var": np.full((2, 4, 4, 1), np.inf)}, "non-finite"),
    ({"mean": np.zeros((8, 8, 1)), "var": np.ones((8, 8, 1))}, "statistics of shape"),
  ],
)
def test_a_damaged_statistics_cache_is_one_line(tmp_path, arrays, needle):
  prepared = _cache(tmp_path, **arrays)
  with pytest.raises(UserError, match=needle) as e:
    stats.feature_stats(prepared, "dct_log", mesh=None, batch_size=4, progress=False)
  assert "\n" not in str(e.value) and "remove that file" in str(e.value)
