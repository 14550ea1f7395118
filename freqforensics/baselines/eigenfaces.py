"""Eigenfaces: PCA to a share of explained variance, then a linear SVM (scikit-learn).

The PCA is fitted once on a class-balanced subset of the training split (`eigenfaces.pca_subset`,
default 10,000 images): with the full SVD (`PCA(svd_solver="full")`) when the subset's features fit
`baseline.memory_gb`, else with `IncrementalPCA` (`eigenfaces.incremental_components` components)
fed batch by batch. PCA components are nested, so the fewest components explaining a share v of the
variance (scikit-learn's rule for `PCA(n_components=v)`) are the leading ones of that single fit:
one fit and one projection of the training and validation features serve the whole grid. The fit
and the projections are cached in `WORKDIR/eigenfaces_work/`, and every finished (variance, C) row
is written at once, so an interrupted grid search resumes. `train` saves the truncated PCA and the
`LinearSVC` as one scikit-learn `Pipeline` with skops.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from freqforensics.baselines import inputs, results, safe_io
from freqforensics.baselines.context import Context
from freqforensics.data import reader

_PCA_KEYS = ("mean_", "components_", "explained_variance_", "explained_variance_ratio_", "singular_values_")
_SVD_OVERHEAD = 3.0  # the full SVD holds about three copies of its input matrix


def settings(config) -> dict[str, Any]:
  e = config.baseline.eigenfaces
  return {
    "features": config.features,
    "pca_subset": int(e.pca_subset),
    "variance_grid": list(e.variance_grid),
    "c_grid": list(e.c_grid),
    "max_iter": int(e.max_iter),
    "incremental_components": int(e.incremental_components),
  }


def components_for(ratio: np.ndarray, variance: float) -> int:
  """The fewest leading components whose explained-variance ratios sum to at least `variance`.

  scikit-learn's rule for `PCA(n_components=variance)`, capped at the components available.
  """
  return int(min(np.searchsorted(np.cumsum(ratio), variance, side="right") + 1, len(ratio)))


def _fit_pca(ctx: Context, fm: inputs.FeatureMaker) -> tuple[PCA | IncrementalPCA, str]:
  e = ctx.b.eigenfaces
  per_class = -(-int(e.pca_subset) // ctx.num_classes)
  subset = reader.SubsetSource(ctx.source("train"), ctx.balanced("train", per_class))
  need = _SVD_OVERHEAD * 4.0 * len(subset) * fm.dim
  if need <= ctx.b.memory_gb * (1 << 30):
    x, _ = fm.matrix(subset, desc="eigenfaces pca subset")
    return PCA(svd_solver="full").fit(x), "full"
  k = int(min(e.incremental_components, fm.dim, len(subset)))
  inputs.check_memory(
    f"IncrementalPCA with {k} components of {fm.dim} features",
    3 * 4.0 * k * fm.dim + 4.0 * max(k, fm.batch_size) * fm.dim,
    ctx.config,
    "lower --config.baseline.eigenfaces.incremental_components",
  )
  ipca = IncrementalPCA(n_components=k)
  chunk: list[np.ndarray] = []
  ready = None  # a chunk of >= k rows, fitted once the next one exists (the last one takes the tail)
  for xb, _ in fm.batches(subset, desc="eigenfaces incremental pca"):
    chunk.append(xb)
    if sum(len(c) for c in chunk) >= k:  # every partial fit needs at least k rows
      if ready is not None:
        ipca.partial_fit(ready)
      ready, chunk = np.concatenate(chunk), []
  ipca.partial_fit(np.concatenate(([ready] if ready is not None else []) + chunk))
  return ipca, "incremental"


def pca_from(a: dict[str, np.ndarray], k: int | None = None) -> PCA:
  """A fitted `PCA` of the first `k` (default: all) cached components: what `PCA(n_components=k)` fits.

  The full SVD's components do not depend on how many are kept, so this equals a fresh fit.
  """
  k = a["components_"].shape[0] if k is None else k
  pca = PCA(n_components=k, svd_solver="full")
  pca.mean_ = a["mean_"]
  for key in _PCA_KEYS[1:]:
    setattr(pca, key, a[key][:k])  # the ratios of the kept components only, as a fit with k would hold
  pca.n_components_, pca.n_features_in_, pca.n_samples_ = k, a["mean_"].shape[0], int(a["n_samples"])
  pca.noise_variance_ = 0.0  # not used by transform; kept for a complete fitted estimator
  return pca


def _project(fm: inputs.FeatureMaker, pca, source, k: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
  z = np.empty((len(source), k), np.float32)
  y = np.empty((len(source),), np.int32)
  i = 0
  mean, comps = pca.mean_.astype(np.float32), pca.components_[:k].astype(np.float32)
  for xb, yb in fm.batches(source, desc=desc):
    z[i : i + len(yb)], y[i : i + len(yb)] = (xb - mean) @ comps.T, yb
    i += len(yb)
  return z, y


def _prepared(ctx: Context) -> dict[str, np.ndarray]:
  """PCA arrays and the projected training/validation features, fitted once and cached."""
  cache = results.Progress(ctx.results, "pca_projections")
  state = cache.load()
  if state:
    return state[1]
  fm = inputs.FeatureMaker(ctx.config, ctx.prepared, progress=ctx.progress)
  pca, kind = _fit_pca(ctx, fm)
  k = components_for(pca.explained_variance_ratio_, max(ctx.b.eigenfaces.variance_grid))
  train = ctx.train_subset()
  inputs.check_memory(
    f"projected training features ({len(train)} x {k})",
    4.0 * len(train) * k,
    ctx.config,
    "lower --config.baseline.train_per_class",
  )
  z_train, y_train = _project(fm, pca, train, k, "eigenfaces project train")
  z_val, y_val = _project(fm, pca, ctx.source("val"), k, "eigenfaces project val")
  arrays = _arrays(pca, k)
  arrays.update(z_train=z_train, y_train=y_train, z_val=z_val, y_val=y_val, pca_kind=np.asarray(kind))
  cache.save(0, arrays)
  return arrays


def _arrays(pca: PCA | IncrementalPCA, k: int) -> dict[str, np.ndarray]:
  """The fitted PCA as arrays, keeping the first `k` components (all ratios: `components_for` needs them)."""
  out = {key: np.asarray(getattr(pca, key))[:k] for key in _PCA_KEYS if key != "mean_"}
  out.update(
    mean_=np.asarray(pca.mean_),
    explained_variance_ratio_=np.asarray(pca.explained_variance_ratio_),
    n_samples=np.asarray(getattr(pca, "n_samples_seen_", getattr(pca, "n_samples_", 0))),
  )
  return out


def _svm(config, c: float) -> LinearSVC:
  return LinearSVC(C=c, max_iter=int(config.baseline.eigenfaces.max_iter), random_state=config.seed)


def _fit_svm(config, c: float, z: np.ndarray, y: np.ndarray) -> tuple[LinearSVC, bool]:
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", ConvergenceWarning)
    svm = _svm(config, c).fit(z, y)
  return svm, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def grid_search(ctx: Context) -> bool:
  """Fills the missing grid rows of the results file; False when none was missing."""
  res, e = ctx.results, ctx.b.eigenfaces
  grid = [(float(v), float(c)) for v in e.variance_grid for c in e.c_grid]
  if all(res.row({"variance": v, "C": c}) for v, c in grid):
    return False
  a = _prepared(ctx)
  for v, c in grid:
    if res.row({"variance": v, "C": c}):
      continue
    k = components_for(a["explained_variance_ratio_"], v)
    svm, converged = _fit_svm(ctx.config, c, a["z_train"][:, :k], a["y_train"])
    conf = results.confusion(a["y_val"], svm.predict(a["z_val"][:, :k]), ctx.num_classes)
    res.add_row(
      {
        "variance": v,
        "C": c,
        "n_components": k,
        "explained_variance": float(np.sum(a["explained_variance_ratio_"][:k])),
        "accuracy": results.accuracy(conf),
        "num_examples": int(conf.sum()),
        "converged": converged,
        "pca": str(a["pca_kind"]),
        "num_train": int(len(a["y_train"])),
      }
    )
  return res.finish_grid_search()


def train(ctx: Context) -> dict[str, Any]:
  e = ctx.b.eigenfaces
  chosen = ctx.results.chosen({"variance": e.variance, "C": e.C})
  v, c = float(chosen["variance"]), float(chosen["C"])
  a = _prepared(ctx)
  fm = inputs.FeatureMaker(ctx.config, ctx.prepared, progress=ctx.progress)
  k = components_for(a["explained_variance_ratio_"], v)
  if k > a["z_train"].shape[1]:  # a variance above the grid's: fit again, keep and project more components
    a = _arrays(_fit_pca(ctx, fm)[0], k)
    z, y = _project(fm, pca_from(a), ctx.train_subset(), k, "eigenfaces project train")
  else:
    z, y = a["z_train"][:, :k], a["y_train"]
  svm, converged = _fit_svm(ctx.config, c, z, y)
  model = Pipeline([("pca", pca_from(a, k)), ("svm", svm)])
  ctx.results.model_dir.mkdir(parents=True, exist_ok=True)
  safe_io.save(model, ctx.results.model_dir / "estimator.skops")
  inputs.save_feature_stats(fm.stats, fm.kind, ctx.results.model_dir)
  params = {"variance": v, "C": c}
  ctx.save_model_info(ctx.model_info(params, features=fm.kind, n_components=k, num_train=len(y)))
  return {"params": params, "n_components": k, "converged": converged, "num_train": int(len(y))}


def test(ctx: Context, split: str) -> dict[str, Any]:
  conf, info = inputs.saved_estimator_confusion(ctx, "eigenfaces", split)
  return dict(results.summary(conf, ctx.label_names), params=info["params"], n_components=info["n_components"])
