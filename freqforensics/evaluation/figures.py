"""PNG figures of an evaluation: the confusion matrix and the ROC curves, with label names."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from freqforensics import outputs  # noqa: E402


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
  outputs.save_figure(fig, Path(path), dpi=100)
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
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  ax.set_title(title)
  ax.legend(loc="lower right", fontsize="small")
  fig.tight_layout()
  outputs.save_figure(fig, Path(path), dpi=100)
  plt.close(fig)
