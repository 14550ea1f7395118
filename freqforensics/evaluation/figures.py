"""PNG figures of an evaluation: confusion matrix, ROC curves, reliability diagram, cross-generator matrix."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
# Labels are names from folders and bundles: text, never mathtext (a `$\foo$` in a class name would raise).
matplotlib.rcParams["text.parse_math"] = False
from typing import Any  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from freqforensics.files import figure_marks  # noqa: E402


def confusion_png(confusion: np.ndarray, label_names: tuple[str, ...], path: str | os.PathLike, title: str) -> None:
  """Row-normalised confusion matrix with the counts written in each cell."""
  confusion = np.asarray(confusion)
  rows = confusion.sum(axis=1, keepdims=True)
  share = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=np.float64), where=rows > 0)
  n = len(label_names)
  fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.2 * n + 2))
  im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
  ax.set_xticks(range(n), label_names, rotation=45, ha="right")
  ax.set_yticks(range(n), label_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  for i in range(n):
    for j in range(n):
      ax.text(j, i, f"{confusion[i, j]}", ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
  fig.colorbar(im, ax=ax, label="share of the true class")
  ax.set_title(title)
  fig.tight_layout()
  figure_marks.save_figure(fig, Path(path), dpi=100)
  plt.close(fig)


def roc_png(
  curves: dict[str, tuple[np.ndarray, np.ndarray]], aucs: dict[str, float | None], path: str | os.PathLike, title: str
) -> None:
  """One ROC curve per label (one-vs-rest) or for the positive label of a binary model."""
  fig, ax = plt.subplots(figsize=(5, 5))
  for name, (fpr, tpr) in curves.items():
    auc = aucs.get(name)
    ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.4f})" if auc is not None else name)
  ax.plot([0, 1], [0, 1], ":", color="gray")
  _finish(fig, ax, ("false positive rate", "true positive rate"), title, "lower right", path)


def reliability_png(
  bins: dict[str, list[dict[str, Any]]], eces: dict[str, float], path: str | os.PathLike, title: str
) -> None:
  """Reliability diagram: accuracy against mean confidence per confidence bin (`calibration.reliability`),
  one line per curve (e.g. before and after temperature scaling), with each curve's ECE in the legend."""
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.plot([0, 1], [0, 1], ":", color="gray", label="perfect calibration")
  for name, rows in bins.items():
    used = [r for r in rows if r["count"]]
    ax.plot(
      [r["confidence"] for r in used],
      [r["accuracy"] for r in used],
      "o-",
      label=f"{name} (ECE {eces[name]:.3f})",
    )
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.02)
  labels = ("confidence (mean top-label probability in the bin)", "accuracy in the bin")
  _finish(fig, ax, labels, title, "upper left", path)


def _finish(fig, ax, labels: tuple[str, str], title: str, legend: str, path: str | os.PathLike) -> None:
  """Axis labels, title and legend of a one-panel line figure; saved and closed."""
  ax.set_xlabel(labels[0])
  ax.set_ylabel(labels[1])
  ax.set_title(title)
  ax.legend(loc=legend, fontsize="small")
  fig.tight_layout()
  figure_marks.save_figure(fig, Path(path), dpi=100)
  plt.close(fig)


def matrix_png(
  panels: dict[str, np.ndarray], rows: list[str], cols: list[str], path: str | os.PathLike, title: str, label: str
) -> None:
  """Heat maps side by side, one per panel, of values in [0, 1] (e.g. ROC-AUC of a model trained on a row
  and tested on a column), each cell written out; NaN cells are left blank.

  Args:
    panels: panel title -> values `(len(rows), len(cols))`.
    rows: the row labels (shown on the first panel only).
    cols: the column labels.
    path: the PNG to write (marked as the project's figure).
    title: the figure's title.
    label: the colour bar's label.
  """
  n = len(panels)
  fig, axes = plt.subplots(1, n, figsize=(0.55 * len(cols) * n + 2.5, 0.5 * len(rows) + 2.4), squeeze=False)
  for ax, (name, values) in zip(axes[0], panels.items()):
    values = np.asarray(values, np.float64)
    im = ax.imshow(values, cmap="viridis", vmin=0.5, vmax=1.0)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize="small")
    ax.set_yticks(range(len(rows)), rows if ax is axes[0][0] else [""] * len(rows), fontsize="small")
    for i in range(values.shape[0]):
      for j in range(values.shape[1]):
        if np.isfinite(values[i, j]):
          ax.text(
            j,
            i,
            f"{values[i, j]:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if values[i, j] < 0.8 else "black",
          )
    ax.set_title(name, fontsize="medium")
  fig.colorbar(im, ax=axes[0].tolist(), label=label, shrink=0.8)
  fig.suptitle(title)
  figure_marks.save_figure(fig, Path(path), dpi=100)
  plt.close(fig)
