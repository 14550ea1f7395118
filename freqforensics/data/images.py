"""Class-folder sources and image decoding: the layout users bring, read without surprises.

A source directory holds one folder per class (`A_real/`, `B_progan/`, ...); the label of a class is
the index of its folder name in sorted order (SPEC.md section 2). Images of any common format are
decoded with Pillow, converted to RGB or grayscale, centre-cropped to a square and resized with an
anti-aliased filter (or by another rule of `crops`); nothing is re-encoded lossily unless format
matching asks for it (`format_matching`: the same JPEG step for every class).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import stat
import struct
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypedDict, Unpack

import numpy as np
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from freqforensics import text
from freqforensics.data import crops
from freqforensics.errors import UserError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


DEFAULT_MAX_PIXELS = 50_000_000  # larger images are refused unread (decompression bombs)


class ImageDecodeError(Exception):
  """An image file that cannot become a model input; `reason` is a short category for reports."""

  def __init__(self, message: str, *, reason: str = "unreadable"):
    super().__init__(message)
    self.reason = reason


LISTING_RULE = """Which files a command reads below a folder (prepare, main, classify, spectra, perturb alike):
every file in the folder and its sub-folders, in sorted order, whose extension is an image
extension; symbolic links to files count as the files they point to. Skipped, counted per reason
and listed: hidden files and folders (names starting with '.', such as macOS's `._photo.jpg`
resource forks and `.DS_Store`), files without an image extension, links that lead nowhere
(broken, or a loop), links to folders (not followed, so a listing never loops) and folders that
cannot be read. In a class-folder directory, files beside the class folders belong to no class and
are not read. An image file named explicitly on a command line is always tried."""


# Why the listing rule leaves a path out: the reason (a short category, counted in summaries) -> what it means.
SKIP_REASONS: dict[str, str] = {
  "hidden": "a hidden file or folder (its name starts with '.')",
  "not an image": f"not an image file: its extension is not one of {', '.join(IMAGE_EXTENSIONS)}",
  "broken link": "a symbolic link to nothing",
  "link loop": "a symbolic link loop",
  "link to a folder": "a symbolic link to a folder (not followed)",
  "not a regular file": "not a regular file (a device, socket or pipe)",
  "unreadable folder": "a folder that cannot be read (permissions)",
  "unreadable": "cannot be read (permissions)",
}


@dataclasses.dataclass(frozen=True)
class Listing:
  """The files below a folder by the one listing rule (`LISTING_RULE`): images, and the rest with why."""

  files: tuple[Path, ...]  # image files, sorted
  skipped: tuple[tuple[Path, str], ...]  # (path, reason) of everything else, sorted by path


@dataclasses.dataclass(frozen=True)
class ClassFolders:
  """The files of a class-folder source: sorted class names and, per class, sorted image paths."""

  root: Path
  class_names: tuple[str, ...]
  files: dict[str, tuple[Path, ...]]
  skipped: tuple[tuple[Path, str], ...]  # (path, reason) of what was not used, reported, never silently dropped


def _walk(folder: Path) -> tuple[list[str], list[tuple[str, str]]]:
  """(regular files, skipped (path, reason)) below `folder`, in one `os.scandir` walk."""
  files: list[str] = []
  skipped: list[tuple[str, str]] = []
  stack = [os.fspath(folder)]
  while stack:
    top = stack.pop()
    try:
      entries = list(os.scandir(top))
    except OSError:
      skipped.append((top, "unreadable folder"))
      continue
    for entry in entries:
      if entry.name.startswith("."):
        skipped.append((entry.path, "hidden"))
        continue
      try:
        if entry.is_dir(follow_symlinks=False):
          stack.append(entry.path)
        elif entry.is_symlink():
          target = os.stat(entry.path)  # raises for a broken link or a loop
          if os.path.isdir(entry.path) and not os.path.isfile(entry.path):
            skipped.append((entry.path, "link to a folder"))
          elif stat.S_ISREG(target.st_mode):
            files.append(entry.path)
          else:
            skipped.append((entry.path, "not a regular file"))
        elif entry.is_file(follow_symlinks=False):
          files.append(entry.path)
        else:
          skipped.append((entry.path, "not a regular file"))
      except OSError as e:
        reason = "link loop" if e.errno == errno.ELOOP else ("broken link" if e.errno == errno.ENOENT else "unreadable")
        skipped.append((entry.path, reason))
  return files, skipped


def files_under(folder: Path) -> list[Path]:
  """The regular files below `folder` by the listing rule (any extension), sorted; see `list_files`."""
  return sorted(map(Path, _walk(Path(folder))[0]))


def list_files(folder: str | os.PathLike) -> Listing:
  """The image files below `folder` by `LISTING_RULE`, and everything skipped with its reason.

  One `os.scandir` walk (listing large data sets is a start-up cost of every run, since the
  prepared cache checks its sources), without per-path `pathlib` work.
  """
  files, skipped = _walk(Path(folder))
  images, other = [], []
  for f in files:
    (images if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS else other).append(f)
  skipped += [(f, "not an image") for f in other]
  return Listing(tuple(sorted(map(Path, images))), tuple(sorted((Path(p), r) for p, r in skipped)))


def relative_name(path: Path, root: Path) -> str:
  """`str(path.relative_to(root))`, without pathlib's cost for the paths `files_under(root/...)` lists."""
  prefix = os.path.join(os.fspath(root), "")
  s = os.fspath(path)
  if prefix != "." + os.sep and s.startswith(prefix):
    return s[len(prefix) :]
  return str(path.relative_to(root))


def list_class_folders(
  source_dir: str | os.PathLike,
  *,
  min_classes: int = 2,
  classes: Sequence[str] = (),
  option: str = "--config.data.source_dir",
) -> ClassFolders:
  """Lists the classes (sorted folder names) and their image files (`list_files`, the listing rule).

  `classes` keeps only these class folders (e.g. a binary real-vs-one-generator data set from a
  multi-class directory); empty keeps all. `option` is how the calling command names the folder in
  its messages (`--source_dir` for prepare).

  Raises `UserError` for a missing or empty directory, fewer than `min_classes` classes (training
  needs two; evaluating a model on one class folder is fine), a class folder without images, or one
  whose name holds control characters (`text.control_characters`: a newline, an ANSI escape).
  """
  root = Path(source_dir).expanduser()
  if not str(source_dir):
    raise UserError(f"no source directory given: set {option}=DIR (one folder per class)")
  if not root.is_dir():
    what = "is a file" if root.exists() else "does not exist"
    raise UserError(f"source directory {root} {what}: set {option} to a folder holding one folder of images per class")
  try:
    children = sorted(root.iterdir())
  except OSError as e:
    raise UserError(f"source directory {root} cannot be read ({e.strerror or e}): give a readable folder") from None
  # Files beside the class folders belong to no class (the synthetic data's marker, a README): not data, not listed.
  class_dirs = [p for p in children if p.is_dir() and not p.name.startswith(".")]
  if classes:
    missing = sorted(set(classes) - {p.name for p in class_dirs})
    if missing:
      raise UserError(
        f"data.classes names folders that {root} does not have ({', '.join(missing)}); it has"
        f" {', '.join(p.name for p in class_dirs)}"
      )
    class_dirs = [p for p in class_dirs if p.name in set(classes)]
  if not class_dirs:
    raise UserError(
      f"source directory {root} holds no class folders: put the images of each class in its own"
      " folder (e.g. A_real/, B_gan/)"
    )
  for class_dir in class_dirs:  # a label name is printed, written into reports and matched as a key later
    if bad := text.control_characters(class_dir.name):
      raise UserError(
        f"class folder {text.for_terminal(class_dir)} has control characters in its name ({', '.join(bad)}):"
        " its name is the class's label, shown on terminals and in reports; rename the folder"
      )
  if len(class_dirs) < min_classes:
    raise UserError(
      f"source directory {root} holds only one class folder ({class_dirs[0].name}): a detector needs"
      " at least two classes (real and one generator)"
    )
  files: dict[str, tuple[Path, ...]] = {}
  skipped: list[tuple[Path, str]] = []
  for class_dir in class_dirs:
    listing = list_files(class_dir)
    skipped += listing.skipped
    if not listing.files:
      raise UserError(
        f"class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder"
      )
    files[class_dir.name] = listing.files
  return ClassFolders(root, tuple(d.name for d in class_dirs), files, tuple(skipped))


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


_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@contextlib.contextmanager
def _opened(source: bytes | str | os.PathLike | BinaryIO, max_pixels: int) -> Iterator[Image.Image]:
  """Pillow's image of `source` (encoded bytes, a path or a binary file) with its header read and no pixel
  decoded, once its size is within `max_pixels`.

  What Pillow raises while the body reads the file (the header here, the pixels in `_decoded`) becomes an
  `ImageDecodeError` with a `reason` (empty file, not an image, truncated, unreadable, pixel limit),
  Pillow's own decompression-bomb error included: no caller sees a Pillow exception.
  """
  with contextlib.ExitStack() as stack:
    if isinstance(source, bytes):
      if not source:
        raise ImageDecodeError("zero-byte file", reason="empty file")
      source = io.BytesIO(source)
    elif not hasattr(source, "read"):  # a path: opened here, read only as far as Pillow needs
      try:
        source = stack.enter_context(open(source, "rb"))
        empty = os.fstat(source.fileno()).st_size == 0
      except OSError as e:
        raise ImageDecodeError(f"{type(e).__name__}: {e.strerror or e}", reason="unreadable") from e
      if empty:
        raise ImageDecodeError("zero-byte file", reason="empty file")
    with _pillow_errors(), warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(source) as image:
        w, h = image.size
        if w * h > max_pixels:
          raise ImageDecodeError(
            f"{w}x{h} pixels, above the limit of {max_pixels:,} (raise data.max_pixels if the image is genuine)",
            reason="pixel limit",
          )
        yield image


@contextlib.contextmanager
def _pillow_errors() -> Iterator[None]:
  """Pillow's exceptions for a file as `ImageDecodeError`s with a reason."""
  try:
    yield
  except Image.DecompressionBombError as e:  # above twice Pillow's own limit: refused by Image.open itself
    raise ImageDecodeError(f"{e}", reason="pixel limit") from e
  except UnidentifiedImageError as e:
    raise ImageDecodeError(
      "not an image file Pillow can read (unknown or damaged format)", reason="not an image"
    ) from e
  except (OSError, ValueError, SyntaxError, EOFError, struct.error, KeyError, IndexError) as e:
    raise ImageDecodeError(f"{type(e).__name__}: {e}", reason=_reason(e)) from e


def _decoded(data: bytes, channels: int | None, max_pixels: int) -> Image.Image:
  """Encoded bytes -> an RGB or `L` image by `to_uint8` (`channels` None: `L` for grayscale files, else RGB).

  Raises `ImageDecodeError` with a `reason` (empty file, not an image, truncated, unreadable, pixel
  limit). Images above `max_pixels` are refused from their header, before any decoding
  (decompression bombs).
  """
  with _opened(data, max_pixels) as image:
    image.load()
    if channels is None:
      channels = 1 if image.mode in _GRAY_MODES else 3
    return to_uint8(image, channels)


@dataclasses.dataclass(frozen=True)
class Header:
  """What an image file says about itself before any pixel is decoded (`read_header`)."""

  format: str  # Pillow's name of the format: JPEG, PNG, WEBP, BMP, TIFF, ...
  width: int
  height: int
  mode: str  # Pillow's mode: RGB, L, RGBA, P, I;16, CMYK, ...
  bits: int  # bits per sample where the format's header says (JPEG), else 0
  info: dict[str, Any]  # Pillow's `info`: coding details and metadata (EXIF, ICC profile, text chunks, dpi)
  quantization: dict[int, tuple[int, ...]] | None  # JPEG quantisation tables (natural order), else None
  subsampling: int | None  # JPEG chroma subsampling (`JpegImagePlugin.get_sampling`: 0, 1, 2; -1 other)


def read_header(source: bytes | str | os.PathLike | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
  """The header of an image file (encoded bytes, a path, or a binary file read as far as its header).

  The one way the project looks at a file without decoding it (sizes and formats in the model card,
  the format audit, the median size of a processed copy, figures it may replace). A file that could
  not become a model input from its header alone raises `ImageDecodeError` with the reason a decode
  would give: above `max_pixels` (a decompression bomb included) is `pixel limit`, so every command
  reports such a file as skipped, as preparation does.
  """
  with _opened(source, max_pixels) as image:
    jpeg = image.format == "JPEG"
    return Header(
      format=str(image.format),
      width=int(image.size[0]),
      height=int(image.size[1]),
      mode=str(image.mode),
      bits=int(getattr(image, "bits", 0) or 0),
      info=dict(image.info),
      quantization={k: tuple(v) for k, v in image.quantization.items()} if jpeg else None,
      subsampling=JpegImagePlugin.get_sampling(image) if jpeg else None,
    )


def decode_pil(
  data: bytes,
  size: int,
  channels: int,
  *,
  crop: str = "center",
  max_pixels: int = DEFAULT_MAX_PIXELS,
  jpeg_quality: int = 0,
) -> Image.Image:
  """Decodes encoded image bytes to an RGB (or `L`) image of `size` x `size` by crop rule `crop`.

  Raises `ImageDecodeError` (with a `reason`: empty file, not an image, truncated, unreadable,
  pixel limit, too small, wrong size, not square) for anything that cannot become a model input.

  Args:
    data: the encoded file's bytes (any format Pillow reads).
    size: the side of the square output, in pixels.
    channels: 3 for RGB, 1 for grayscale (`L`).
    crop: the crop rule (`crops.CROPS`: center, celeba, none, resize).
    max_pixels: the largest image (width x height) decoded; a larger one is refused before decoding.
    jpeg_quality: 1..100: the cropped image is then JPEG-encoded and decoded at that quality (format
      matching, `format_matching`: every class through the same lossy step); 0 leaves it as decoded.
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  crops.check_crop(crop)
  image = _decoded(data, channels, max_pixels)
  try:
    image = crops.apply_crop(image, crop, size)
  except crops.CropError as e:
    raise ImageDecodeError(str(e), reason=e.reason) from e
  return jpeg_round_trip(image, jpeg_quality) if jpeg_quality else image


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
  """`image` (RGB or L) after a Pillow JPEG encode and decode at `quality` (1..100), in its own mode."""
  buf = io.BytesIO()
  image.save(buf, format="JPEG", quality=int(quality))
  with Image.open(io.BytesIO(buf.getvalue())) as decoded:
    decoded.load()
    return decoded if decoded.mode == image.mode else decoded.convert(image.mode)


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """The file `path` at its own size, converted as every model input is (`to_uint8`: EXIF orientation,
  16-bit scaling, palette, alpha, CMYK): uint8 `(H, W, 1)` for a grayscale file, `(H, W, 3)` otherwise.

  The reader of commands that keep an image's size (the perturbed copy of a folder); raises
  `ImageDecodeError` as `decode_pil` does.
  """
  image = _decoded(read_bytes(path), None, max_pixels)
  return np.asarray(image, np.uint8).reshape(image.height, image.width, 1 if image.mode == "L" else 3)


class DecodeOptions(TypedDict, total=False):
  """The keyword options of `decode_pil`, which `decode_image` and `load_image` pass on."""

  crop: str
  max_pixels: int
  jpeg_quality: int


def decode_image(data: bytes, size: int, channels: int, **options: Unpack[DecodeOptions]) -> np.ndarray:
  """`decode_pil` (same arguments and defaults) as a uint8 array `(size, size, channels)`."""
  image = decode_pil(data, size, channels, **options)
  return np.asarray(image, np.uint8).reshape(size, size, channels)


def read_bytes(path: str | os.PathLike) -> bytes:
  """The bytes of `path`; raises `ImageDecodeError` (reason `unreadable`) when it cannot be read."""
  try:
    return Path(path).read_bytes()
  except OSError as e:
    raise ImageDecodeError(f"{type(e).__name__}: {e.strerror or e}", reason="unreadable") from e


def load_image(path: str | os.PathLike, size: int, channels: int, **options: Unpack[DecodeOptions]) -> np.ndarray:
  """Decodes the file `path` to uint8 `(size, size, channels)`; the options are `decode_pil`'s."""
  return decode_image(read_bytes(path), size, channels, **options)


def load_native(
  path: str | os.PathLike, channels: int, *, max_pixels: int = DEFAULT_MAX_PIXELS, jpeg_quality: int = 0
) -> np.ndarray:
  """The file `path` at its own size, never resampled, as uint8 `(H, W, channels)` (`to_uint8`); with
  `jpeg_quality` the whole image goes through that JPEG step first, as `decode_pil`. Raises `ImageDecodeError`."""
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  image = _decoded(read_bytes(path), channels, max_pixels)
  image = jpeg_round_trip(image, jpeg_quality) if jpeg_quality else image
  return np.asarray(image, np.uint8).reshape(image.height, image.width, channels)
