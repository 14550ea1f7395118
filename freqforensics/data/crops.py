"""Crop rules: how an image of any size becomes the model's `size` x `size` input.

`center` (square centre crop of the short side, Lanczos resize: the correct form of the release's
LSUN crop), `celeba` (the fixed 128x128 face window of aligned CelebA), `none` (already at the target
size; any other size refused) and `resize` (a square image, Lanczos); docs/data.md has the geometry.
Every rule refuses an image smaller than its window (`TooSmall`) rather than upsample it: upsampling
invents a spectrum, the very thing the models look at. Refusals raise `CropError` with a reason.
"""

from __future__ import annotations

from PIL import Image

CROPS: tuple[str, ...] = ("center", "celeba", "none", "resize")
CELEBA_WINDOW = 128


class CropError(Exception):
  """An image that the crop rule cannot use; `reason` is a short category for reports."""

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason


def check_crop(crop: str) -> str:
  """Returns `crop` if it is a known rule, else raises ValueError naming the known ones."""
  if crop not in CROPS:
    raise ValueError(f"unknown crop rule {crop!r}: use one of {', '.join(CROPS)}")
  return crop


def celeba_box(width: int, height: int) -> tuple[int, int, int, int]:
  """The release's CelebA window `(left, top, right, bottom)` for an image of `width` x `height`."""
  bottom, right = min(185, height), min(153, width)
  return right - CELEBA_WINDOW, bottom - CELEBA_WINDOW, right, bottom


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
  """The centred square of side `min(width, height)`, `(left, top, right, bottom)`."""
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  return left, top, left + side, top + side


def _resize(image: Image.Image, size: int) -> Image.Image:
  if image.size == (size, size):
    return image
  return image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=None)


def apply_crop(image: Image.Image, crop: str, size: int) -> Image.Image:
  """Brings a decoded image to `size` x `size` by rule `crop`; raises `CropError` when it cannot."""
  w, h = image.size
  if crop == "none":
    if (w, h) != (size, size):
      raise CropError(
        "wrong size",
        f"is {w}x{h} pixels, crop 'none' needs exactly {size}x{size}"
        " (use crop 'center' or 'resize' to bring images to size)",
      )
    return image
  if crop == "celeba":
    if w < CELEBA_WINDOW or h < CELEBA_WINDOW:
      raise CropError("too small", f"is {w}x{h} pixels, smaller than the 128x128 CelebA window")
    return _resize(image.crop(celeba_box(w, h)), size)
  if crop == "center":
    if min(w, h) < size:
      raise CropError(
        "too small", f"is {w}x{h} pixels, its short side is below the target size {size} (images are never upsampled)"
      )
    return _resize(image.crop(center_box(w, h)) if w != h else image, size)
  if crop == "resize":
    if w != h:
      raise CropError("not square", f"is {w}x{h} pixels: crop 'resize' takes square images (use crop 'center')")
    if w < size:
      raise CropError("too small", f"is {w}x{h} pixels, below the target size {size} (images are never upsampled)")
    return _resize(image, size)
  raise ValueError(check_crop(crop))
