"""Metrics a paper reports, from a confusion matrix and from per-example probabilities.

Counts-based metrics (precision, recall, F1 per class) come from the confusion matrix that the
masked evaluation sums on device. Ranking metrics (ROC-AUC, average precision) need every
example's probabilities; they are computed with scikit-learn's reference implementations. Every
result is keyed by label name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm


def per_class_report(confusion: np.ndarray, label_names: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
  """Precision, recall, F1 and support per class (rows of `confusion` are true labels)."""
  confusion = np.asarray(confusion, np.float64)
  out = {}
  for i, name in enumerate(label_names):
    tp, predicted, actual = confusion[i, i], confusion[:, i].sum(), confusion[i, :].sum()
    precision = tp / predicted if predicted else None
    recall = tp / actual if actual else None
    f1 = (2 * precision * recall / (precision + recall) if precision is not None and recall is not None
          and precision + recall > 0 else (0.0 if precision is not None and recall is not None else None))
    out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual)}
  return out


def score_metrics(probs: np.ndarray, labels: np.ndarray, label_names: tuple[str, ...]) -> dict[str, Any]:
  """Binary: ROC-AUC, average precision and accuracy at 0.5 for the second label (the fake class).

  Multi-class: one-vs-rest ROC-AUC and average precision per label, and their macro means. A
  label absent from `labels` has no AUC (None).
  """
  probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
  out: dict[str, Any] = {}
  if len(label_names) == 2:
    positive = label_names[1]
    both = len(np.unique(labels)) == 2
    out["binary"] = {
        "positive_label": positive,
        "roc_auc": float(skm.roc_auc_score(labels, probs[:, 1])) if both else None,
        "average_precision": float(skm.average_precision_score(labels, probs[:, 1])) if both else None,
        "accuracy_at_0.5": float(np.mean((probs[:, 1] >= 0.5) == (labels == 1))),
    }
    return out
  per_class = {}
  for i, name in enumerate(label_names):
    y = labels == i
    present = 0 < y.sum() < len(y)
    per_class[name] = {"roc_auc": float(skm.roc_auc_score(y, probs[:, i])) if present else None,
                       "average_precision": float(skm.average_precision_score(y, probs[:, i])) if present else None}
  aucs = [v["roc_auc"] for v in per_class.values() if v["roc_auc"] is not None]
  aps = [v["average_precision"] for v in per_class.values() if v["average_precision"] is not None]
  out["one_vs_rest"] = {"per_class": per_class, "macro_roc_auc": float(np.mean(aucs)) if aucs else None,
                        "macro_average_precision": float(np.mean(aps)) if aps else None}
  return out


def roc_curves(probs: np.ndarray, labels: np.ndarray, label_names: tuple[str, ...]) -> dict[str, tuple]:
  """(fpr, tpr) per curve: the positive label for binary models, one-vs-rest per label otherwise."""
  probs, labels = np.asarray(probs), np.asarray(labels)
  classes = [1] if len(label_names) == 2 else range(len(label_names))
  curves = {}
  for i in classes:
    y = labels == i
    if 0 < y.sum() < len(y):
      fpr, tpr, _ = skm.roc_curve(y, probs[:, i])
      curves[label_names[i]] = (fpr, tpr)
  return curves
