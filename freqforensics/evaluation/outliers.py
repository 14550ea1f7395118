"""The open-set "unknown generator" score: how far an image's spectrum lies from what the model was trained on.

Candidates, all on log-DCT spectra with the training split's per-class moments (higher = more unusual):
`real_mahalanobis`, `class_mahalanobis`, `pca_real` (the default) and the logits' `energy`. Each is
thresholded on the real validation images at `eval.outlier_fpr`; the arrays live in the bundle's
`outliers.npz`. What each candidate measures and how the default was chosen: docs/generalization.md.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from freqforensics import sharding, spectral, stats
from freqforensics.evaluation import operating_points
from freqforensics.files import atomic

SPACE = "dct_log"  # the feature space of the spectral candidates (raw log |DCT|, before standardisation)
CANDIDATES: tuple[str, ...] = ("real_mahalanobis", "class_mahalanobis", "pca_real", "energy")
SPECTRAL: tuple[str, ...] = CANDIDATES[:3]  # computed on device from the image; energy comes from the logits
FILE = "outliers.npz"
PCA_COMPONENTS = 32  # at most this many principal components of the real class (fewer with fewer images)
PCA_IMAGES = 512  # real training images the components are fit on (evenly spaced over the class)
VAR_FLOOR = 1e-3  # a coefficient's variance is at least this share of the class's mean variance


@dataclasses.dataclass(frozen=True)
class OutlierStats:
  """Per-class mean and inverse std of log |DCT| `(k, H, W, C)`, the real label and the real PCA `(n, D)`."""

  mean: np.ndarray
  inv_std: np.ndarray
  real: int
  components: np.ndarray

  def save(self, path: str | os.PathLike) -> None:
    atomic.write_with(
      path,
      lambda tmp: np.savez(
        tmp, mean=self.mean, inv_std=self.inv_std, real=np.asarray(self.real), components=self.components
      ),
    )

  @classmethod
  def load(cls, path: str | os.PathLike, num_labels: int, image_shape: tuple[int, ...]) -> OutlierStats:
    """Reads `save`'s file (no pickle); raises ValueError when the arrays do not fit the model."""
    with np.load(Path(path), allow_pickle=False) as f:
      mean, inv_std = np.asarray(f["mean"], np.float32), np.asarray(f["inv_std"], np.float32)
      real, comps = np.asarray(f["real"]), np.asarray(f["components"], np.float32)
    if real.shape != () or not np.issubdtype(real.dtype, np.integer):
      raise ValueError(f"real is {real.dtype} of shape {real.shape}, not one integer label")
    real = int(real)
    shape = (num_labels,) + spectral.feature_shape(SPACE, tuple(image_shape))
    if mean.shape != shape or inv_std.shape != shape:
      raise ValueError(f"class statistics of shape {mean.shape}, {inv_std.shape}; the model needs {shape}")
    if not 0 <= real < num_labels or comps.ndim != 2 or comps.shape[1] != int(np.prod(shape[1:])):
      raise ValueError(f"real label {real} or components {comps.shape} do not fit {shape}")
    if not (np.isfinite(mean).all() and np.isfinite(inv_std).all() and np.isfinite(comps).all()):
      raise ValueError("non-finite values")
    return cls(mean, inv_std, real, comps)


def from_moments(mean: np.ndarray, var: np.ndarray, real: int, components: np.ndarray) -> OutlierStats:
  """`OutlierStats` from per-class moments; each class's variances are floored (`VAR_FLOOR`)."""
  var = np.asarray(var, np.float64)
  axes = tuple(range(1, var.ndim))
  floor = VAR_FLOOR * var.mean(axis=axes, keepdims=True)
  inv_std = 1.0 / np.sqrt(np.maximum(var, np.maximum(floor, 1e-12)))
  return OutlierStats(np.asarray(mean, np.float32), inv_std.astype(np.float32), int(real), components)


def spectral_scores(x: jax.Array, o: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """The spectral candidates of raw log-DCT features `x (B, H, W, C)`; `o` holds the arrays of `OutlierStats`."""
  x = x.astype(jnp.float32).reshape(x.shape[0], -1)
  k = o["mean"].shape[0]
  mean, inv_std = o["mean"].reshape(k, -1), o["inv_std"].reshape(k, -1)
  # One class at a time (lax.map): memory stays one batch of features, whatever the number of classes.
  d = jax.lax.map(lambda m: jnp.mean(((x - m[0]) * m[1]) ** 2, axis=-1), (mean, inv_std))  # (k, B)
  r = o["real"]
  u = (x - mean[r]) * inv_std[r]  # standardised by the real class
  hp = jax.lax.Precision.HIGHEST
  proj = jnp.matmul(jnp.matmul(u, o["components"].T, precision=hp), o["components"], precision=hp)
  resid = jnp.mean((u - proj) ** 2, axis=-1)  # the residual itself, not |u|^2 - |proj|^2 (float32 cancels)
  return {"real_mahalanobis": d[r], "class_mahalanobis": d.min(axis=0), "pca_real": resid}


def device_arrays(s: OutlierStats) -> dict[str, np.ndarray]:
  """The arrays `spectral_scores` takes (the real label as an array, so it traces as data)."""
  return {"mean": s.mean, "inv_std": s.inv_std, "components": s.components, "real": np.asarray(s.real, np.int32)}


def make_scores_fn(mesh: jax.sharding.Mesh):
  """The jitted `(images, device arrays) -> {candidate: (B,)}` of the spectral candidates, per device."""
  raw = sharding.raw_features_fn(mesh, SPACE)
  return jax.jit(lambda images, o: spectral_scores(raw(images), o))


def scores_on(ostats: OutlierStats, mesh: jax.sharding.Mesh) -> Callable[[jax.Array], dict[str, jax.Array]]:
  """`images -> {candidate: (B,)}`: the spectral open-set candidates of `ostats` placed on `mesh` (replicated)
  once; the one open-set score function of training's evaluation, `mode=eval` and classify."""
  arrays = jax.device_put(device_arrays(ostats), sharding.replicated(mesh))
  fn = make_scores_fn(mesh)
  return lambda images: fn(images, arrays)


def energy(logits: np.ndarray) -> np.ndarray:
  """-logsumexp of the logits (float64); one logit z as (-z/2, z/2)."""
  z = np.asarray(logits, np.float64)
  if z.shape[-1] == 1:
    z = np.concatenate([-z / 2, z / 2], axis=-1)
  return -scipy.special.logsumexp(z, axis=-1)


def all_scores(spectral_part: dict[str, np.ndarray], logits: np.ndarray) -> dict[str, np.ndarray]:
  """Every candidate: the spectral ones computed on device plus the energy of the logits."""
  return {**{k: np.asarray(v, np.float64) for k, v in spectral_part.items()}, "energy": energy(logits)}


def pca_components(u: np.ndarray, n: int = PCA_COMPONENTS) -> np.ndarray:
  """The top principal directions `(k, D)` of standardised real features `u (N, D)` (k <= N - 1, <= n)."""
  u = np.asarray(u, np.float64)
  u = u - u.mean(axis=0)
  _, _, vt = np.linalg.svd(u, full_matrices=False)
  return vt[: max(0, min(n, len(u) - 1))].astype(np.float32)


def fit(
  prepared,
  real: int,
  mesh: jax.sharding.Mesh,
  *,
  source=None,
  tag: str = "",
  batch_size: int = 256,
  num_threads: int = 2,
  progress: bool = False,
  write: bool = True,
) -> OutlierStats:
  """Statistics of the open-set score from the training split (or `source`, a subset of it named by `tag`):
  per-class log-DCT moments from the statistics pass, and the real PCA from up to `PCA_IMAGES` real images.

  Collective: every process runs it (each reads its share); process 0 writes the statistics file.

  Args:
    prepared: the prepared dataset (its training split is read unless `source` is given).
    real: the real class's index.
    mesh: the device mesh the spectra are computed on.
    source: a subset of the training split to use instead (a few-sample run), named by `tag`.
    tag: the subset's name in the cached statistics file.
    batch_size: images per pass step.
    num_threads: decoding threads.
    progress: show a progress bar.
    write: whether this process writes the statistics file (process 0).
  """
  _, path = stats.feature_stats(
    prepared,
    SPACE,
    mesh,
    batch_size=batch_size,
    num_threads=num_threads,
    progress=progress,
    write=write,
    source=source,
    tag=tag,
  )
  sharding.barrier("outlier statistics written")  # process 0 writes the file the others read next
  moments = stats.load_class_moments(path) if path is not None and path.is_file() else None
  if moments is None:
    raise RuntimeError(f"the statistics pass left no per-class moments in {path}")
  _, mean, var = moments
  base = from_moments(mean, var, real, np.zeros((0, int(np.prod(mean.shape[1:]))), np.float32))
  span = prepared.class_range("train", real)  # a split holds its classes one after the other
  if source is None:
    source, reals = prepared.source("train"), np.arange(span.start, span.stop)
  elif hasattr(source, "indices"):  # a few-sample subset: its positions that hold real images
    reals = np.flatnonzero((source.indices >= span.start) & (source.indices < span.stop))
  else:
    reals = np.arange(span.start, span.stop)
  pick = reals[np.linspace(0, len(reals) - 1, min(PCA_IMAGES, len(reals))).round().astype(int)] if len(reals) else reals
  raw = jax.jit(sharding.raw_features_fn(mesh, SPACE))
  rows = []
  for lo in range(0, len(pick), batch_size):
    idx = pick[lo : lo + batch_size]
    images = source.read_batch(idx)["image"]
    pad = -len(images) % mesh.size
    images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], np.uint8)]) if pad else images
    x = np.asarray(sharding.gather(raw(sharding.make_put(mesh)({"image": images})["image"])))[: len(idx)]
    rows.append(((x - base.mean[real]) * base.inv_std[real]).reshape(len(idx), -1))
  comps = pca_components(np.concatenate(rows)) if rows else base.components
  return dataclasses.replace(base, components=comps)


def thresholds(scores: dict[str, np.ndarray], is_real: np.ndarray, fpr: float) -> dict[str, float]:
  """Per candidate, the lowest threshold that flags at most `fpr` of the real images among `scores`."""
  is_real = np.asarray(is_real, bool)
  return {k: float(np.clip(operating_points.fpr_threshold(v[is_real], fpr), -1e30, 1e30)) for k, v in scores.items()}


def info(s: OutlierStats, val_scores: dict[str, np.ndarray], val_is_real: np.ndarray, fpr: float, score: str) -> dict:
  """The bundle's `outliers` block: the score used, every candidate's threshold and its validation rates.

  Args:
    s: the open-set statistics (`fit`).
    val_scores: candidate -> validation scores `(N,)`.
    val_is_real: which validation images are real `(N,)`.
    fpr: the share of real validation images each threshold may flag (`eval.outlier_fpr`).
    score: the candidate the bundle decides by (`eval.outlier_score`).
  """
  t = thresholds(val_scores, val_is_real, fpr)
  is_real = np.asarray(val_is_real, bool)
  flagged = {k: float(np.mean(v[is_real] > t[k])) for k, v in val_scores.items()}
  flagged_fakes = {k: (float(np.mean(v[~is_real] > t[k])) if (~is_real).any() else None) for k, v in val_scores.items()}
  return {
    "file": FILE,
    "space": SPACE,
    "score": score,
    "fpr": float(fpr),
    "thresholds": t,
    "val_real_flagged": flagged,
    "val_fake_flagged": flagged_fakes,
    "n_val_real": int(is_real.sum()),
    "pca_components": int(len(s.components)),
  }


def flag_rates(
  scores: dict[str, np.ndarray], is_real: np.ndarray, thresholds: dict[str, float]
) -> dict[str, dict[str, float | None]]:
  """Per candidate with a threshold, the share of reals and of fakes it flags (None where there are none)."""
  is_real = np.asarray(is_real, bool)

  def rate(v: np.ndarray, t: float, rows: np.ndarray) -> float | None:
    return float(np.mean(v[rows] > t)) if rows.any() else None

  return {
    k: {"real_flagged": rate(v, thresholds[k], is_real), "fake_flagged": rate(v, thresholds[k], ~is_real)}
    for k, v in scores.items()
    if k in thresholds
  }


def flags(scores: dict[str, np.ndarray], block: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
  """`(score, outlier flag)` of the bundle's chosen candidate."""
  name = block["score"]
  v = np.asarray(scores[name], np.float64)
  return v, v > block["thresholds"][name]
