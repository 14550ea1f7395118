"""Pure, jittable spectral transforms over image batches shaped `(..., H, W, C)`.

Everything here is a plain `jnp` function: no globals, no config reads; eps, mean and std are
arguments. The DCT is the full-image, orthonormal 2-D DCT-II of SPEC.md section 2, equal to
`scipy.fft.dctn(x, type=2, norm="ortho", axes=(-3, -2))`, each channel on its own.

Two implementations, chosen by size (both exact to float32 rounding):
- matrix products (`C_H @ X @ C_W^T`) for sides up to `_MATMUL_MAX_SIDE`: on CPU this is the fastest
  path at the paper's 128x128 and the tensor cores' natural shape on GPUs. Matrix products run at
  `precision=HIGHEST`, because GPUs otherwise default to reduced-precision (TF32) float32 products.
- `jax.scipy.fft.dctn` (FFT based, O(N log N)) for larger sides such as FFHQ's 1024x1024.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-12
"""The one epsilon of the log feature (the release mixed 1e-12 and 1e-13)."""

FeatureKind = Literal["pixel", "dct", "dct_log"]
FEATURE_KINDS: tuple[str, ...] = ("pixel", "dct", "dct_log")
_MATMUL_MAX_SIDE = 512


class FeatureStats(NamedTuple):
  """Per-coefficient mean and standard deviation of a feature, shaped like one image (H, W, C)."""

  mean: jax.Array
  std: jax.Array


@functools.lru_cache(maxsize=32)
def dct_matrix(n: int) -> np.ndarray:
  """The orthonormal DCT-II matrix `C` of size n (`C @ x` is the DCT of a length-n vector x).

  Built in float64 and cached per size; the caller casts it. Its rows are orthonormal, so the
  inverse transform is `C.T`.
  """
  k = np.arange(n)[:, None]
  i = np.arange(n)[None, :]
  c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
  c[0] /= np.sqrt(2.0)
  c.setflags(write=False)
  return c


def _transform_hw(x: jax.Array, mat_h: jax.Array, mat_w: jax.Array) -> jax.Array:
  """Applies `mat_h` along H and `mat_w` along W of `(..., H, W, C)` as two large GEMMs.

  Channels are moved in front of H first, so each pass is one `(rows, n) @ (n, n)` product over the
  whole batch instead of many products with only C columns.
  """
  x = jnp.moveaxis(x, -1, -3)  # (..., C, H, W)
  x = jnp.matmul(x, mat_w.T, precision=jax.lax.Precision.HIGHEST)
  x = jnp.swapaxes(x, -1, -2)  # (..., C, W, H)
  x = jnp.matmul(x, mat_h.T, precision=jax.lax.Precision.HIGHEST)
  x = jnp.swapaxes(x, -1, -2)
  return jnp.moveaxis(x, -3, -1)


def _use_matmul(h: int, w: int) -> bool:
  return max(h, w) <= _MATMUL_MAX_SIDE


def dct2(x: jax.Array) -> jax.Array:
  """Orthonormal 2-D DCT-II over the H and W axes of `(..., H, W, C)`, per channel.

  Integer input (uint8 images) is converted to float32; float64 input stays float64.
  """
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  h, w = x.shape[-3], x.shape[-2]
  if _use_matmul(h, w):
    return _transform_hw(x, jnp.asarray(dct_matrix(h), x.dtype), jnp.asarray(dct_matrix(w), x.dtype))
  return jax.scipy.fft.dctn(x, type=2, norm="ortho", axes=(-3, -2))


def idct2(x: jax.Array) -> jax.Array:
  """Inverse of `dct2`: orthonormal 2-D DCT-III over H and W, so `idct2(dct2(x)) == x`."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  h, w = x.shape[-3], x.shape[-2]
  if _use_matmul(h, w):
    mat_h = jnp.asarray(dct_matrix(h), x.dtype).T
    mat_w = jnp.asarray(dct_matrix(w), x.dtype).T
    return _transform_hw(x, mat_h, mat_w)
  return jax.scipy.fft.idctn(x, type=2, norm="ortho", axes=(-3, -2))


def log_scale(x: jax.Array, eps: float = EPS) -> jax.Array:
  """`log(|x| + eps)`: the paper's log feature; the sign of the coefficient is discarded."""
  return jnp.log(jnp.abs(x) + eps)


def standardize(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  """`(x - mean) / std`, broadcasting per-coefficient statistics over leading batch axes."""
  return (x - mean) / std


def scale_pixels(x: jax.Array) -> jax.Array:
  """Pixel input of the paper: `x / 127.5 - 1`, mapping uint8 0..255 to -1..1."""
  return jnp.asarray(x).astype(jnp.float32) / 127.5 - 1.0


def raw_features(images: jax.Array, kind: str) -> jax.Array:
  """The feature before standardisation: what the statistics pass accumulates.

  `pixel` has no statistics (it is scaled by a fixed rule), so its raw feature is the scaled pixels.
  """
  if kind == "pixel":
    return scale_pixels(images)
  if kind == "dct":
    return dct2(images)
  if kind == "dct_log":
    return log_scale(dct2(images))
  raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")


def needs_stats(kind: str) -> bool:
  """Whether a feature kind is standardised with training-set statistics."""
  if kind not in FEATURE_KINDS:
    raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")
  return kind != "pixel"


def features(images: jax.Array, kind: str, stats: FeatureStats | None = None) -> jax.Array:
  """Maps a uint8 image batch `(..., H, W, C)` to model input for `kind`.

  - `pixel`: `x / 127.5 - 1`.
  - `dct`: DCT coefficients, standardised per coefficient.
  - `dct_log`: the paper's representation: DCT, `log(|c| + eps)`, standardised per coefficient.
  """
  x = raw_features(images, kind)
  if not needs_stats(kind):
    return x
  if stats is None:
    raise ValueError(f"feature kind {kind!r} needs FeatureStats (mean, std) of the training split")
  return standardize(x, stats.mean, stats.std)
