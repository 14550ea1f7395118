"""Detection metrics of real-vs-fake scores: the field's per-generator table, its mean row, its markdown.

A detector gives each image a score, higher for "more likely fake" (here the log-odds of `p_fake`,
`operating_points.Detector`), and a decision at a threshold (fake when the score is above it). The
cross-generator protocol (CNNDetection / ForenSynths, UnivFD, NPR, AIGCDetectBenchmark) reports per
generator: accuracy, accuracy on reals and on fakes at the threshold, average precision and ROC-AUC;
here also the true-positive rate at 1% and 5% false-positive rate, the equal error rate, and the
open-set rates (`detected`: fakes decided fake or flagged as outliers; `real_flagged`: reals that
were either). Ranking metrics are scikit-learn's; the ROC points come from `roc_curve` with every
point kept (no interpolation anywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from freqforensics import text

FPR_POINTS: tuple[float, ...] = (0.01, 0.05)  # false-positive rates at which the true-positive rate is reported
COLUMNS: tuple[tuple[str, str, str], ...] = (  # (key, header, format) of the per-generator markdown table
  ("accuracy", "acc", ".3f"),
  ("real_accuracy", "real acc", ".3f"),
  ("fake_accuracy", "fake acc", ".3f"),
  ("ap", "AP", ".4f"),
  ("roc_auc", "ROC-AUC", ".4f"),
  ("tpr_at_fpr_0.01", "TPR@1%", ".3f"),
  ("tpr_at_fpr_0.05", "TPR@5%", ".3f"),
  ("eer", "EER", ".3f"),
  ("detected", "detected", ".3f"),
  ("real_flagged", "real flagged", ".3f"),
  ("n_real", "reals", "d"),
  ("n_fake", "fakes", "d"),
)


def _both(is_fake: np.ndarray) -> bool:
  return 0 < int(is_fake.sum()) < len(is_fake)


def roc(is_fake: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Every ROC point `(fpr, tpr)` of `score` (higher = fake), none dropped."""
  fpr, tpr, _ = skm.roc_curve(np.asarray(is_fake, bool), np.asarray(score, np.float64), drop_intermediate=False)
  return fpr, tpr


def tpr_at_fpr(is_fake: np.ndarray, score: np.ndarray, fpr: float) -> float | None:
  """The highest true-positive rate among thresholds whose false-positive rate is at most `fpr`."""
  is_fake = np.asarray(is_fake, bool)
  if not _both(is_fake):
    return None
  f, t = roc(is_fake, score)
  return float(t[f <= fpr + 1e-12].max())


def eer(is_fake: np.ndarray, score: np.ndarray) -> float | None:
  """Equal error rate: the lowest `max(FPR, FNR)` of any threshold (no interpolation between ROC points)."""
  is_fake = np.asarray(is_fake, bool)
  if not _both(is_fake):
    return None
  f, t = roc(is_fake, score)
  return float(np.min(np.maximum(f, 1.0 - t)))


def _rate(x: np.ndarray) -> float | None:
  return float(np.mean(x)) if len(x) else None


def detection_row(
  is_fake: np.ndarray, score: np.ndarray, threshold: float, outlier: np.ndarray | None = None
) -> dict[str, Any]:
  """One generator's (or one split's) row: decisions are `score > threshold`; `outlier` flags (bool) add the
  open-set rates `detected` (fakes decided fake or flagged) and `real_flagged` (reals decided fake or flagged)."""
  is_fake = np.asarray(is_fake, bool)
  score = np.asarray(score, np.float64)
  fake = score > threshold
  both = _both(is_fake)
  row: dict[str, Any] = {
    "accuracy": _rate(fake == is_fake),
    "real_accuracy": _rate(~fake[~is_fake]),
    "fake_accuracy": _rate(fake[is_fake]),
    "ap": float(skm.average_precision_score(is_fake, score)) if both else None,
    "roc_auc": float(skm.roc_auc_score(is_fake, score)) if both else None,
  }
  for p in FPR_POINTS:
    row[f"tpr_at_fpr_{p:g}"] = tpr_at_fpr(is_fake, score, p)
  row["eer"] = eer(is_fake, score)
  if outlier is not None:
    either = fake | np.asarray(outlier, bool)
    row["detected"] = _rate(either[is_fake])
    row["real_flagged"] = _rate(either[~is_fake])
  row["n_real"], row["n_fake"] = int((~is_fake).sum()), int(is_fake.sum())
  return row


def mean_row(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
  """The table's mean row: the unweighted mean over generators of every rate (as the field reports it),
  generators without a value left out; counts are summed."""
  keys = [k for k, _, _ in COLUMNS if not k.startswith("n_")]
  out: dict[str, Any] = {}
  for k in keys:
    values = [r[k] for r in rows.values() if r.get(k) is not None]
    out[k] = float(np.mean(values)) if values else None
  out["n_real"] = sum(r["n_real"] for r in rows.values())
  out["n_fake"] = sum(r["n_fake"] for r in rows.values())
  return out


def markdown(by_generator: dict[str, dict[str, Any]], mean: dict[str, Any], columns: Sequence = COLUMNS) -> str:
  """The per-generator table in markdown, one row per generator and the mean row last; `-` where a value
  is missing (a column absent from every row is left out)."""
  cols = [c for c in columns if any(c[0] in r for r in by_generator.values())]
  lines = ["| generator | " + " | ".join(h for _, h, _ in cols) + " |", "|---|" + "---|" * len(cols)]
  for name, row in [*by_generator.items(), ("**mean**", mean)]:
    cells = ["-" if row.get(k) is None else format(row[k], f) for k, _, f in cols]
    lines.append(f"| {name if row is mean else text.for_markdown(name)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
