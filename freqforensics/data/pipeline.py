"""grain input pipelines over prepared (random-access) data sources.

Training: a seeded shuffle that changes every epoch (the permutation depends on (seed, epoch), so
a resumed run sees exactly the batches of an uninterrupted one), full batches only.
Evaluation: every example exactly once, in order; the last batch is padded to full size and a
`mask` marks the real rows, so a jitted step keeps one static shape and nothing is dropped or
counted twice. Batches hold uint8 images and int32 labels: spectral transforms run on device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grain
import numpy as np

if TYPE_CHECKING:  # the reader pulls in tensorflow_datasets: not at run time, for a type
  from freqforensics.data.reader import SplitSource


def _example(ex: dict[str, Any]) -> dict[str, np.ndarray]:
  return {"image": np.asarray(ex["image"], np.uint8), "label": np.asarray(ex["label"], np.int32)}


def _read(source: SplitSource, indices: np.ndarray) -> dict[str, np.ndarray]:
  """One batch of examples; a whole-batch read where the source has one (`reader.RecordSource`)."""
  if hasattr(source, "read_batch"):
    return source.read_batch(indices)
  examples = [_example(source[int(i)]) for i in indices]
  return {k: np.stack([e[k] for e in examples]) for k in ("image", "label")}


def epoch_seed(seed: int, epoch: int) -> int:
  """The shuffle seed of one epoch, derived from the run seed (independent streams per epoch)."""
  return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _read_options(num_threads: int) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=max(1, num_threads), prefetch_buffer_size=max(2, 2 * num_threads))


def train_batches(
  source: SplitSource,
  batch_size: int,
  *,
  seed: int,
  epoch: int,
  start_step: int = 0,
  num_threads: int = 2,
  process_index: int = 0,
  process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
  """This process's part of the shuffled full global batches of one epoch, from `start_step` on.

  `batch_size` is the global batch. The epoch's permutation is global (the same on every host);
  process p reads examples p, p + P, p + 2P, ... of it, so the union of the processes' local
  batches is exactly the single-process global batch, and each host reads only its own records.
  The partial last global batch is dropped (training only). `start_step` resumes mid-epoch.
  Batches are read whole, in `num_threads` threads ahead of the training step.

  Args:
    source: the training split (random access by index).
    batch_size: the global batch; it must divide over `process_count`.
    seed: the run's seed; with `epoch` it fixes the permutation.
    epoch: the epoch whose permutation is read.
    start_step: the first step of the epoch to yield (resuming mid-epoch).
    num_threads: reading threads ahead of the training step.
    process_index: this process's index among the hosts.
    process_count: the number of processes (hosts).
  """
  if batch_size % process_count:
    raise ValueError(f"the global batch ({batch_size}) must divide over {process_count} processes")
  steps = num_train_steps(len(source), batch_size)
  if steps == 0:
    raise ValueError(f"the training split has {len(source)} examples, fewer than one batch ({batch_size})")
  order = np.random.default_rng(epoch_seed(seed, epoch)).permutation(len(source))[process_index::process_count]
  local = batch_size // process_count
  ds = grain.MapDataset.range(start_step, steps).map(lambda b: _read(source, order[b * local : (b + 1) * local]))
  return iter(ds.to_iter_dataset(_read_options(num_threads)))


def num_train_steps(num_examples: int, batch_size: int) -> int:
  """Steps in one training epoch (full global batches over the real split size)."""
  return num_examples // batch_size


def _pad(batch: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  n = batch["label"].shape[0]
  out = {
    k: np.concatenate([v, np.zeros((batch_size - n,) + v.shape[1:], v.dtype)]) if n < batch_size else v
    for k, v in batch.items()
  }
  out["mask"] = (np.arange(batch_size) < n).astype(np.float32)
  return out


def eval_batches(
  source: SplitSource, batch_size: int, *, num_threads: int = 2, process_index: int = 0, process_count: int = 1
) -> Iterator[dict[str, np.ndarray]]:
  """Every example once, in order, in full-size batches with a `mask` (1 real, 0 padding).

  `batch_size` is global; process p reads examples p, p + P, ... Every process yields the same
  number of batches (`num_eval_steps`), the last ones padded (or all padding) where its share is
  shorter, because each step is one collective computation over all hosts.

  Args:
    source: the split to read (random access by index).
    batch_size: the global batch; each process's batches hold `batch_size // process_count` rows.
    num_threads: reading threads ahead of the consumer.
    process_index: this process's index among the hosts.
    process_count: the number of processes (hosts).
  """
  local = batch_size // process_count
  order = np.arange(len(source))[process_index::process_count]
  steps = num_eval_steps(len(source), batch_size, process_count)
  ds = grain.MapDataset.range(steps).map(
    lambda b: _pad(_read_or_empty(source, order[b * local : (b + 1) * local]), local)
  )
  return iter(ds.to_iter_dataset(_read_options(num_threads)))


def _read_or_empty(source: SplitSource, indices: np.ndarray) -> dict[str, np.ndarray]:
  if len(indices):
    return _read(source, indices)
  example = _example(source[0])  # shapes and dtypes for an all-padding batch
  return {k: np.zeros((0,) + v.shape, v.dtype) for k, v in example.items()}


def num_eval_steps(num_examples: int, batch_size: int, process_count: int = 1) -> int:
  """Batches in one evaluation pass, the padded last one included (the same on every process)."""
  share = math.ceil(num_examples / process_count)  # the largest process's share
  return math.ceil(share / (batch_size // process_count))
