"""grain input pipelines over prepared (random-access) data sources.

Training: a seeded shuffle that changes every epoch (the permutation depends on (seed, epoch), so
a resumed run sees exactly the batches of an uninterrupted one), full batches only.
Evaluation: every example exactly once, in order; the last batch is padded to full size and a
`mask` marks the real rows, so a jitted step keeps one static shape and nothing is dropped or
counted twice. Batches hold uint8 images and int32 labels: spectral transforms run on device.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain
import numpy as np


def _example(ex: dict[str, Any]) -> dict[str, np.ndarray]:
  return {"image": np.asarray(ex["image"], np.uint8), "label": np.asarray(ex["label"], np.int32)}


def epoch_seed(seed: int, epoch: int) -> int:
  """The shuffle seed of one epoch, derived from the run seed (independent streams per epoch)."""
  return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _read_options(num_threads: int) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=max(1, num_threads), prefetch_buffer_size=max(2, 2 * num_threads))


def train_batches(source, batch_size: int, *, seed: int, epoch: int, num_threads: int = 2
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Shuffled full batches of one epoch; the partial last batch is dropped (training only)."""
  if len(source) < batch_size:
    raise ValueError(f"the training split has {len(source)} examples, fewer than one batch ({batch_size})")
  ds = (grain.MapDataset.source(source)
        .shuffle(seed=epoch_seed(seed, epoch))
        .map(_example)
        .batch(batch_size, drop_remainder=True))
  return iter(ds.to_iter_dataset(_read_options(num_threads)))


def num_train_steps(num_examples: int, batch_size: int) -> int:
  """Steps in one training epoch (full batches over the real split size)."""
  return num_examples // batch_size


def _pad(batch: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  n = batch["label"].shape[0]
  out = {k: np.concatenate([v, np.zeros((batch_size - n,) + v.shape[1:], v.dtype)]) if n < batch_size else v
         for k, v in batch.items()}
  out["mask"] = (np.arange(batch_size) < n).astype(np.float32)
  return out


def eval_batches(source, batch_size: int, *, num_threads: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """Every example once, in order, in full-size batches with a `mask` (1 real, 0 padding)."""
  ds = (grain.MapDataset.source(source)
        .map(_example)
        .batch(batch_size, drop_remainder=False)
        .map(lambda b: _pad(b, batch_size)))
  return iter(ds.to_iter_dataset(_read_options(num_threads)))


def num_eval_steps(num_examples: int, batch_size: int) -> int:
  """Batches in one evaluation pass, the padded last one included."""
  return -(-num_examples // batch_size)
