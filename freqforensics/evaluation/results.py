"""Typed evaluation results: the JSON a report writes, with the per-example arrays kept apart from it.

`SplitResult` is one split's (or folder's) metrics with its `Scores`; `GeneratorReport` is the
cross-generator protocol's report with its markdown table.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Scores:
  """Per-example arrays of the real (unpadded) rows of a split, in order; never written to JSON."""

  probs: np.ndarray  # (N, labels) probabilities
  labels: np.ndarray  # (N,) true labels, in the model's order
  logits: np.ndarray  # (N, outputs)
  per_example: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # open-set candidates (N,) each


@dataclasses.dataclass
class SplitResult:
  """A split's metrics (`metrics`: what its JSON report holds) and, when asked for, its `scores`."""

  metrics: dict[str, Any]
  scores: Scores | None = None


@dataclasses.dataclass
class GeneratorReport:
  """The cross-generator report (`metrics`: what its JSON holds) and its table as escaped markdown."""

  metrics: dict[str, Any]
  markdown: str


Report = SplitResult | GeneratorReport
