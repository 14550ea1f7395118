"""Crop rules: exact geometry against numpy slicing, including odd and off-by-one sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from freqforensics.data import crops, images


def coords(h: int, w: int) -> np.ndarray:
  """An RGB image whose pixels hold their own row (R), column (G) and a checksum (B), mod 256."""
  r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([r % 256, c % 256, (r * 7 + c * 3) % 256], -1).astype(np.uint8)


def png(tmp_path, array: np.ndarray, name: str = "x.png"):
  path = tmp_path / name
  Image.fromarray(array).save(path)
  return path


def lanczos(array: np.ndarray, size: int) -> np.ndarray:
  return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=None))


@pytest.mark.parametrize("h,w", [(218, 178), (150, 140), (128, 128), (186, 154), (300, 200)])
def test_celeba_window_is_the_release_geometry(tmp_path, h, w):
  a = coords(h, w)
  bottom, right = min(185, h), min(153, w)
  want = a[bottom - 128 : bottom, right - 128 : right]
  got = images.load_image(png(tmp_path, a), 128, 3, crop="celeba")
  np.testing.assert_array_equal(got, want)
  if (h, w) == (218, 178):  # the aligned CelebA size: rows 57..184, columns 25..152
    assert got[0, 0, 0] == 57 and got[-1, -1, 0] == 184 and got[0, 0, 1] == 25 and got[-1, -1, 1] == 152


def test_celeba_window_is_resized_for_other_target_sizes_and_refuses_small_images(tmp_path):
  a = coords(218, 178)
  got = images.load_image(png(tmp_path, a), 64, 3, crop="celeba")
  np.testing.assert_array_equal(got, lanczos(a[57:185, 25:153], 64))
  for h, w in ((127, 178), (218, 127)):
    with pytest.raises(images.ImageDecodeError, match="smaller than the 128x128 CelebA window") as e:
      images.load_image(png(tmp_path, coords(h, w)), 128, 3, crop="celeba")
    assert e.value.reason == "too small"


@pytest.mark.parametrize("h,w", [(50, 51), (51, 50), (50, 52), (53, 50), (50, 50), (49, 80)])
def test_center_crop_is_square_and_centred_for_odd_and_off_by_one_sizes(tmp_path, h, w):
  a = coords(h, w)
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = a[top : top + side, left : left + side]
  np.testing.assert_array_equal(images.load_image(png(tmp_path, a), side, 3, crop="center"), square)
  np.testing.assert_array_equal(images.load_image(png(tmp_path, a), 32, 3, crop="center"), lanczos(square, 32))


def test_center_crop_never_upsamples(tmp_path):
  with pytest.raises(images.ImageDecodeError, match="short side is below the target size 64") as e:
    images.load_image(png(tmp_path, coords(63, 200)), 64, 3, crop="center")
  assert e.value.reason == "too small"


def test_none_keeps_images_at_size_bit_exact_and_refuses_any_other_size(tmp_path):
  a = coords(64, 64)
  np.testing.assert_array_equal(images.load_image(png(tmp_path, a), 64, 3, crop="none"), a)
  for h, w in ((64, 65), (63, 64), (128, 128)):
    with pytest.raises(images.ImageDecodeError, match=f"is {w}x{h} pixels, crop 'none' needs exactly 64x64") as e:
      images.load_image(png(tmp_path, coords(h, w)), 64, 3, crop="none")
    assert e.value.reason == "wrong size"


def test_resize_takes_square_images_down_to_size(tmp_path):
  a = coords(96, 96)
  np.testing.assert_array_equal(images.load_image(png(tmp_path, a), 32, 3, crop="resize"), lanczos(a, 32))
  np.testing.assert_array_equal(images.load_image(png(tmp_path, a), 96, 3, crop="resize"), a)
  with pytest.raises(images.ImageDecodeError, match="takes square images") as e:
    images.load_image(png(tmp_path, coords(96, 97)), 32, 3, crop="resize")
  assert e.value.reason == "not square"
  with pytest.raises(images.ImageDecodeError, match="below the target size 128"):
    images.load_image(png(tmp_path, a), 128, 3, crop="resize")


def test_unknown_crop_rule_names_the_known_ones():
  with pytest.raises(ValueError, match="center, celeba, none, resize"):
    crops.check_crop("lsun")
