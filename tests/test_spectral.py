"""Spectral transforms against SciPy/NumPy, round trips and the feature entry point."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
from conftest import np_azimuthal, np_fft_centred, pywt_tiled

from freqforensics import spectral, wavelets

SIZES = [(8, 8), (8, 16), (33, 20), (128, 128), (64, 200), (600, 520), (1024, 1024)]


def _rel_err(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("h,w", SIZES)
def test_dct2_matches_scipy_float32(h, w):
  rng = np.random.default_rng(h * 1000 + w)
  x = (
    rng.integers(0, 256, (2, h, w, 3)).astype(np.float32)
    if h * w <= 128 * 200
    else rng.integers(0, 256, (1, h, w, 3)).astype(np.float32)
  )
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


# --- FFT


@pytest.mark.parametrize("h,w", [(8, 8), (15, 20), (64, 48)])
def test_fft_log_magnitude_matches_numpy(h, w):
  x = np.random.default_rng(h * w).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
  ref = np_fft_centred(x)
  got = np.asarray(jax.jit(spectral.fft_log_magnitude)(x))
  assert got.dtype == np.float32 and got.shape == x.shape
  # float32 rounding of the transform (~1e-6 of the largest |F|) becomes rounding / |F| after the log.
  tol = 3e-6 * np.abs(ref).max() / np.abs(ref) + 1e-5
  assert np.all(np.abs(got - np.log(np.abs(ref) + 1e-12)) <= tol)
  with jax.enable_x64(True):
    f64 = np.asarray(spectral.fft2_centred(jnp.asarray(x, jnp.float64)))
  np.testing.assert_allclose(f64, ref, atol=1e-9 * np.abs(ref).max())


def test_fft_is_orthonormal_and_centred():
  x = np.random.default_rng(0).normal(size=(3, 16, 12, 2))
  with jax.enable_x64(True):
    power = np.asarray(spectral.power_spectrum(jnp.asarray(x)))
  np.testing.assert_allclose(power.sum(axis=(1, 2)), (x**2).sum(axis=(1, 2)), rtol=1e-12)  # Parseval
  # A cosine of 3 cycles down and 2 across peaks at (H//2 +- 3, W//2 +- 2) and nowhere else.
  yy, xx = np.mgrid[:16, :12]
  wave = np.cos(2 * np.pi * (3 * yy / 16 + 2 * xx / 12))[None, :, :, None]
  p = np.asarray(spectral.power_spectrum(wave))[0, :, :, 0]
  peaks = {tuple(map(int, ij)) for ij in np.argwhere(p > 1e-3 * p.max())}
  assert peaks == {(8 + 3, 6 + 2), (8 - 3, 6 - 2)}


# --- azimuthal average


@pytest.mark.parametrize("h,w,bins", [(16, 16, 8), (32, 32, 16), (15, 20, 7), (64, 48, 24)])
def test_azimuthal_average_matches_loops(h, w, bins):
  rng = np.random.default_rng(bins)
  x = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
  power = np.abs(np_fft_centred(x)) ** 2
  ref = np_azimuthal(power, bins)
  got = np.asarray(spectral.azimuthal_average(power, bins))
  assert got.shape == (2, bins, 3)
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  feature = np.asarray(jax.jit(spectral.azimuthal_log_power, static_argnums=1)(x, bins))
  np.testing.assert_allclose(feature, np.log(ref + 1e-12), atol=1e-4)
  # Every frequency is in exactly one ring: the ring sizes add up to H * W.
  assert spectral.radial_bins(h, w, bins)[1].sum() == h * w


@pytest.mark.parametrize(
  "h,w,ky,kx", [(32, 32, 0, 5), (32, 32, 7, 9), (64, 48, 12, 0), (48, 64, 10, 21), (33, 40, 4, 13)]
)
def test_pure_sinusoid_is_one_peak_at_its_radius(h, w, ky, kx):
  bins = 16
  yy, xx = np.mgrid[:h, :w]
  wave = np.cos(2 * np.pi * (ky * yy / h + kx * xx / w))[:, :, None]
  profile = np.asarray(spectral.azimuthal_average(np.asarray(spectral.power_spectrum(wave)), bins))[:, 0]
  radius = np.hypot(ky / h, kx / w)  # cycles per pixel
  expect = int(radius / np.sqrt(0.5) * bins)  # these radii are far from a bin edge
  assert abs(radius / np.sqrt(0.5) * bins - expect - 0.5) < 0.49
  assert int(np.argmax(profile)) == expect
  others = np.delete(profile, expect)
  assert others.max() < 1e-6 * profile[expect]


def test_bins_are_fixed_frequencies_at_any_size():
  """The same frequency in cycles per pixel lands in the same bin at every size; the shape is (bins, C)."""
  bins = 12
  for side in (16, 32, 48, 96):  # 0.3125 * side whole cycles
    yy, xx = np.mgrid[:side, :side]
    wave = np.cos(2 * np.pi * 0.3125 * xx)[:, :, None] * np.ones((1, 1, 2))  # 0.3125 cycles / pixel
    profile = np.asarray(spectral.azimuthal_average(np.asarray(spectral.power_spectrum(wave)), bins))
    assert profile.shape == (bins, 2)
    assert int(np.argmax(profile[:, 0])) == int(0.3125 / np.sqrt(0.5) * bins)
  with pytest.raises(ValueError, match="at most 8 bins"):
    spectral.radial_bins(16, 20, 40)


# --- wavelet packets


@pytest.mark.parametrize(
  "wavelet,level,h,w",
  [
    ("haar", 1, 8, 8),
    ("haar", 3, 32, 16),
    ("db2", 2, 16, 24),
    ("db4", 2, 16, 16),
    ("sym3", 3, 8, 16),
    ("coif1", 1, 12, 10),
  ],
)
def test_wavelet_packets_match_pywavelets(wavelet, level, h, w):
  x = np.random.default_rng(level * h + w).normal(size=(2, h, w, 3))
  ref = np.stack([np.stack([pywt_tiled(x[b, :, :, c], wavelet, level) for c in range(3)], -1) for b in range(2)])
  with jax.enable_x64(True):
    got = np.asarray(spectral.wavelet_packets(jnp.asarray(x), wavelet, level))
  assert got.shape == x.shape
  np.testing.assert_allclose(got, ref, atol=1e-10)
  u8 = np.random.default_rng(1).integers(0, 256, (1, h, w, 2), dtype=np.uint8)
  ref8 = np.stack([pywt_tiled(u8[0, :, :, c].astype(np.float64), wavelet, level) for c in range(2)], -1)
  got8 = np.asarray(jax.jit(spectral.wavelet_packets, static_argnums=(1, 2))(u8, wavelet, level))[0]
  assert got8.dtype == np.float32
  np.testing.assert_allclose(got8, ref8, atol=2e-5 * np.abs(ref8).max())


@pytest.mark.parametrize("wavelet", ["haar", "db4", "sym5"])
def test_wavelet_packets_are_orthonormal(wavelet):
  x = np.random.default_rng(2).normal(size=(2, 32, 32, 3))
  with jax.enable_x64(True):
    c = np.asarray(spectral.wavelet_packets(jnp.asarray(x), wavelet, 2))
  np.testing.assert_allclose((c**2).sum(axis=(1, 2)), (x**2).sum(axis=(1, 2)), rtol=1e-12)  # Parseval
  p = wavelets.packet_matrix(32, wavelet, 2)
  np.testing.assert_allclose(p @ p.T, np.eye(32), atol=1e-12)  # so P.T inverts it
  # The DCT is orthonormal as well.
  with jax.enable_x64(True):
    d = np.asarray(spectral.dct2(jnp.asarray(x)))
  np.testing.assert_allclose((d**2).sum(axis=(1, 2)), (x**2).sum(axis=(1, 2)), rtol=1e-12)


def test_wavelet_packets_are_in_frequency_order():
  """A constant image is all lowest band (top-left packet); the finest checkerboard, the transposed
  convolution's artifact, is all highest band (bottom-right packet)."""
  level, side = 2, 16
  block = side >> level
  yy, xx = np.mgrid[:side, :side]
  for image, (i, j) in ((np.ones((side, side)), (0, 0)), ((-1.0) ** (yy + xx), (3, 3))):
    c = np.asarray(spectral.wavelet_packets(image[:, :, None], "haar", level))[:, :, 0]
    energy = (c**2).reshape(4, block, 4, block).sum(axis=(1, 3))
    assert energy[i, j] == pytest.approx(energy.sum(), rel=1e-5)


def test_wavelet_and_level_are_checked():
  with pytest.raises(ValueError, match="not orthogonal"):
    wavelets.check_wavelet("bior2.2")
  with pytest.raises(ValueError, match="unknown wavelet"):
    wavelets.check_wavelet("nope")
  with pytest.raises(ValueError, match="does not split into 2\\^3"):
    spectral.wavelet_packets(np.zeros((20, 16, 1)), "haar", 3)


# --- feature names and the feature entry point


def test_feature_names_round_trip():
  for kind, params in (
    ("dct_log", {}),
    ("fft_log", {}),
    ("azimuthal", {"bins": 16}),
    ("wpt_log", {"wavelet": "db2", "level": 2}),
  ):
    name = spectral.feature_name(kind, **params)
    spec = spectral.parse_feature(name)
    assert spec.kind == kind and spec.name == name
    assert all(getattr(spec, k) == v for k, v in params.items())
  assert spectral.feature_name("wpt_log", wavelet="sym4", level=1) == "wpt_log-sym4-l1"
  assert spectral.feature_name("azimuthal", bins=20, wavelet="db2") == "azimuthal-b20"  # only its own parameters
  for bad in ("fft", "azimuthal-bx", "wpt_log-bior2.2-l2", "dct_log-3"):
    with pytest.raises(ValueError):
      spectral.parse_feature(bad)
  assert spectral.feature_shape("azimuthal-b10", (32, 24, 3)) == (10, 3)
  assert spectral.feature_shape("wpt_log-db2-l3", (32, 24, 1)) == (32, 24, 1)
  assert not spectral.needs_stats("pixel") and spectral.needs_stats("wpt_log-haar-l1")


def test_features_standardise_each_view():
  x = np.random.default_rng(7).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
  refs = {
    "fft_log": np.log(np.abs(np_fft_centred(x)) + 1e-12),
    "azimuthal-b8": np.log(np_azimuthal(np.abs(np_fft_centred(x)) ** 2, 8) + 1e-12),
    "wpt_log-db2-l2": np.log(
      np.abs(
        np.stack(
          [np.stack([pywt_tiled(x[b, :, :, c].astype(np.float64), "db2", 2) for c in range(3)], -1) for b in range(8)]
        )
      )
      + 1e-12
    ),
  }
  for name, ref in refs.items():
    mean, std = ref.mean(axis=0), ref.std(axis=0) + 0.5
    stats = spectral.FeatureStats(jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32))
    got = np.asarray(jax.jit(spectral.features, static_argnums=1)(x, name, stats))
    # the log of a near-zero coefficient amplifies float32 rounding; compare where |c| is not tiny
    ok = np.exp(ref) > 1e-2 * np.exp(ref).max() if name != "azimuthal-b8" else np.ones(ref.shape, bool)
    np.testing.assert_allclose(got[ok], ((ref - mean) / std)[ok], atol=2e-3)
    chunked = np.asarray(spectral.features(x, name, stats, chunk=2))
    np.testing.assert_allclose(chunked, got, atol=1e-5)
