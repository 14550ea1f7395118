"""Metrics a paper reports, from a confusion matrix and from per-example probabilities, and their files.

Counts-based metrics (precision, recall, F1 per class) come from the confusion matrix that the
masked evaluation sums on device. Ranking metrics (ROC-AUC, average precision) need every
example's probabilities; they are computed with scikit-learn's reference implementations. Every
result is keyed by label name. `write_metrics` writes them as JSON with their figures; and
`format_summary` as the lines a command prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from freqforensics import text
from freqforensics.evaluation import figures, results
from freqforensics.files import atomic


def per_class_report(confusion: np.ndarray, label_names: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
  """Precision, recall, F1 and support per class (rows of `confusion` are true labels)."""
  confusion = np.asarray(confusion, np.float64)
  out = {}
  for i, name in enumerate(label_names):
    tp, predicted, actual = confusion[i, i], confusion[:, i].sum(), confusion[i, :].sum()
    precision = tp / predicted if predicted else None
    recall = tp / actual if actual else None
    f1 = (
      2 * precision * recall / (precision + recall)
      if precision is not None and recall is not None and precision + recall > 0
      else (0.0 if precision is not None and recall is not None else None)
    )
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
    per_class[name] = {
      "roc_auc": float(skm.roc_auc_score(y, probs[:, i])) if present else None,
      "average_precision": float(skm.average_precision_score(y, probs[:, i])) if present else None,
    }
  aucs = [v["roc_auc"] for v in per_class.values() if v["roc_auc"] is not None]
  aps = [v["average_precision"] for v in per_class.values() if v["average_precision"] is not None]
  out["one_vs_rest"] = {
    "per_class": per_class,
    "macro_roc_auc": float(np.mean(aucs)) if aucs else None,
    "macro_average_precision": float(np.mean(aps)) if aps else None,
  }
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


def write_metrics(
  path: str | os.PathLike, result: dict[str, Any], scores: results.Scores | None = None, *, plots: bool = True
) -> None:
  """Writes metrics as indented JSON, atomically, and (`plots`) the confusion and ROC PNGs beside it.

  `eval_test.json` gets `eval_test_confusion.png` and, with `scores`, `eval_test_roc.png`.
  """
  path = Path(path)
  atomic.write_json(path, result)
  if not plots:
    return
  names = tuple(result["label_names"])
  title = f"{result.get('model', '')} {result.get('features', '')} {result.get('split', '')}".strip()
  figures.confusion_png(
    np.asarray(result["confusion_matrix"]), names, path.with_name(path.stem + "_confusion.png"), title
  )
  if scores is not None:
    curves = roc_curves(scores.probs, scores.labels, names)
    if "binary" in result:
      aucs = {names[1]: result["binary"]["roc_auc"]}
    else:
      aucs = {k: v["roc_auc"] for k, v in result["one_vs_rest"]["per_class"].items()}
    figures.roc_png(curves, aucs, path.with_name(path.stem + "_roc.png"), title)


def metric_files(path: str | os.PathLike) -> list[Path]:
  """The files `write_metrics(path, ...)` may write: the JSON and its two figures."""
  path = Path(path)
  return [path, path.with_name(path.stem + "_confusion.png"), path.with_name(path.stem + "_roc.png")]


def format_summary(result: dict[str, Any]) -> str:
  """A short human-readable block: accuracy, then per class recall, precision, F1 and AUC."""
  lines = [f"accuracy {result['accuracy']:.4f} on {result['num_examples']} examples"]
  if "binary" in result:
    b = result["binary"]
    auc = f"{b['roc_auc']:.4f}" if b["roc_auc"] is not None else "n/a"
    ap = f"{b['average_precision']:.4f}" if b["average_precision"] is not None else "n/a"
    lines.append(f"ROC-AUC {auc}, average precision {ap} ({text.for_terminal(b['positive_label'])} positive)")
  if result.get("detection"):
    d = result["detection"]
    f = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    lines.append(
      f"detector ({text.for_terminal(d['real_class'])} real): p_fake > {d['threshold']:.4g}"
      f" ({text.for_terminal(d['policy'])}): accuracy {f(d['accuracy'])}"
      f" (reals {f(d['real_accuracy'])}, fakes {f(d['fake_accuracy'])}), TPR at 1% / 5% FPR {f(d['tpr_at_fpr_0.01'])} /"
      f" {f(d['tpr_at_fpr_0.05'])}, EER {f(d['eer'])}, ECE {f(d['ece_uncalibrated'])} -> {f(d['ece'])}"
      f" (temperature {d['temperature']:.3g})"
    )
  ovr = result.get("one_vs_rest", {}).get("per_class", {})
  lines.append(f"  {'label':<24} {'recall':>8} {'precision':>10} {'F1':>8} {'AUC':>8} {'count':>7}")
  for name, r in result["per_class"].items():
    cells = [r["recall"], r["precision"], r["f1"], ovr.get(name, {}).get("roc_auc")]
    shown = [f"{c:.4f}" if c is not None else "n/a" for c in cells]
    lines.append(
      f"  {text.for_terminal(name):<24} {shown[0]:>8} {shown[1]:>10} {shown[2]:>8} {shown[3]:>8} {r['support']:>7}"
    )
  return "\n".join(lines)
