"""The patch grid: every pixel read, no padding, small images refused, huge ones thinned evenly."""

from __future__ import annotations

import numpy as np
import pytest

from freqforensics.data import patches


def _coverage(height: int, width: int, g: patches.Grid, side: int) -> np.ndarray:
  seen = np.zeros((height, width), int)
  for y, x in g.corners:
    assert 0 <= y <= height - side and 0 <= x <= width - side  # inside the image: nothing padded
    seen[y : y + side, x : x + side] += 1
  return seen


@pytest.mark.parametrize(
  "height,width,side,stride",
  [(65, 130, 64, 0), (64, 64, 64, 0), (130, 65, 64, 0), (65, 130, 64, 17), (101, 77, 16, 5), (37, 37, 37, 1)],
)
def test_the_grid_covers_every_pixel(height, width, side, stride):
  g = patches.grid(height, width, side, stride)
  assert (_coverage(height, width, g, side) >= 1).all() and not g.thinned
  stride = stride or side
  for axis, length in ((0, height), (1, width)):
    starts = np.unique(g.corners[:, axis])
    assert starts[0] == 0 and starts[-1] == length - side  # the last patch shifted inward
    assert (np.diff(starts) <= stride).all() and (np.diff(starts[:-1]) == stride).all()


def test_sizes_of_the_grid():
  assert patches.grid(64, 64, 64).corners.tolist() == [[0, 0]]
  assert patches.grid(65, 130, 64).corners.tolist() == [[0, 0], [0, 64], [0, 66], [1, 0], [1, 64], [1, 66]]
  assert patches.grid(128, 192, 64).total == 6


@pytest.mark.parametrize("height,width", [(37, 1000), (1000, 37), (63, 64)])
def test_an_image_below_the_side_is_refused_with_its_reason(height, width):
  with pytest.raises(
    patches.TooSmall, match=rf"is {width}x{height} pixels, below the model's side 64 .*never upsampled"
  ):
    patches.grid(height, width, 64)
  assert patches.TooSmall.reason == "too small"


def test_a_stride_above_the_side_is_refused():
  with pytest.raises(ValueError, match="1..64"):
    patches.grid(200, 200, 64, 65)


def test_thinning_is_bounded_deterministic_and_spread_over_the_whole_image():
  g = patches.grid(1024 + 7, 2048, 64, max_patches=100)
  assert g.thinned and g.total == 17 * 32 and len(g.corners) <= 100
  assert np.array_equal(g.corners, patches.grid(1024 + 7, 2048, 64, max_patches=100).corners)
  ys, xs = np.unique(g.corners[:, 0]), np.unique(g.corners[:, 1])
  assert ys[0] == 0 and ys[-1] == 1031 - 64 and xs[0] == 0 and xs[-1] == 2048 - 64  # corner to corner
  assert len(xs) > len(ys) > 1  # in proportion to the image's shape
  assert np.ptp(np.diff(ys)) <= 64 and np.ptp(np.diff(xs)) <= 64  # evenly spaced rows and columns
  assert len(g.corners) == len(ys) * len(xs)  # a sub-grid: every chosen row with every chosen column
  assert not patches.grid(1024, 1024, 64, max_patches=256).thinned  # a bound the grid meets reads it all
  assert len(patches.grid(64, 6400, 64, max_patches=1).corners) == 1


def test_spread_picks_distinct_indices_from_first_to_last():
  for n in range(1, 40):
    for m in range(1, n + 1):
      got = patches.spread(n, m)
      assert len(np.unique(got)) == m and got.min() >= 0 and got.max() <= n - 1
      if m > 1:
        assert got[0] == 0 and got[-1] == n - 1


def test_cut_takes_the_pixels_as_they_are():
  image = np.random.default_rng(0).integers(0, 256, (65, 130, 3), dtype=np.uint8)
  read = patches.read(image, 64)
  assert read.images.shape == (6, 64, 64, 3) and read.images.dtype == np.uint8
  for patch, (y, x) in zip(read.images, read.grid.corners):
    np.testing.assert_array_equal(patch, image[y : y + 64, x : x + 64])
