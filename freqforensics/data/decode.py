"""The files a command classifies, decoded on the host with a model's preprocessing.

`collect_files` lists the paths given (the one listing rule, `images.LISTING_RULE`), a `Decoder`
turns one file into the model's uint8 image (or, reading natively, its `patches.Patches`) or an
`Unreadable` (the typed failure), and
`decoded_batches` decodes batches in a thread pool, one batch ahead of the model.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from freqforensics.data import format_matching, images, patches
from freqforensics.errors import UserError


@dataclasses.dataclass(frozen=True)
class Unreadable:
  """A file that could not be used, and why; `str()` is the message classify reports and writes."""

  path: str | os.PathLike  # as given to the decoder
  reason: str  # the `ImageDecodeError`'s message

  def __str__(self) -> str:
    return f"cannot use {self.path}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class Decoder:
  """`path -> uint8 image (size, size, channels)` by crop rule `crop` (`crops`), or `Unreadable`; with
  `read='native'`, `path -> patches.Patches` of the image at its own size (no crop, never resampled).

  Attributes:
    size: the side of the model's square input.
    channels: 3 (RGB) or 1 (grayscale).
    crop: how an image is brought to `size` (`crops.CROPS`).
    match_format: the format matching to apply (`format_matching`; '' for none): its JPEG step.
    names: each file -> the name its JPEG quality is drawn from (else the file's name).
    read: `resize` (by `crop`) or `native` (`patches.READS`).
    stride, max_patches: the patch grid's, reading natively (`patches.grid`; 0: the side, no bound).
  """

  size: int
  channels: int
  crop: str = "center"
  match_format: str = ""
  names: Mapping[Path, str] | None = None
  read: str = "resize"
  stride: int = 0
  max_patches: int = 0

  def __call__(self, path: str | os.PathLike) -> np.ndarray | patches.Patches | Unreadable:
    quality = format_matching.quality(self.match_format, (self.names or {}).get(Path(path), Path(path).name))
    try:
      if self.read == "native":
        image = images.load_native(path, self.channels, jpeg_quality=quality)
        return patches.read(image, self.size, self.stride, self.max_patches)
      return images.load_image(path, self.size, self.channels, crop=self.crop, jpeg_quality=quality)
    except (images.ImageDecodeError, patches.TooSmall) as e:
      return Unreadable(path, str(e))


def collect_files(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
  """Image files under `paths` and what was left out, with why: files as given, folders by the one
  listing rule of every command (`images.LISTING_RULE`: recursive, sorted, hidden files skipped).

  A file named explicitly is always tried, whatever its extension: the user asked for it.
  """
  files: list[Path] = []
  skipped: list[tuple[Path, str]] = []
  for raw in paths:
    path = Path(raw).expanduser()
    if path.is_dir():
      listing = images.list_files(path)
      files += listing.files
      skipped += listing.skipped
    elif path.is_file():
      files.append(path)
    elif path.is_symlink():
      raise UserError(f"{raw} is a broken link: give image files or folders of images")
    else:
      raise UserError(f"{raw} does not exist: give image files or folders of images")
  return files, skipped


def relative_names(paths: Sequence[str | os.PathLike], files: Sequence[Path]) -> dict[Path, str]:
  """Each of `files` (as `collect_files` found them under `paths`) -> its path relative to the first folder
  of `paths` that holds it, or its name for a file given directly: what format matching draws from."""
  folders = [Path(p).expanduser() for p in paths if Path(p).expanduser().is_dir()]
  names = {}
  for f in files:
    holder = next((d for d in folders if os.fspath(f).startswith(os.path.join(os.fspath(d), ""))), None)
    names[f] = images.relative_name(f, holder) if holder is not None else f.name
  return names


def decoded_batches(
  files: Sequence[Path],
  decode: Callable[[Path], np.ndarray | patches.Patches | Unreadable],
  batch_size: int,
  workers: int | None = None,
) -> Iterator[tuple[list[Path], list[np.ndarray | patches.Patches | Unreadable]]]:
  """Yields `(paths, decoded images or Unreadable)` per batch, decoded in a thread pool.

  At most two batches are submitted ahead of the one the caller holds, so memory is bounded by a
  few batches, not by the number of files; decoding (Pillow releases the GIL) overlaps the model.
  (Worker processes were measured too: on 2 cores they were no faster, since decoding and the
  model then compete for the same cores, and they cost a start-up.)
  """
  workers = workers or min(8, os.cpu_count() or 1)
  chunks = (list(files[i : i + batch_size]) for i in range(0, len(files), batch_size))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    pending: collections.deque = collections.deque()
    for chunk in chunks:
      pending.append((chunk, [pool.submit(decode, p) for p in chunk]))
      if len(pending) > 1:
        done, futures = pending.popleft()
        yield done, [f.result() for f in futures]
    while pending:
      done, futures = pending.popleft()
      yield done, [f.result() for f in futures]
