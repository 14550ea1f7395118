"""One image as `explain --image` shows it: scored as classify scores it (resized by the crop rule, or read
natively as patches whose logits are aggregated), its log-DCT spectrum beside the training classes' mean
spectra, and, reading natively, the patch map: each patch's probability drawn over the image.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from freqforensics import spectral
from freqforensics.data import decode, images, patches
from freqforensics.evaluation import aggregate, batches, inference
from freqforensics.files import figure_marks

BATCH = 64  # patches per model call, padded (as `inference.predict_files`)


@dataclasses.dataclass(frozen=True)
class ScoredImage:
  """One image scored by a classifier; `read`, `image` and `patch_values` are None when it was resized."""

  probs: np.ndarray  # (labels,) calibrated probabilities of the image's (aggregated) logits
  spectrum: np.ndarray  # (S, S, C) log-DCT of what the model read (the mean over patches, reading natively)
  read: patches.Patches | None = None  # the patches read
  image: np.ndarray | None = None  # (H, W, C) uint8: the whole image at native resolution
  patch_values: np.ndarray | None = None  # (P,) each patch's p_fake, or its probability of the image's class
  value_name: str = ""  # what `patch_values` are: `p_fake` or `p(<label>)`


def score(clf: inference.Classifier, path: str | os.PathLike) -> ScoredImage:
  """`path` through `clf` by its reading rule; raises `ImageDecodeError` for a file it cannot use.

  Reading natively, the image's logits are the aggregate of its patches' (`aggregate.logits`, classify's
  rule), and each patch gets its own value: a detector's `p_fake`, else its probability of the class the
  image is predicted to be (one scale for the whole map).
  """
  decoded = clf.decoder()(path)
  if isinstance(decoded, decode.Unreadable):
    raise images.ImageDecodeError(str(decoded))
  native = isinstance(decoded, patches.Patches)
  stack = decoded.images if native else decoded[None]
  logits = batches.run(stack, clf.outputs, BATCH)["logits"]
  spectrum = np.asarray(spectral.raw_features(stack, "dct_log"), np.float64).mean(0)
  if not native:
    return ScoredImage(clf.calibrated(logits)[0], spectrum)
  probs = clf.calibrated(aggregate.logits(logits, clf.reading.aggregate)[None])[0]
  if clf.detector.real is not None:
    values, name = clf.detector.p_fake(logits), "p_fake"
  else:
    k = int(np.argmax(probs))
    values, name = clf.calibrated(logits)[:, k], f"p({clf.label_names[k]})"
  image = images.load_native(path, clf.input_shape[-1])
  return ScoredImage(probs, spectrum, decoded, image, np.asarray(values, np.float64), name)


def coverage(shape: tuple[int, int], corners: np.ndarray, side: int, values: np.ndarray) -> np.ndarray:
  """`shape` `(height, width)`: each pixel's mean of the values of the `side` x `side` patches at `corners` that
  cover it (NaN where none does: the gaps of a thinned grid)."""
  total, count = np.zeros(shape), np.zeros(shape)
  for (y, x), v in zip(np.asarray(corners), np.asarray(values, np.float64)):
    total[y : y + side, x : x + side] += v
    count[y : y + side, x : x + side] += 1
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def plot(
  name: str, scored: ScoredImage, classes: tuple[Sequence[str], np.ndarray], clf: inference.Classifier, path: Path
) -> Path:
  """Writes the figure of `scored` to `path`: the patch map when the image was read natively, its spectrum,
  and the class mean spectra titled with their probabilities, the spectra on one colour scale.

  Args:
    name: the image's name (the first spectrum's title).
    scored: the image scored (`score`).
    classes: the training classes' names and mean log-DCT spectra `(K, S, S, C)` (`mean_spectra`).
    clf: the classifier that scored it (its labels, side and aggregation rule).
    path: the figure file to write.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top  (plotting only when asked)

  matplotlib.use("Agg")  # headless servers; must precede pyplot
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  names, means = classes
  own = f"{name} (mean of {len(scored.read.grid.corners)} patches)" if scored.read else name
  panels = [(own, scored.spectrum.mean(-1))]
  panels += [(f"{n} (p = {scored.probs[clf.label_names.index(n)]:.3f})", m.mean(-1)) for n, m in zip(names, means)]
  vmin = min(np.percentile(p, 1) for _, p in panels)
  vmax = max(np.percentile(p, 99) for _, p in panels)
  extra = int(scored.read is not None)
  fig, axes = plt.subplots(
    1, len(panels) + extra, figsize=(3.2 * (len(panels) + extra) + 2, 3.8), squeeze=False, layout="constrained"
  )
  for ax, (title, panel) in zip(axes[0][extra:], panels):
    im = ax.imshow(panel, cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize="small")
    ax.set_xlabel("horizontal frequency")
  axes[0][extra].set_ylabel("vertical frequency")
  fig.colorbar(im, ax=list(axes[0][extra:]), label="log |DCT| (mean over channels)")
  if scored.read is not None:
    _draw_map(fig, axes[0][0], scored, clf)
  figure_marks.save_figure(fig, path, dpi=100)
  plt.close(fig)
  return path


def _draw_map(fig, ax, scored: ScoredImage, clf: inference.Classifier) -> None:
  """The image with each patch's value as a translucent colour over its area (overlaps: the mean)."""
  h, w, c = scored.image.shape
  ax.imshow(scored.image[..., 0] if c == 1 else scored.image, cmap="gray" if c == 1 else None)
  shown = coverage((h, w), scored.read.grid.corners, clf.input_shape[0], scored.patch_values)
  im = ax.imshow(shown, cmap="coolwarm", vmin=0.0, vmax=1.0, alpha=0.55)
  thinned = f", {scored.read.grid.total - len(scored.read.grid.corners)} not read" if scored.read.grid.thinned else ""
  ax.set_title(f"{len(scored.read.grid.corners)} patches, {clf.reading.aggregate}{thinned}", fontsize="small")
  ax.set_axis_off()
  fig.colorbar(im, ax=ax, label=f"{scored.value_name} per patch (overlaps: mean)")
