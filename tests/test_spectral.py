"""Spectral transforms against SciPy/NumPy, round trips and the feature entry point."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from freqforensics import spectral

SIZES = [(8, 8), (8, 16), (33, 20), (128, 128), (64, 200), (600, 520), (1024, 1024)]


def _rel_err(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("h,w", SIZES)
def test_dct2_matches_scipy_float32(h, w):
  rng = np.random.default_rng(h * 1000 + w)
  x = rng.integers(0, 256, (2, h, w, 3)).astype(np.float32) if h * w <= 128 * 200 else \
      rng.integers(0, 256, (1, h, w, 3)).astype(np.float32)
  ref = scipy.fft.dctn(x.astype(np.float64), type=2, norm="ortho", axes=(-3, -2))
  got = jax.jit(spectral.dct2)(x)
  assert got.dtype == jnp.float32
  assert _rel_err(got, ref) < 1e-5


@pytest.mark.parametrize("h,w", [(8, 8), (31, 64), (128, 128)])
@pytest.mark.parametrize("method", ["fft", "matmul"])
def test_dct2_matches_scipy_float64(h, w, method):
  x = np.random.default_rng(1).normal(size=(3, h, w, 2))
  ref = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-3, -2))
  with jax.enable_x64(True):
    got = np.asarray(spectral.dct2(jnp.asarray(x, jnp.float64), method=method))
  assert got.dtype == np.float64
  np.testing.assert_allclose(got, ref, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("method", ["fft", "matmul"])
@pytest.mark.parametrize("h,w", [(8, 8), (7, 5), (48, 40), (33, 20), (64, 200), (1, 6)])
def test_each_implementation_matches_scipy(method, h, w):
  """Both paths are exact at odd, even, square and non-square sizes, whichever `auto` picks."""
  x = np.random.default_rng(h * w).normal(size=(2, h, w, 3)).astype(np.float32)
  ref = scipy.fft.dctn(x.astype(np.float64), type=2, norm="ortho", axes=(-3, -2))
  assert _rel_err(spectral.dct2(x, method=method), ref) < 1e-5
  assert _rel_err(spectral.idct2(ref.astype(np.float32), method=method), x) < 1e-5


@pytest.mark.parametrize("h,w", [(8, 8), (40, 24), (128, 128), (1024, 600)])
def test_idct2_round_trip(h, w):
  x = np.random.default_rng(3).normal(size=(1, h, w, 3)).astype(np.float32)
  back = np.asarray(spectral.idct2(spectral.dct2(x)))
  assert _rel_err(back, x) < 1e-5
  ref = scipy.fft.idctn(x.astype(np.float64), type=2, norm="ortho", axes=(-3, -2))
  assert _rel_err(spectral.idct2(x), ref) < 1e-5


def test_dct_matrix_is_orthonormal():
  c = spectral.dct_matrix(37)
  np.testing.assert_allclose(c @ c.T, np.eye(37), atol=1e-12)


def test_dct2_accepts_uint8_and_unbatched_images():
  x = np.random.default_rng(4).integers(0, 256, (16, 12, 1), dtype=np.uint8)
  ref = scipy.fft.dctn(x.astype(np.float64), type=2, norm="ortho", axes=(0, 1))
  assert _rel_err(spectral.dct2(x), ref) < 1e-5


def test_log_standardize_and_pixel_scaling_against_numpy():
  x = np.array([-2.0, 0.0, 1e-20, 3.0], np.float32)
  np.testing.assert_allclose(spectral.log_scale(x), np.log(np.abs(x) + 1e-12), rtol=1e-6)
  np.testing.assert_allclose(spectral.log_scale(x, eps=1.0), np.log(np.abs(x) + 1.0), rtol=1e-6)
  np.testing.assert_allclose(spectral.standardize(x, 1.0, 2.0), (x - 1.0) / 2.0)
  px = np.array([0, 127, 255], np.uint8)
  np.testing.assert_allclose(spectral.scale_pixels(px), [-1.0, 127 / 127.5 - 1, 1.0], atol=1e-7)


def test_features_kinds():
  images = np.random.default_rng(5).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
  dct = scipy.fft.dctn(images.astype(np.float64), type=2, norm="ortho", axes=(1, 2))
  mean, std = np.full((16, 16, 3), 0.5, np.float32), np.full((16, 16, 3), 2.0, np.float32)
  stats = spectral.FeatureStats(jnp.asarray(mean), jnp.asarray(std))
  f = jax.jit(spectral.features, static_argnums=1)
  np.testing.assert_allclose(f(images, "pixel", None), images / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(f(images, "dct", stats), (dct - 0.5) / 2.0, rtol=1e-4, atol=1e-3)
  got = np.asarray(f(images, "dct_log", stats))
  want = (np.log(np.abs(dct) + 1e-12) - 0.5) / 2.0
  # log turns the DCT's float32 rounding (absolute, ~1e-6 of the largest coefficient) into an error
  # of rounding / |c|; allow exactly that, divided by the std of 2.
  tol = 2e-6 * np.abs(dct).max() / np.abs(dct) / 2.0 + 1e-6
  assert np.all(np.abs(got - want) <= tol)
  with pytest.raises(ValueError, match="needs FeatureStats"):
    spectral.features(images, "dct_log", None)
  with pytest.raises(ValueError, match="unknown feature kind"):
    spectral.features(images, "wavelet", stats)


def test_chunked_features_equal_one_pass():
  images = np.random.default_rng(6).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
  stats = spectral.FeatureStats(jnp.full((8, 8, 3), 0.1), jnp.full((8, 8, 3), 1.5))
  one = spectral.features(images, "dct_log", stats, chunk=0)
  for chunk in (1, 3, 4):
    np.testing.assert_allclose(spectral.features(images, "dct_log", stats, chunk=chunk), one, rtol=1e-6, atol=1e-6)
  assert spectral.default_chunk((256, 128, 128, 3)) == 16 and spectral.default_chunk((8, 128, 128, 3)) == 0
