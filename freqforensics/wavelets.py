"""Matrices of the 2-D wavelet packet transform: `spectral.wavelet_packets` applies them in JAX.

A full packet tree to level L is, along one axis, a linear map of the whole signal, and along two
axes the tensor product of the 1-D ones, so the transform is `P_H @ X @ P_W^T` with one N x N matrix
per axis, built here once per (size, wavelet, level) in float64 and applied like the DCT. Periodized
(orthonormal for an orthogonal wavelet) and tiled in frequency order, as
`pywt.WaveletPacket2D(mode="periodization")` with `get_level(L, order="freq")`; docs/feature_views.md
says why not `jaxwt`. PyWavelets gives only the filter coefficients.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
  import pywt


def check_wavelet(name: str) -> pywt.Wavelet:
  """The PyWavelets wavelet `name`; raises ValueError unless it is a known orthogonal wavelet."""
  import pywt  # pylint: disable=g-import-not-at-top  (only wpt_log needs it: keep it out of every start-up)

  try:
    wavelet = pywt.Wavelet(name)
  except ValueError as e:
    raise ValueError(
      f"unknown wavelet {name!r}: use an orthogonal PyWavelets wavelet such as haar, db2, sym4, coif1"
    ) from e
  if not wavelet.orthogonal:
    raise ValueError(
      f"wavelet {name!r} is not orthogonal: use haar, dbN, symN or coifN (an orthonormal packet"
      " transform needs an orthogonal wavelet)"
    )
  return wavelet


def check_level(n: int, level: int) -> None:
  """Raises ValueError unless a side of n pixels splits evenly into 2^level packets."""
  if level < 1:
    raise ValueError(f"wavelet packet level must be at least 1, got {level}")
  if n % (1 << level):
    raise ValueError(
      f"an image side of {n} pixels does not split into 2^{level} = {1 << level} packets: use a"
      " lower level or an image size divisible by it"
    )


def _dwt_matrix(n: int, wavelet: pywt.Wavelet) -> np.ndarray:
  """One periodized DWT level of a length-n signal: rows 0..n/2-1 low-pass, n/2..n-1 high-pass.

  `a[k] = sum_j lo[j] x[(2k + F/2 - j) mod n]` (F the filter length): PyWavelets' periodization.
  """
  lo, hi = np.asarray(wavelet.dec_lo), np.asarray(wavelet.dec_hi)
  half, taps = n // 2, len(lo)
  m = np.zeros((n, n))
  k = np.arange(half)[:, None]
  cols = (2 * k + taps // 2 - np.arange(taps)[None, :]) % n  # (n/2, F); taps may wrap several times
  rows = np.broadcast_to(k, cols.shape)
  np.add.at(m, (rows, cols), lo[None, :])
  np.add.at(m, (rows + half, cols), hi[None, :])
  return m


@functools.lru_cache(maxsize=32)
def packet_matrix(n: int, wavelet: str, level: int) -> np.ndarray:
  """The n x n matrix of the 1-D level-`level` packet transform, packets in frequency order.

  Row block i (n / 2^level rows) is the i-th lowest frequency band. Built in float64 and cached;
  orthogonal for an orthogonal wavelet.
  """
  w = check_wavelet(wavelet)
  check_level(n, level)
  p = np.eye(n)
  for lev in range(level):
    seg = n >> lev
    step = np.kron(np.eye(1 << lev), _dwt_matrix(seg, w))  # every node of this level split in two
    p = step @ p
  # The tree's natural order (a path of low/high bits) is not the frequency order: a high-pass
  # step mirrors the band below it, so the band at frequency position k is the node whose path is
  # the Gray code k ^ (k >> 1) (as PyWavelets' order="freq").
  k = np.arange(1 << level)
  seg = n >> level
  order = ((k ^ (k >> 1))[:, None] * seg + np.arange(seg)[None, :]).ravel()
  p = p[order]
  p.setflags(write=False)
  return p
