"""Small figures of a few images beside their DCT spectra, for notebooks and reports.

`image_grid` writes one PNG: a row of images (with titles, e.g. the class or a prediction) and, below
it, the channel-averaged `log(|DCT| + eps)` of each, on one shared colour scale. Figures are built
with matplotlib's object API (no pyplot, no backend switch), so a notebook keeps its own backend and
shows the file with `IPython.display.Image(path)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from freqforensics.files import figure_marks


def log_spectra(images: np.ndarray) -> np.ndarray:
  """`log(|DCT-II| + eps)` of uint8 images `(N, H, W, C)`, averaged over channels: `(N, H, W)` float64.

  The same transform the models see before standardisation (`spectral.raw_features(x, "dct_log")`).
  """
  from freqforensics import spectral  # pylint: disable=g-import-not-at-top  (importing this module costs no JAX start-up)

  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"expected images shaped (N, H, W, C), got {images.shape}")
  return np.asarray(spectral.raw_features(images, "dct_log"), np.float64).mean(axis=-1)


def image_grid(
  images: np.ndarray, titles: Sequence[str], path: str | os.PathLike, *, spectra: bool = True, columns: int = 8
) -> Path:
  """Writes images `(N, H, W, C)` uint8 with `titles` (and their log-DCT spectra) to the PNG `path`.

  Up to `columns` images per row; with `spectra` each row of images has a row of spectra below it.

  Args:
    images: uint8 images `(N, H, W, C)`, C = 1 or 3.
    titles: one title per image.
    path: the PNG to write (its folder is made).
    spectra: add a row of log-DCT spectra (one colour scale) below each row of images.
    columns: images per row, at most.
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  images = np.asarray(images)
  if len(images) == 0:
    raise ValueError("no images to show")
  if len(titles) != len(images):
    raise ValueError(f"{len(titles)} titles for {len(images)} images")
  cols = min(columns, len(images))
  blocks = -(-len(images) // cols)
  rows_per_block = 2 if spectra else 1
  fig = Figure(figsize=(1.9 * cols + (1.2 if spectra else 0.2), 2.0 * blocks * rows_per_block), layout="constrained")
  axes = fig.subplots(blocks * rows_per_block, cols, squeeze=False)
  for ax in axes.ravel():
    ax.set_axis_off()
  logs = log_spectra(images) if spectra else None
  if logs is not None:
    vmin, vmax = np.percentile(logs, [1, 99])
  im = None
  for i, (image, title) in enumerate(zip(images, titles)):
    block, col = divmod(i, cols)
    ax = axes[block * rows_per_block, col]
    ax.imshow(
      image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255
    )
    ax.set_title(str(title), fontsize="small")
    if logs is not None:
      im = axes[block * rows_per_block + 1, col].imshow(logs[i], cmap="viridis", vmin=vmin, vmax=vmax)
  if im is not None:
    fig.colorbar(im, ax=list(axes[1::2].ravel()), shrink=0.8, label="log |DCT|")
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  figure_marks.save_figure(fig, path, dpi=90)
  return path
