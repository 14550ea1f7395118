"""Perturbed views of a random-access source: training augmentation and perturbed evaluation.

`PerturbedSource` wraps a prepared split (`reader.RecordSource`, `reader.InMemorySource`, or any
source with `len`, `[i]` and `read_batch`) and perturbs each image as it is read, on the host, in
the grain reader threads, before the features are computed on device. Nothing is written.

The draws for example `i` come from a generator seeded by `(seed, stream, epoch, i)`: the same
example gets the same perturbation in the same epoch whatever the batch, the process count, the
reader thread or a resume mid-epoch, and a different one in the next epoch (training) or the same
one in every evaluation (`epoch` 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from freqforensics.data.distortions import Perturbation

if TYPE_CHECKING:  # the reader pulls in tensorflow_datasets: not at run time, for a type
  from freqforensics.data.reader import SplitSource

TRAIN_STREAM = 1  # training augmentation
EVAL_STREAM = 2  # perturbed evaluation (eval.perturb, the robustness report)


def example_rng(seed: int, stream: int, epoch: int, index: int) -> np.random.Generator:
  """The generator of one example's draws (independent of the shuffle's `SeedSequence([seed, epoch])`)."""
  return np.random.default_rng([int(seed) % (1 << 63), stream, epoch, int(index)])


class PerturbedSource:
  """`source` with every image read through `perturbation` (deterministic per example)."""

  def __init__(self, source: SplitSource, perturbation: Perturbation, *, seed: int, stream: int, epoch: int = 0):
    self._source, self.perturbation = source, perturbation
    self._key = (seed, stream, epoch)

  def __len__(self) -> int:
    return len(self._source)

  def _perturb(self, image: np.ndarray, index: int) -> np.ndarray:
    seed, stream, epoch = self._key
    return self.perturbation(np.asarray(image, np.uint8), example_rng(seed, stream, epoch, index))

  def __getitem__(self, index: int) -> dict[str, Any]:
    ex = dict(self._source[int(index)])
    ex["image"] = self._perturb(ex["image"], int(index))
    return ex

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    if hasattr(self._source, "read_batch"):
      batch = dict(self._source.read_batch(indices))
    else:
      examples = [self._source[int(i)] for i in indices]
      batch = {
        "image": np.stack([np.asarray(e["image"], np.uint8) for e in examples]),
        "label": np.asarray([e["label"] for e in examples], np.int32),
      }
    images = np.empty_like(batch["image"])
    for j, i in enumerate(indices):
      images[j] = self._perturb(batch["image"][j], int(i))
    batch["image"] = images
    return batch


def augmented(source: SplitSource, perturbation: Perturbation, *, seed: int, epoch: int) -> SplitSource:
  """The training split of one epoch with augmentation; `source` itself when nothing is perturbed."""
  if not perturbation.active:
    return source
  return PerturbedSource(source, perturbation, seed=seed, stream=TRAIN_STREAM, epoch=epoch)


def perturbed_for_eval(source: SplitSource, perturbation: Perturbation, *, seed: int) -> SplitSource:
  """An evaluation split with every read perturbed the same way each time; `source` when inactive."""
  if not perturbation.active:
    return source
  return PerturbedSource(source, perturbation, seed=seed, stream=EVAL_STREAM)
