"""Streaming, mergeable per-coefficient mean and population variance (Chan et al.), in float64.

The statistics pass sees the training split once, batch by batch; memory is one accumulator the
shape of an image. Batches may be padded: a mask marks the real rows, so every example counts once.
`merge` combines accumulators of disjoint parts (several batches, devices or hosts) exactly.

Accumulation is in float64 (SPEC.md section 2). JAX is float32 by default, so the jitted update
runs under a scoped `jax.enable_x64(True)` rather than switching the whole program to 64 bits.
The result is saved beside the dataset as a small `.npz` (no pickle) and loaded by training and
inference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from freqforensics import spectral


class Moments(NamedTuple):
  """Count, mean and sum of squared deviations (M2) per coefficient; a pytree."""

  count: jax.Array  # scalar float64
  mean: jax.Array  # (H, W, C) float64
  m2: jax.Array  # (H, W, C) float64


def init(shape: tuple[int, ...]) -> Moments:
  """An empty accumulator for features of one example shaped `shape`."""
  with jax.enable_x64(True):
    zeros = jnp.zeros(shape, jnp.float64)
    return Moments(jnp.zeros((), jnp.float64), zeros, zeros)


def merge(a: Moments, b: Moments) -> Moments:
  """Chan's parallel combination of two accumulators over disjoint sets of examples (float64)."""
  with jax.enable_x64(True):
    return _merge_jit(a, b)


def _merge(a: Moments, b: Moments) -> Moments:
  count = a.count + b.count
  safe = jnp.where(count > 0, count, 1.0)
  delta = b.mean - a.mean
  mean = a.mean + delta * (b.count / safe)
  m2 = a.m2 + b.m2 + delta * delta * (a.count * b.count / safe)
  return Moments(count, mean, m2)


_merge_jit = jax.jit(_merge)


def batch_moments(x: jax.Array, mask: jax.Array | None = None) -> Moments:
  """Moments of one batch `(B, ...)` in float64, two-pass within the batch; `mask` (B,) is 0/1."""
  x = x.astype(jnp.float64)
  if mask is None:
    mask = jnp.ones(x.shape[:1], jnp.float64)
  w = mask.astype(jnp.float64).reshape((-1,) + (1,) * (x.ndim - 1))
  count = jnp.sum(mask.astype(jnp.float64))
  mean = jnp.sum(w * x, axis=0) / jnp.where(count > 0, count, 1.0)
  m2 = jnp.sum(w * (x - mean) ** 2, axis=0)
  return Moments(count, mean, m2)


@jax.jit
def _update(acc: Moments, x: jax.Array, mask: jax.Array) -> Moments:
  return _merge(acc, batch_moments(x, mask))


def update(acc: Moments, x: jax.Array, mask: jax.Array | None = None) -> Moments:
  """Adds a batch `(B, ...)` (rows with mask 0 ignored) to the accumulator; jitted, float64."""
  with jax.enable_x64(True):
    if mask is None:
      mask = jnp.ones(x.shape[:1], jnp.float64)
    return _update(acc, x, mask)


def variance(acc: Moments) -> np.ndarray:
  """Population variance (ddof=0), as numpy float64."""
  count = float(acc.count)
  if count <= 0:
    raise ValueError("no examples were accumulated")
  return np.asarray(acc.m2, np.float64) / count


def to_feature_stats(mean: np.ndarray, var: np.ndarray) -> spectral.FeatureStats:
  """float32 `FeatureStats` for `spectral.features`; a zero-variance coefficient gets std 1.

  A coefficient that is constant over the training set carries no information; dividing by 1
  (instead of 0) maps it to 0 rather than to NaN.
  """
  std = np.sqrt(var)
  std = np.where(std > 0, std, 1.0)
  return spectral.FeatureStats(jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32))


def save(path: str | os.PathLike, acc: Moments, kind: str) -> None:
  """Writes mean, var, std and count to `path` (.npz, no pickle), atomically."""
  path = Path(path)
  var = variance(acc)
  tmp = path.with_suffix(".tmp.npz")
  np.savez(
      tmp,
      kind=np.asarray(kind),
      count=np.asarray(float(acc.count)),
      mean=np.asarray(acc.mean, np.float64),
      var=var,
      std=np.sqrt(var),
  )
  os.replace(tmp, path)


def load(path: str | os.PathLike, kind: str | None = None) -> spectral.FeatureStats:
  """Loads statistics saved by `save` as float32 `FeatureStats`; checks the feature kind."""
  with np.load(Path(path), allow_pickle=False) as f:
    if kind is not None and str(f["kind"]) != kind:
      raise ValueError(f"{path} holds statistics of {str(f['kind'])!r}, not {kind!r}")
    return to_feature_stats(f["mean"], f["var"])
