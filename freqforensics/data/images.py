"""Class-folder sources and image decoding: the layout users bring, read without surprises.

A source directory holds one folder per class (`A_real/`, `B_progan/`, ...); the label of a class is
the index of its folder name in sorted order (SPEC.md section 2). Images of any common format are
decoded with Pillow, converted to RGB or grayscale, centre-cropped to a square and resized with an
anti-aliased filter; nothing is ever re-encoded lossily.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image

from freqforensics.errors import UserError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class ImageDecodeError(Exception):
  """An image file that cannot be decoded (unreadable, truncated, not an image)."""


@dataclasses.dataclass(frozen=True)
class ClassFolders:
  """The files of a class-folder source: sorted class names and, per class, sorted image paths."""

  root: Path
  class_names: tuple[str, ...]
  files: dict[str, tuple[Path, ...]]
  ignored: tuple[Path, ...]  # files without an image extension, reported, never silently dropped


def _is_hidden(path: Path, root: Path) -> bool:
  return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_class_folders(source_dir: str | os.PathLike, *, min_classes: int = 2) -> ClassFolders:
  """Lists the classes (sorted folder names) and their image files (sorted, recursive).

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
    for path in sorted(class_dir.rglob("*")):
      if not path.is_file() or _is_hidden(path, root):
        continue
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


def center_crop_resize(image: Image.Image, size: int) -> Image.Image:
  """Square centre crop of the short side, then an anti-aliased resize to `size` x `size`.

  Unlike the release's LSUN crop, the crop is square for any aspect ratio, so images are never
  distorted. An image already at the target size is returned unchanged.
  """
  w, h = image.size
  if (w, h) == (size, size):
    return image
  side = min(w, h)
  left, top = (w - side) // 2, (h - side) // 2
  image = image.crop((left, top, left + side, top + side))
  if side != size:
    image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=None)
  return image


def load_image(path: str | os.PathLike, size: int, channels: int) -> np.ndarray:
  """Decodes `path` to uint8 `(size, size, channels)`; raises `ImageDecodeError` on bad files.

  Grayscale, palette, RGBA and 16-bit images are converted to RGB (`channels=3`) or luminance
  (`channels=1`).
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  try:
    with Image.open(path) as image:
      image.load()
      if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = Image.fromarray((np.asarray(image, np.float64) / 257.0).round().astype(np.uint8))
      image = image.convert("RGB" if channels == 3 else "L")
  except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
    raise ImageDecodeError(f"{type(e).__name__}: {e}") from e
  array = np.asarray(center_crop_resize(image, size), np.uint8)
  return array.reshape(size, size, channels)
