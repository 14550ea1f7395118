"""k-nearest neighbours on flattened pixel or DCT features (scikit-learn `KNeighborsClassifier`).

Grid search: the training features (a class-balanced subset within `baseline.memory_gb`) are held
once; each validation batch asks for its `max(k)` nearest neighbours once, and the vote of the
first k of them gives every k of the grid (ties go to the smallest label, as in scikit-learn). The
pass over the validation split checkpoints its per-k confusion counts, so it resumes mid-pass.
`train` fits the chosen k and saves the estimator (training features included) with skops;
`test` streams any split through it. `n_jobs` is passed to scikit-learn's neighbour search.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from freqforensics.baselines import inputs, results, safe_io
from freqforensics.baselines.context import Context
from freqforensics.errors import UserError


def settings(config) -> dict[str, Any]:
  return {"features": config.features, "grid": [int(k) for k in config.baseline.knn.grid]}


def _training_features(ctx: Context, fm: inputs.FeatureMaker) -> tuple[np.ndarray, np.ndarray]:
  subset = ctx.train_subset()
  inputs.check_memory(
    f"kNN's training features ({len(subset)} x {fm.dim} float32)",
    4.0 * len(subset) * fm.dim,
    ctx.config,
    "lower --config.baseline.train_per_class",
  )
  return fm.matrix(subset, desc="knn train features")


def votes(neighbour_labels: np.ndarray, ks: list[int], num_classes: int) -> np.ndarray:
  """Majority votes `(len(ks), B)` of the first k neighbours (sorted by distance) for every k.

  Ties go to the smallest label, as in scikit-learn's uniform-weight vote.
  """
  onehot = np.eye(num_classes, dtype=np.int32)[neighbour_labels]  # (B, K, C)
  counts = np.cumsum(onehot, axis=1)  # counts[:, k - 1] = votes of the first k neighbours
  return np.stack([np.argmax(counts[:, k - 1], axis=1) for k in ks])


def grid_search(ctx: Context) -> bool:
  """Fills the missing grid rows of the results file; False when none was missing."""
  res = ctx.results
  grid = [int(k) for k in ctx.b.knn.grid]
  if all(res.row({"n_neighbors": k}) for k in grid):
    return False
  fm = inputs.FeatureMaker(ctx.config, ctx.prepared, progress=ctx.progress)
  x, y = _training_features(ctx, fm)
  ks = [k for k in grid if k <= len(y)]
  if not ks:
    raise UserError(f"every k of baseline.knn.grid exceeds the {len(y)} training examples: lower the grid")
  clf = KNeighborsClassifier(n_neighbors=max(ks), algorithm="brute", n_jobs=ctx.n_jobs).fit(x, y)
  prog = results.Progress(res, "grid_val")
  state = prog.load()
  start, conf = (
    (state[0], state[1]["confusion"]) if state else (0, np.zeros((len(ks), ctx.num_classes, ctx.num_classes), np.int64))
  )
  step = start
  for xb, yb in fm.batches(ctx.source("val"), desc="knn grid (val)", start=start):
    neighbours = clf.kneighbors(xb, max(ks), return_distance=False)
    for g, pred in enumerate(votes(y[neighbours], ks, ctx.num_classes)):
      conf[g] += results.confusion(yb, pred, ctx.num_classes)
    step += 1
    if step % ctx.b.checkpoint_every == 0:
      prog.save(step, {"confusion": conf})
  for k in grid:
    if k in ks:
      c = conf[ks.index(k)]
      res.rows.append(
        {"n_neighbors": k, "accuracy": results.accuracy(c), "num_examples": int(c.sum()), "num_train": len(y)}
      )
    else:
      res.rows.append({"n_neighbors": k, "accuracy": None, "skipped": f"k exceeds the {len(y)} training examples"})
  res.finish_grid_search()  # saved before the pass checkpoint is cleared: a crash between the two loses nothing
  prog.clear()
  return True


def train(ctx: Context) -> dict[str, Any]:
  k = int(ctx.b.knn.n_neighbors) or _best_k(ctx)
  fm = inputs.FeatureMaker(ctx.config, ctx.prepared, progress=ctx.progress)
  x, y = _training_features(ctx, fm)
  if k > len(y):
    raise UserError(f"n_neighbors={k} exceeds the {len(y)} training examples: choose a smaller k")
  clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute", n_jobs=ctx.n_jobs).fit(x, y)
  ctx.results.model_dir.mkdir(parents=True, exist_ok=True)
  safe_io.save(clf, ctx.results.model_dir / "estimator.skops")
  inputs.save_feature_stats(fm.stats, fm.kind, ctx.results.model_dir)
  ctx.save_model_info(ctx.model_info({"n_neighbors": k}, features=fm.kind, num_train=len(y)))
  return {"params": {"n_neighbors": k}, "num_train": len(y)}


def _best_k(ctx: Context) -> int:
  return int(ctx.results.best(("n_neighbors",))["n_neighbors"])


def test(ctx: Context, split: str) -> dict[str, Any]:
  conf, info = inputs.saved_estimator_confusion(ctx, "knn", split, n_jobs=ctx.n_jobs)
  return dict(results.summary(conf, ctx.label_names), params=info["params"])
