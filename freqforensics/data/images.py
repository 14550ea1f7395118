"""Class-folder sources and image decoding: the layout users bring, read without surprises.

A source directory holds one folder per class (`A_real/`, `B_progan/`, ...); the label of a class is
the index of its folder name in sorted order (SPEC.md section 2). Images of any common format are
decoded with Pillow, converted to RGB or grayscale, centre-cropped to a square and resized with an
anti-aliased filter (or by another rule of `crops`); nothing is ever re-encoded lossily.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from freqforensics.data import crops
from freqforensics.errors import UserError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


DEFAULT_MAX_PIXELS = 50_000_000  # larger images are refused unread (decompression bombs)


class ImageDecodeError(Exception):
  """An image file that cannot become a model input; `reason` is a short category for reports."""

  def __init__(self, message: str, *, reason: str = "unreadable"):
    super().__init__(message)
    self.reason = reason


@dataclasses.dataclass(frozen=True)
class ClassFolders:
  """The files of a class-folder source: sorted class names and, per class, sorted image paths."""

  root: Path
  class_names: tuple[str, ...]
  files: dict[str, tuple[Path, ...]]
  ignored: tuple[Path, ...]  # files without an image extension, reported, never silently dropped


def files_under(folder: Path) -> list[Path]:
  """The files below `folder`, recursive and sorted; hidden files and folders (`.name`) are skipped.

  As `sorted(folder.rglob("*"))` filtered by `is_file()` and hidden parts, in one `os.scandir` walk:
  symlinked folders are not entered, symlinks to files count as files. Listing large data sets is
  a start-up cost of every run (the prepared cache checks its sources), so it avoids per-path
  `pathlib` work.
  """
  out: list[str] = []
  stack = [os.fspath(folder)]
  while stack:
    with os.scandir(stack.pop()) as entries:
      for entry in entries:
        if entry.name.startswith("."):
          continue
        if entry.is_dir(follow_symlinks=False):
          stack.append(entry.path)
        elif entry.is_file():
          out.append(entry.path)
  return sorted(map(Path, out))


def relative_name(path: Path, root: Path) -> str:
  """`str(path.relative_to(root))`, without pathlib's cost for the paths `files_under(root/...)` lists."""
  prefix = os.path.join(os.fspath(root), "")
  s = os.fspath(path)
  if prefix != "." + os.sep and s.startswith(prefix):
    return s[len(prefix):]
  return str(path.relative_to(root))


def list_class_folders(source_dir: str | os.PathLike, *, min_classes: int = 2,
                       classes: Sequence[str] = ()) -> ClassFolders:
  """Lists the classes (sorted folder names) and their image files (sorted, recursive).

  `classes` keeps only these class folders (e.g. a binary real-vs-one-generator data set from a
  multi-class directory); empty keeps all.

  Raises `UserError` for a missing or empty directory, fewer than `min_classes` classes (training
  needs two; evaluating a model on one class folder is fine), or a class folder without images.
  """
  root = Path(source_dir).expanduser()
  if not str(source_dir):
    raise UserError("no source directory given: set --config.data.source_dir=DIR (one folder per class)")
  if not root.is_dir():
    raise UserError(
        f"source directory {root} does not exist: set --config.data.source_dir to a folder holding one"
        " folder of images per class")
  class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
  if classes:
    missing = sorted(set(classes) - {p.name for p in class_dirs})
    if missing:
      raise UserError(f"data.classes names folders that {root} does not have ({', '.join(missing)}); it has"
                      f" {', '.join(p.name for p in class_dirs)}")
    class_dirs = [p for p in class_dirs if p.name in set(classes)]
  if not class_dirs:
    raise UserError(
        f"source directory {root} holds no class folders: put the images of each class in its own"
        " folder (e.g. A_real/, B_gan/)")
  if len(class_dirs) < min_classes:
    raise UserError(
        f"source directory {root} holds only one class folder ({class_dirs[0].name}): a detector needs"
        " at least two classes (real and one generator)")
  files: dict[str, tuple[Path, ...]] = {}
  ignored: list[Path] = []
  for class_dir in class_dirs:
    images = []
    for path in files_under(class_dir):
      if path.suffix.lower() in IMAGE_EXTENSIONS:
        images.append(path)
      else:
        ignored.append(path)
    if not images:
      raise UserError(
          f"class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}): add images or"
          " remove the folder")
    files[class_dir.name] = tuple(images)
  return ClassFolders(root, tuple(d.name for d in class_dirs), files, tuple(ignored))


def to_uint8(image: Image.Image, channels: int) -> Image.Image:
  """The one documented conversion of every image kind to RGB (`channels=3`) or luminance (`1`).

  EXIF orientation is applied first (a phone photo stored sideways is turned upright). 16- and
  32-bit integer images are scaled to 8 bits by `round(v / 257)`; palette images are expanded;
  an alpha channel is dropped (the stored colour values are kept, no compositing); CMYK and YCbCr
  use Pillow's conversions; luminance is ITU-R 601-2 (`L = 0.299 R + 0.587 G + 0.114 B`).
  """
  if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
    image = ImageOps.exif_transpose(image)
  if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
    image = Image.fromarray(np.clip(np.asarray(image, np.float64) / 257.0, 0, 255).round().astype(np.uint8))
  mode = "RGB" if channels == 3 else "L"
  return image if image.mode == mode else image.convert(mode)  # (convert would copy an image already in mode)


def _reason(e: BaseException) -> str:
  text = str(e).lower()
  if isinstance(e, UnidentifiedImageError):
    return "not an image"
  if "truncated" in text or "broken data stream" in text or "incomplete" in text:
    return "truncated"
  return "unreadable"


def decode_pil(data: bytes, size: int, channels: int, *, crop: str = "center",
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
  """Decodes encoded image bytes to an RGB (or `L`) image of `size` x `size` by crop rule `crop`.

  Raises `ImageDecodeError` (with a `reason`: empty file, not an image, truncated, unreadable,
  pixel limit, too small, wrong size, not square) for anything that cannot become a model input.
  Images above `max_pixels` are refused from their header, before any decoding (decompression
  bombs).
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  crops.check_crop(crop)
  if not data:
    raise ImageDecodeError("zero-byte file", reason="empty file")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(io.BytesIO(data)) as image:
        w, h = image.size
        if w * h > max_pixels:
          raise ImageDecodeError(f"{w}x{h} pixels, above the limit of {max_pixels:,} (raise data.max_pixels"
                                 " if the image is genuine)", reason="pixel limit")
        image.load()
        image = to_uint8(image, channels)
  except Image.DecompressionBombError as e:
    raise ImageDecodeError(f"{e}", reason="pixel limit") from e
  except UnidentifiedImageError as e:
    raise ImageDecodeError("not an image file Pillow can read (unknown or damaged format)", reason="not an image") from e
  except (OSError, ValueError, SyntaxError, EOFError) as e:
    raise ImageDecodeError(f"{type(e).__name__}: {e}", reason=_reason(e)) from e
  try:
    image = crops.apply_crop(image, crop, size)
  except crops.CropError as e:
    raise ImageDecodeError(str(e), reason=e.reason) from e
  return image


def decode_image(data: bytes, size: int, channels: int, *, crop: str = "center",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """`decode_pil` as a uint8 array `(size, size, channels)`."""
  image = decode_pil(data, size, channels, crop=crop, max_pixels=max_pixels)
  return np.asarray(image, np.uint8).reshape(size, size, channels)


def read_bytes(path: str | os.PathLike) -> bytes:
  """The bytes of `path`; raises `ImageDecodeError` (reason `unreadable`) when it cannot be read."""
  try:
    return Path(path).read_bytes()
  except OSError as e:
    raise ImageDecodeError(f"{type(e).__name__}: {e.strerror or e}", reason="unreadable") from e


def load_image(path: str | os.PathLike, size: int, channels: int, *, crop: str = "center",
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """Decodes the file `path` to uint8 `(size, size, channels)`; see `decode_image`."""
  return decode_image(read_bytes(path), size, channels, crop=crop, max_pixels=max_pixels)
