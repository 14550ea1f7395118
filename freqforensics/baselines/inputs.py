"""The baselines' view of the prepared data: labels, class-balanced subsets, feature batches, memory.

The baselines read the same prepared splits as the neural models (`data.reader` through
`data.pipeline.eval_batches`: every example once, in order, in fixed-size batches) and the same
features (`spectral.features` with the training split's statistics). Nothing holds a whole split:
a pass is a stream of batches, and what a baseline keeps (kNN's training features, the PCA
subset, PRNU accumulators) is checked against `baseline.memory_gb` before it is built.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from freqforensics import sharding, spectral, stats
from freqforensics.data import pipeline, preparation, reader
from freqforensics.errors import UserError


def num_jobs(config: ml_collections.ConfigDict) -> int:
  """`baseline.n_jobs`, with 0 meaning one per usable core."""
  if config.baseline.n_jobs > 0:
    return int(config.baseline.n_jobs)
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def split_source(prepared: reader.PreparedDataset, split: str):
  """The random-access source of `split`; an empty split is a one-line error."""
  source = prepared.source(split)
  if not len(source):
    raise UserError(f"the {split} split of {prepared.path} is empty: set data.split so that it holds images")
  return source


def labels(prepared: reader.PreparedDataset, split: str, *, batch_size: int = 1024) -> np.ndarray:
  """Labels of every example of `split` (int32), read in batches and cached beside the loading."""
  path = prepared.path / f"labels_{split}.npy"
  if path.is_file():
    return np.load(path, allow_pickle=False)
  source = split_source(prepared, split)
  out = np.empty(len(source), np.int32)
  for lo in range(0, len(source), batch_size):
    idx = np.arange(lo, min(len(source), lo + batch_size))
    out[idx] = source.read_batch(idx)["label"]
  preparation.dataset_record(prepared.path).write_with(path.name, lambda tmp: np.save(tmp, out))
  return out


def balanced_indices(y: np.ndarray, per_class: int, num_classes: int, seed: int) -> np.ndarray:
  """Sorted indices of at most `per_class` examples of every class (0 = all), drawn with `seed`.

  Classes with fewer examples contribute all they have; the draw is seeded, so every command of a
  run (grid search, train) sees the same subset.
  """
  rng = np.random.default_rng(seed)
  chosen = []
  for c in range(num_classes):
    idx = np.flatnonzero(y == c)
    if per_class and len(idx) > per_class:
      idx = rng.choice(idx, per_class, replace=False)
    chosen.append(idx)
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def check_memory(what: str, nbytes: float, config: ml_collections.ConfigDict, fix: str) -> None:
  """Raises a one-line error when `what` (`nbytes`) exceeds `baseline.memory_gb`."""
  budget = config.baseline.memory_gb * (1 << 30)
  if nbytes > budget:
    raise UserError(
      f"{what} would take {nbytes / (1 << 30):.2f} GiB, over baseline.memory_gb="
      f"{config.baseline.memory_gb}: {fix}, or raise --config.baseline.memory_gb"
    )


def image_batches(
  source, batch_size: int, *, num_threads: int = 2, desc: str = "", progress: bool = False, start: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """uint8 images `(n, H, W, C)` and int32 labels of `source`, in order, from batch `start` on.

  Args:
    source: a split source (random access by index, as `reader.PreparedDataset.source` gives).
    batch_size: examples per batch; the last batch is shorter (padding removed).
    num_threads: reading threads ahead of the consumer.
    desc: the progress bar's label.
    progress: show a progress bar.
    start: the first batch to yield (resumes a pass over the split).
  """
  steps = pipeline.num_eval_steps(len(source), batch_size)
  it = pipeline.eval_batches(
    reader.SubsetSource(source, np.arange(start * batch_size, len(source))), batch_size, num_threads=num_threads
  )
  for batch in tqdm(it, total=steps - start, desc=desc, unit="batch", disable=not progress):
    keep = batch["mask"] > 0
    yield batch["image"][keep], batch["label"][keep]


class FeatureMaker:
  """Feature batches (`config.features`: pixel or dct_log, ...) of any source, flattened float32.

  Features are computed by the project's jitted transform over a ('data',) mesh, with the training
  split's statistics (computed once and cached like in training), so a baseline sees exactly the
  numbers a neural model gets.
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    prepared: reader.PreparedDataset,
    *,
    progress: bool,
    feature_stats: spectral.FeatureStats | None = None,
  ):
    self.kind = config.features
    self.batch_size = config.baseline.batch_size
    self.num_threads = config.data.num_threads or 2
    self.progress = progress
    n = jax.device_count()
    while self.batch_size % n:
      n -= 1
    self.mesh = sharding.make_mesh(n)
    self.stats = feature_stats
    if self.stats is None and spectral.needs_stats(self.kind):
      self.stats, _ = stats.feature_stats(
        prepared, self.kind, self.mesh, batch_size=self.batch_size, num_threads=self.num_threads, progress=progress
      )
    self._put = sharding.make_put(self.mesh)
    fn = sharding.features_fn(self.mesh, self.kind)
    self._fn = jax.jit(fn)
    self._stats_on_mesh = jax.device_put(self.stats, sharding.replicated(self.mesh)) if self.stats is not None else None
    self.dim = int(np.prod(prepared.image_shape))

  def batches(self, source, *, desc: str = "", start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`(features (n, D) float32, labels (n,))` per batch of `source`, in order, from batch `start` on."""
    steps = pipeline.num_eval_steps(len(source), self.batch_size)
    it = pipeline.eval_batches(
      reader.SubsetSource(source, np.arange(start * self.batch_size, len(source))),
      self.batch_size,
      num_threads=self.num_threads,
    )
    for batch in tqdm(it, total=steps - start, desc=desc, unit="batch", disable=not self.progress):
      keep = batch["mask"] > 0
      x = self._fn(self._put({"image": batch["image"]})["image"], self._stats_on_mesh)
      x = np.asarray(sharding.settle(self.mesh, x), np.float32)
      yield x[keep].reshape(int(keep.sum()), -1), batch["label"][keep]

  def matrix(self, source, *, desc: str = "") -> tuple[np.ndarray, np.ndarray]:
    """All features of `source` in one `(N, D)` float32 array (the caller checked the memory)."""
    x = np.empty((len(source), self.dim), np.float32)
    y = np.empty((len(source),), np.int32)
    i = 0
    for xb, yb in self.batches(source, desc=desc):
      x[i : i + len(yb)], y[i : i + len(yb)] = xb, yb
      i += len(yb)
    return x, y


def save_feature_stats(stats: spectral.FeatureStats | None, kind: str, directory: Path) -> None:
  """Writes the feature statistics a saved model needs (`stats_<kind>.npz`; nothing for pixels)."""
  if stats is not None:
    np.savez(directory / f"stats_{kind}.npz", mean=np.asarray(stats.mean), std=np.asarray(stats.std))


def saved_estimator_confusion(ctx, name: str, split: str, *, n_jobs: int | None = None) -> tuple[np.ndarray, dict]:
  """The confusion matrix on `split` of the scikit-learn estimator a baseline saved (kNN, Eigenfaces),
  on the features it was trained on (its saved statistics); returns (confusion, model info)."""
  from freqforensics.baselines import results, safe_io  # pylint: disable=g-import-not-at-top

  info = ctx.load_model_info()
  estimator = safe_io.load(ctx.results.model_dir / "estimator.skops")
  if n_jobs is not None:
    estimator.set_params(n_jobs=n_jobs)  # this machine's cores, not those of the machine that trained it
  config = ctx.config.copy_and_resolve_references()
  with config.unlocked():
    config.features = info["features"]
  fm = FeatureMaker(
    config,
    ctx.prepared,
    progress=ctx.progress,
    feature_stats=load_feature_stats(info["features"], ctx.results.model_dir),
  )
  conf = np.zeros((ctx.num_classes, ctx.num_classes), np.int64)
  for xb, yb in fm.batches(ctx.source(split), desc=f"{name} {split}"):
    conf += results.confusion(yb, estimator.predict(xb), ctx.num_classes)
  return conf, info


def load_feature_stats(kind: str, directory: Path) -> spectral.FeatureStats | None:
  """The statistics written by `save_feature_stats` (None for pixels)."""
  if not spectral.needs_stats(kind):
    return None
  path = directory / f"stats_{kind}.npz"
  if not path.is_file():
    raise UserError(f"{path} is missing: the saved model is incomplete, run the train command again")
  with np.load(path, allow_pickle=False) as f:
    return spectral.FeatureStats(jax.numpy.asarray(f["mean"]), jax.numpy.asarray(f["std"]))


def peak_rss_mib() -> dict[str, float]:
  """Peak resident memory of this process and of its largest finished child process, in MiB.

  Children are PRNU's worker processes, and short helper processes that libraries fork (a forked
  child's peak includes the pages it shares with the parent at the fork).
  """
  own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
  children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
  return {"process": round(own, 1), "largest_child": round(children, 1)}
