"""PRNU numerics: wavelet noise residuals, class fingerprints, normalised correlation (numpy/PyWavelets).

After Lukas, Fridrich and Goljan (2006): each class (camera, or generator) gets the fingerprint of the
noise residuals W = I - F(I) of its images, and an image goes to the class whose fingerprint its
residual correlates with best (`residuals`, `Fingerprints`, `finish_fingerprint`; the steps are in
docs/baselines.md). Batches `(B, H, W, C)` in float64, vectorised over images and channels; no JAX
(worker processes load it). One decomposition serves a whole (levels, sigma) grid: band energies do
not depend on sigma, nor the level-j details on the number of levels.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pywt
from scipy import ndimage

WAVELET = "db4"
GRAY_WEIGHTS = np.array([0.29893602, 0.58704307, 0.11402090])  # ITU-R BT.601 luma, as in rgb2gray
SATURATION_LEVEL = 250  # a flat area at its channel's maximum above this is clipped (weight 0)
INTENSITY_PEAK = 252.0  # intensity weight: x / 252 below, Gaussian fall-off (variance 6) above


def _pad(x: np.ndarray, multiple: int) -> np.ndarray:
  """Pads H and W of `(B, H, W, C)` at the end by reflection up to multiples of `multiple`."""
  ph, pw = -x.shape[1] % multiple, -x.shape[2] % multiple
  if not (ph or pw):
    return x
  return np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="symmetric")


def _min_local_energy(band: np.ndarray, windows: Sequence[int], mode: str) -> np.ndarray:
  """min over square windows w of the local mean of band^2 (windows over axes 1, 2)."""
  energy = band * band
  size = lambda w: (1, w, w) + (1,) * (band.ndim - 3)
  out = ndimage.uniform_filter(energy, size(windows[0]), mode=mode)
  for w in windows[1:]:
    np.minimum(out, ndimage.uniform_filter(energy, size(w), mode=mode), out=out)
  return out


def noise_gain(min_energy: np.ndarray, sigma: float) -> np.ndarray:
  """The noise share sigma^2 / (v + sigma^2) of the adaptive Wiener filter, v = max(0, E - sigma^2)."""
  var = sigma * sigma
  return var / (np.maximum(min_energy - var, 0.0) + var)


def residuals(
  images: np.ndarray, grid: Sequence[tuple[int, float]], windows: Sequence[int] = (3, 5, 7, 9)
) -> Iterator[np.ndarray]:
  """Noise residuals `(B, H, W, C)` float64 of a batch, one per (levels, sigma) of `grid`, in order.

  `images` are pixel values 0..255 (uint8 or float); sigma is in the same units.
  """
  x = np.asarray(images, np.float64)
  if x.ndim == 3:
    x = x[..., None]
  h, w = x.shape[1:3]
  top = max(levels for levels, _ in grid)
  xp = _pad(x, 2**top)
  with warnings.catch_warnings():  # small images: periodic extension has no boundary effects to warn of
    warnings.simplefilter("ignore", UserWarning)
    coeffs = pywt.wavedec2(xp, WAVELET, mode="periodization", level=top, axes=(1, 2))
  details = coeffs[1:][::-1]  # details[j - 1]: the three bands of level j (1 = finest)
  energies = [[_min_local_energy(d, windows, "reflect") for d in bands] for bands in details]
  for levels, sigma in grid:
    noise = [tuple(d * noise_gain(e, sigma) for d, e in zip(details[j], energies[j])) for j in range(levels)]
    approx = np.zeros_like(noise[levels - 1][0])  # the approximation is all signal
    rec = pywt.waverec2([approx] + noise[::-1], WAVELET, mode="periodization", axes=(1, 2))
    yield rec[:, :h, :w]


def noise_residual(image: np.ndarray, levels: int, sigma: float, windows: Sequence[int] = (3, 5, 7, 9)) -> np.ndarray:
  """The residual `(H, W, C)` of one image (0..255) for one (levels, sigma)."""
  return next(residuals(np.asarray(image)[None], [(levels, sigma)], windows))[0]


def to_gray(x: np.ndarray) -> np.ndarray:
  """`(B, H, W, C)` -> `(B, H, W)`: luma weights for RGB, the channel itself for grayscale."""
  if x.shape[-1] == 3:  # a weighted sum, not a BLAS product: no threads to oversubscribe in workers
    return x[..., 0] * GRAY_WEIGHTS[0] + x[..., 1] * GRAY_WEIGHTS[1] + x[..., 2] * GRAY_WEIGHTS[2]
  return x[..., 0]


def zero_mean_lattice(x: np.ndarray) -> np.ndarray:
  """`(B, H, W)` with zero-mean columns, then zero-mean rows, in each of the four 2x2 sub-lattices."""
  out = np.array(x, np.float64, copy=True)
  for i in (0, 1):
    for j in (0, 1):
      sub = out[:, i::2, j::2]
      sub -= sub.mean(axis=1, keepdims=True)
      sub -= sub.mean(axis=2, keepdims=True)
      out[:, i::2, j::2] = sub
  return out


def wiener_dft(x: np.ndarray, windows: Sequence[int] = (3, 5, 7, 9)) -> np.ndarray:
  """Adaptive Wiener filtering of `(B, H, W)` in the DFT domain, noise level = each image's std.

  The magnitude spectrum (scaled so its mean square equals the image's) is filtered like a wavelet
  band with sigma = std(x): flat, noise-like frequencies pass, isolated peaks (periodic patterns
  that every class shares) are damped. The phase is kept.
  """
  x = np.asarray(x, np.float64)
  h, w = x.shape[1:]
  spec = np.fft.fft2(x, axes=(1, 2))
  energy = (spec.real**2 + spec.imag**2) / (h * w)
  sigma = x.reshape(len(x), -1).std(axis=1, ddof=1) if h * w > 1 else np.zeros(len(x))
  var = (sigma * sigma)[:, None, None]
  min_energy = _min_local_energy(energy, windows, "wrap")
  gain = np.divide(var, np.maximum(min_energy - var, 0.0) + var, out=np.zeros_like(min_energy), where=var > 0)
  return np.fft.ifft2(spec * gain, axes=(1, 2)).real


def intensity_weight(images: np.ndarray) -> np.ndarray:
  """Per-pixel weight t of the fingerprint estimate: x/252 up to 252, then exp(-(x-252)^2/6); 0 if clipped.

  A pixel is clipped when it lies in a flat area (a 4-neighbour has the same value) at its
  channel's maximum, and that maximum is above 250: such pixels carry no sensor pattern.
  """
  x = np.asarray(images, np.float64)
  if x.ndim == 3:
    x = x[..., None]
  t = np.where(x < INTENSITY_PEAK, x / INTENSITY_PEAK, np.exp(-((x - INTENSITY_PEAK) ** 2) / 6.0))
  peak = x.max(axis=(1, 2), keepdims=True)
  flat = np.zeros(x.shape, bool)
  flat[:, 1:] |= x[:, 1:] == x[:, :-1]
  flat[:, :-1] |= x[:, :-1] == x[:, 1:]
  flat[:, :, 1:] |= x[:, :, 1:] == x[:, :, :-1]
  flat[:, :, :-1] |= x[:, :, :-1] == x[:, :, 1:]
  clipped = flat & (x == peak) & (peak > SATURATION_LEVEL)
  return np.where(clipped, 0.0, t)


def accumulate(
  images: np.ndarray,
  labels: np.ndarray,
  num_classes: int,
  grid: Sequence[tuple[int, float]],
  windows: Sequence[int] = (3, 5, 7, 9),
) -> tuple[np.ndarray, np.ndarray]:
  """Per grid point and class sum(W t) `(G, num_classes, H, W, C)`; per class sum(t^2) `(num_classes, H, W, C)`.

  Args:
    images: uint8 or float images `(B, H, W, C)`.
    labels: int class labels `(B,)`.
    num_classes: the number of classes (rows of the sums).
    grid: (wavelet levels, sigma in 0..255 pixel units) per grid point.
    windows: the square window sides of the local variance estimate.
  """
  t = intensity_weight(images)
  onehot = np.eye(num_classes)[np.asarray(labels, np.int64)]  # (B, num_classes)
  tt = np.einsum("bk,bhwc->khwc", onehot, t * t)
  wt = np.stack([np.einsum("bk,bhwc->khwc", onehot, r * t) for r in residuals(images, grid, windows)])
  return wt, tt


def finish_fingerprint(sum_wt: np.ndarray, sum_tt: np.ndarray, windows: Sequence[int] = (3, 5, 7, 9)) -> np.ndarray:
  """Fingerprints `(..., H, W)` from accumulated sums `(..., H, W, C)`: estimate, gray, zero mean, DFT Wiener."""
  lead = sum_wt.shape[:-3]
  k = sum_wt / (sum_tt + 1.0)  # + 1: pixels no image lit stay 0 instead of 0/0
  k = k.reshape((-1,) + k.shape[-3:])
  out = wiener_dft(zero_mean_lattice(to_gray(k)), windows)
  return out.reshape(lead + out.shape[1:])


def test_statistic(residual: np.ndarray, windows: Sequence[int] = (3, 5, 7, 9)) -> np.ndarray:
  """A batch of residuals `(B, H, W, C)` prepared for correlation: gray, zero mean, DFT Wiener."""
  return wiener_dft(zero_mean_lattice(to_gray(residual)), windows)


def normalised_correlation(x: np.ndarray, k: np.ndarray) -> np.ndarray:
  """Pearson correlation of every row of `x` `(B, P)` with every row of `k` `(C, P)`: `(B, C)`.

  A constant row (no pattern at all) correlates 0 with everything.
  """
  x = x - x.mean(axis=1, keepdims=True)
  k = k - k.mean(axis=1, keepdims=True)
  nx, nk = np.linalg.norm(x, axis=1), np.linalg.norm(k, axis=1)
  denom = np.outer(nx, nk)
  return np.divide(x @ k.T, denom, out=np.zeros(denom.shape), where=denom > 0)


def predict(
  images: np.ndarray, grid: Sequence[tuple[int, float]], windows: Sequence[int], fingerprints: np.ndarray
) -> np.ndarray:
  """Predicted classes `(G, B)` of a batch for every grid point (highest normalised correlation).

  `fingerprints` is `(G, num_classes, H, W)`: the classes' fingerprints for each grid point.
  """
  preds = []
  for g, residual in enumerate(residuals(images, grid, windows)):
    stat = test_statistic(residual, windows).reshape(len(residual), -1)
    k = fingerprints[g].reshape(len(fingerprints[g]), -1)
    preds.append(np.argmax(normalised_correlation(stat, k), axis=1))
  return np.stack(preds)
