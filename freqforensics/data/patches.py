"""Patches of the model's side covering an image at native resolution (host side, numpy only).

`grid` places `side` x `side` patches on an image: a stride of `side` by default (smaller overlaps them),
the last row and column shifted inward so that every pixel is read and nothing is padded (padding would
add a false spectral edge). A grid above `max_patches` is thinned to a sub-grid spread evenly over the
whole image. An image with a side below the model's is refused, never upsampled. `cut` takes the patches.
"""

from __future__ import annotations

import dataclasses

import numpy as np

READS: tuple[str, ...] = ("native", "resize")  # how an image reaches the model: patches, or the crop rule
DEFAULT_MAX_PATCHES = 256  # a 1024x1024 image in 64-px patches is read whole; larger ones are thinned


class TooSmall(ValueError):
  """An image with a side below the model's: refused, since upsampling would invent a spectrum."""

  reason = "too small"


@dataclasses.dataclass(frozen=True)
class Grid:
  """The patches read from one image: their top-left corners and the full grid they were taken from."""

  corners: np.ndarray  # (P, 2) int: (row, column) of each patch read, in raster order
  rows: int  # patch rows of the full grid
  cols: int  # patch columns of the full grid

  @property
  def total(self) -> int:
    """The patches of the full grid (more than `len(corners)` when thinned)."""
    return self.rows * self.cols

  @property
  def thinned(self) -> bool:
    """True when fewer patches were read than the full grid holds (`max_patches`)."""
    return len(self.corners) < self.total


@dataclasses.dataclass(frozen=True)
class Patches:
  """One image read natively: its patches `(P, side, side, C)` uint8 and where they came from."""

  images: np.ndarray
  grid: Grid


def starts(length: int, side: int, stride: int) -> np.ndarray:
  """Patch starts along one axis: `0, stride, 2 stride, ...`, the last one `length - side` (shifted inward)."""
  n = -(-(length - side) // stride) + 1  # ceil((length - side) / stride) + 1
  return np.minimum(np.arange(n) * stride, length - side)


def too_small(height: int, width: int, side: int) -> str | None:
  """Why an image of `height` x `width` cannot be read in `side` x `side` patches; None when it can."""
  if min(height, width) >= side:
    return None
  return f"is {width}x{height} pixels, below the model's side {side} (images are never upsampled)"


def spread(n: int, m: int) -> np.ndarray:
  """`min(m, n)` distinct indices of `range(n)` spread evenly from the first to the last (the middle one for 1)."""
  if m >= n:
    return np.arange(n)
  if m == 1:
    return np.array([(n - 1) // 2])
  return np.floor(np.linspace(0, n - 1, m) + 0.5).astype(int)  # steps >= 1: distinct after rounding


def grid(height: int, width: int, side: int, stride: int = 0, max_patches: int = 0) -> Grid:
  """The `side` x `side` patches read from an image of `height` x `width`; raises `TooSmall`.

  `stride` 0 means `side` (no overlap); it must lie in 1..side, so that no pixel is skipped.
  `max_patches` > 0 bounds the patches: a larger grid keeps a sub-grid of its rows and columns (in
  proportion to its shape, the first and last included) spread evenly over the image; deterministic.

  Args:
    height: the image's height in pixels.
    width: the image's width in pixels.
    side: the model's side (patches are `side` x `side`).
    stride: the step between patches (0: `side`).
    max_patches: the most patches to read (0: no bound).
  """
  stride = stride or side
  if not 1 <= stride <= side:
    raise ValueError(f"patch stride {stride} must lie in 1..{side} (the model's side), or pixels go unread")
  if (why := too_small(height, width, side)) is not None:
    raise TooSmall(why)
  ys, xs = starts(height, side, stride), starts(width, side, stride)
  rows, cols = len(ys), len(xs)
  if max_patches and rows * cols > max_patches:
    r = int(np.clip(round(np.sqrt(max_patches * rows / cols)), 1, rows))
    c = int(np.clip(max_patches // r, 1, cols))
    r = int(np.clip(max_patches // c, 1, rows))
    ys, xs = ys[spread(rows, r)], xs[spread(cols, c)]
  corners = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
  return Grid(corners=corners, rows=rows, cols=cols)


def cut(image: np.ndarray, g: Grid, side: int) -> np.ndarray:
  """The patches of `g` out of `image` `(H, W, C)`: `(P, side, side, C)`, pixels exactly as they are."""
  return np.stack([image[y : y + side, x : x + side] for y, x in g.corners])


def read(image: np.ndarray, side: int, stride: int = 0, max_patches: int = 0) -> Patches:
  """`image` `(H, W, C)` as its patches (`grid`, `cut`); raises `TooSmall`."""
  g = grid(image.shape[0], image.shape[1], side, stride, max_patches)
  return Patches(cut(image, g, side), g)
