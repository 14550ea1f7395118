"""The examples of a prepared split that a model gets wrong, with their images and probabilities.

  clf = classify.load("runs/demo")
  wrong = mistakes.misclassified(clf.predict, dataset_dir, "test", label_names=clf.label_names)

`predict` is any `uint8 images (N, H, W, C) -> probabilities (N, K)` function (a `Classifier`'s
`predict`); the split is read in batches, so memory holds one batch plus the kept examples.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from freqforensics.data import reader
from freqforensics.errors import UserError


@dataclasses.dataclass
class Mistakes:
  """Misclassified examples of one split, in record order."""

  label_names: tuple[str, ...]
  num_examples: int  # examples in the split (all of them were classified)
  indices: np.ndarray  # (M,) record indices in the split
  images: np.ndarray  # (M, H, W, C) uint8, at most `limit` of them
  true: np.ndarray  # (M,) true label indices
  predicted: np.ndarray  # (M,) predicted label indices (argmax of the probabilities)
  probs: np.ndarray  # (M, K) probabilities
  paths: list[str]  # the source file of each, relative to the prepared source folder

  def titles(self) -> list[str]:
    """`true -> predicted (p)` per example, for figure panels."""
    return [
      f"{self.label_names[t]} -> {self.label_names[p]} ({pr[p]:.2f})"
      for t, p, pr in zip(self.true, self.predicted, self.probs)
    ]


def misclassified(
  predict: Callable[[np.ndarray], np.ndarray],
  dataset_dir: str | os.PathLike,
  split: str = "test",
  *,
  label_names: Sequence[str],
  limit: int | None = None,
  batch_size: int = 64,
) -> Mistakes:
  """Runs `predict` over every example of `split` of a prepared dataset; keeps the wrong ones.

  `label_names` are the model's labels, in its output order: they must equal the dataset's, or the
  probability columns would be read as the wrong classes. Keeps at most `limit` examples (all when
  None); the whole split is classified either way.

  Args:
    predict: uint8 images `(n, H, W, C)` -> class probabilities `(n, classes)`.
    dataset_dir: the prepared dataset the model was trained on.
    split: the split to classify.
    label_names: the model's labels in output order; must equal the dataset's.
    limit: the most mistakes kept (all when None).
    batch_size: images per call of `predict`.
  """
  ds = reader.open_prepared(dataset_dir)
  if tuple(label_names) != tuple(ds.label_names):
    raise UserError(
      f"the model's labels {tuple(label_names)} differ from those of {ds.path} {ds.label_names}:"
      " give the dataset the model was trained on"
    )
  if split not in ds.num_examples:
    raise UserError(f"{ds.path} has no split {split!r}: use one of {', '.join(ds.num_examples)}")
  source = ds.source(split)
  n = len(source)
  kept: dict[str, list] = {"indices": [], "images": [], "true": [], "predicted": [], "probs": []}
  for lo in range(0, n, batch_size):
    idx = np.arange(lo, min(n, lo + batch_size))
    batch = source.read_batch(idx)
    probs = np.asarray(predict(batch["image"]))
    pred = np.argmax(probs, axis=-1)
    for j in np.flatnonzero(pred != batch["label"]):
      if limit is not None and len(kept["indices"]) >= limit:
        break
      kept["indices"].append(int(idx[j]))
      kept["images"].append(batch["image"][j])
      kept["true"].append(int(batch["label"][j]))
      kept["predicted"].append(int(pred[j]))
      kept["probs"].append(probs[j])
  h, w, c = ds.image_shape
  k = len(ds.label_names)
  paths = [source[i]["path"] for i in kept["indices"]]
  return Mistakes(
    label_names=tuple(ds.label_names),
    num_examples=n,
    indices=np.asarray(kept["indices"], np.int64),
    images=np.stack(kept["images"]) if kept["images"] else np.zeros((0, h, w, c), np.uint8),
    true=np.asarray(kept["true"], np.int64),
    predicted=np.asarray(kept["predicted"], np.int64),
    probs=np.stack(kept["probs"]) if kept["probs"] else np.zeros((0, k), np.float32),
    paths=[p.decode() if isinstance(p, bytes) else str(p) for p in paths],
  )
