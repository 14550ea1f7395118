"""The PRNU work one process does on a chunk of a split (picklable, no JAX: runs in worker processes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from freqforensics.baselines import prnu


def accumulate_chunk(source, indices: np.ndarray, num_classes: int, grid: Sequence[tuple[int, float]],
                     windows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """Fingerprint sums (`prnu.accumulate`) of the examples of `source` at `indices`."""
  batch = source.read_batch(indices)
  return prnu.accumulate(batch["image"], batch["label"], num_classes, grid, windows)


def score_chunk(source, indices: np.ndarray, grid: Sequence[tuple[int, float]], windows: Sequence[int],
                fingerprints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Labels `(n,)` and predictions `(G, n)` of the examples at `indices`, per grid point.

  `fingerprints` is `(G, num_classes, H, W)`: the classes' fingerprints for each grid point.
  """
  batch = source.read_batch(indices)
  preds = []
  for g, residual in enumerate(prnu.residuals(batch["image"], grid, windows)):
    stat = prnu.test_statistic(residual, windows).reshape(len(residual), -1)
    k = fingerprints[g].reshape(len(fingerprints[g]), -1)
    preds.append(np.argmax(prnu.normalised_correlation(stat, k), axis=1))
  return np.asarray(batch["label"]), np.stack(preds)
