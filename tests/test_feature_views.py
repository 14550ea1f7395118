"""The FFT, azimuthal and wavelet-packet views against NumPy / PyWavelets, and their known properties."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pywt

from freqforensics import spectral, wavelets


def _np_fft_centred(x: np.ndarray) -> np.ndarray:
  return np.fft.fftshift(np.fft.fft2(x.astype(np.float64), axes=(-3, -2), norm="ortho"), axes=(-3, -2))


def _np_ring(h: int, w: int, bins: int) -> np.ndarray:
  """Ring of every centred frequency in exact integer arithmetic: floor(r / sqrt(0.5) * bins).

  With r^2 = (ky / H)^2 + (kx / W)^2, (r / sqrt(0.5) * bins)^2 = 2 bins^2 (ky^2 W^2 + kx^2 H^2) / (H W)^2,
  and floor(sqrt(a / b)) = isqrt(a // b) for integers: no rounding at all (bin edges go up).
  """
  ky = np.fft.fftshift(np.fft.fftfreq(h)) * h  # integer frequency indices in the centred layout
  kx = np.fft.fftshift(np.fft.fftfreq(w)) * w
  ring = np.empty((h, w), np.int64)
  for i, a in enumerate(ky.round().astype(int)):
    for j, b in enumerate(kx.round().astype(int)):
      num = 2 * bins * bins * (a * a * w * w + b * b * h * h)
      ring[i, j] = min(math.isqrt(num // (h * h * w * w)), bins - 1)
  return ring


def _np_azimuthal(spectrum: np.ndarray, bins: int) -> np.ndarray:
  """(..., H, W, C) -> (..., bins, C): plain loops over rings."""
  h, w = spectrum.shape[-3:-1]
  ring = _np_ring(h, w, bins)
  return np.stack([spectrum[..., ring == b, :].mean(axis=-2) for b in range(bins)], axis=-2)


def _pywt_tiled(plane: np.ndarray, wavelet: str, level: int) -> np.ndarray:
  """PyWavelets' packets of one 2-D plane in frequency order, tiled into one array."""
  wp = pywt.WaveletPacket2D(plane, wavelet, mode="periodization", maxlevel=level)
  return np.block([[node.data for node in row] for row in wp.get_level(level, order="freq")])


# --- FFT

@pytest.mark.parametrize("h,w", [(8, 8), (15, 20), (64, 48)])
def test_fft_log_magnitude_matches_numpy(h, w):
  x = np.random.default_rng(h * w).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
  ref = _np_fft_centred(x)
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
  np.testing.assert_allclose(power.sum(axis=(1, 2)), (x ** 2).sum(axis=(1, 2)), rtol=1e-12)  # Parseval
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
  power = np.abs(_np_fft_centred(x)) ** 2
  ref = _np_azimuthal(power, bins)
  got = np.asarray(spectral.azimuthal_average(power, bins))
  assert got.shape == (2, bins, 3)
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  feature = np.asarray(jax.jit(spectral.azimuthal_log_power, static_argnums=1)(x, bins))
  np.testing.assert_allclose(feature, np.log(ref + 1e-12), atol=1e-4)
  # Every frequency is in exactly one ring: the ring sizes add up to H * W.
  assert spectral.radial_bins(h, w, bins)[1].sum() == h * w


@pytest.mark.parametrize("h,w,ky,kx", [(32, 32, 0, 5), (32, 32, 7, 9), (64, 48, 12, 0), (48, 64, 10, 21), (33, 40, 4, 13)])
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

@pytest.mark.parametrize("wavelet,level,h,w", [("haar", 1, 8, 8), ("haar", 3, 32, 16), ("db2", 2, 16, 24),
                                               ("db4", 2, 16, 16), ("sym3", 3, 8, 16), ("coif1", 1, 12, 10)])
def test_wavelet_packets_match_pywavelets(wavelet, level, h, w):
  x = np.random.default_rng(level * h + w).normal(size=(2, h, w, 3))
  ref = np.stack([np.stack([_pywt_tiled(x[b, :, :, c], wavelet, level) for c in range(3)], -1) for b in range(2)])
  with jax.enable_x64(True):
    got = np.asarray(spectral.wavelet_packets(jnp.asarray(x), wavelet, level))
  assert got.shape == x.shape
  np.testing.assert_allclose(got, ref, atol=1e-10)
  u8 = np.random.default_rng(1).integers(0, 256, (1, h, w, 2), dtype=np.uint8)
  ref8 = np.stack([_pywt_tiled(u8[0, :, :, c].astype(np.float64), wavelet, level) for c in range(2)], -1)
  got8 = np.asarray(jax.jit(spectral.wavelet_packets, static_argnums=(1, 2))(u8, wavelet, level))[0]
  assert got8.dtype == np.float32
  np.testing.assert_allclose(got8, ref8, atol=2e-5 * np.abs(ref8).max())


@pytest.mark.parametrize("wavelet", ["haar", "db4", "sym5"])
def test_wavelet_packets_are_orthonormal(wavelet):
  x = np.random.default_rng(2).normal(size=(2, 32, 32, 3))
  with jax.enable_x64(True):
    c = np.asarray(spectral.wavelet_packets(jnp.asarray(x), wavelet, 2))
  np.testing.assert_allclose((c ** 2).sum(axis=(1, 2)), (x ** 2).sum(axis=(1, 2)), rtol=1e-12)  # Parseval
  p = wavelets.packet_matrix(32, wavelet, 2)
  np.testing.assert_allclose(p @ p.T, np.eye(32), atol=1e-12)  # so P.T inverts it
  # The DCT is orthonormal as well.
  with jax.enable_x64(True):
    d = np.asarray(spectral.dct2(jnp.asarray(x)))
  np.testing.assert_allclose((d ** 2).sum(axis=(1, 2)), (x ** 2).sum(axis=(1, 2)), rtol=1e-12)


def test_wavelet_packets_are_in_frequency_order():
  """A constant image is all lowest band (top-left packet); the finest checkerboard, the transposed
  convolution's artifact, is all highest band (bottom-right packet)."""
  level, side = 2, 16
  block = side >> level
  yy, xx = np.mgrid[:side, :side]
  for image, (i, j) in ((np.ones((side, side)), (0, 0)), ((-1.0) ** (yy + xx), (3, 3))):
    c = np.asarray(spectral.wavelet_packets(image[:, :, None], "haar", level))[:, :, 0]
    energy = (c ** 2).reshape(4, block, 4, block).sum(axis=(1, 3))
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
  for kind, params in (("dct_log", {}), ("fft_log", {}), ("azimuthal", {"bins": 16}),
                       ("wpt_log", {"wavelet": "db2", "level": 2})):
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
      "fft_log": np.log(np.abs(_np_fft_centred(x)) + 1e-12),
      "azimuthal-b8": np.log(_np_azimuthal(np.abs(_np_fft_centred(x)) ** 2, 8) + 1e-12),
      "wpt_log-db2-l2": np.log(np.abs(np.stack([np.stack([_pywt_tiled(x[b, :, :, c].astype(np.float64), "db2", 2)
                                                          for c in range(3)], -1) for b in range(8)])) + 1e-12),
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
