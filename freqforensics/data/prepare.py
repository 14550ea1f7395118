"""Class folders -> a tensorflow-datasets dataset in `array_record` format (no TensorFlow).

Each class is split on its own into train/val/test by sorted file name, so membership is
reproducible and every class is represented in every split. Images are decoded once (in threads:
Pillow releases the GIL), centre-cropped and resized to the configured size, and stored as uint8
tensors: no lossy re-encode, no decoding at training time. tfds writes shards through its on-disk
shuffler, so memory does not grow with the number of images.

A prepared dataset lives in a directory named after the source and a fingerprint of the source's
file list and the preparation arguments: a re-run with the same inputs reuses it, changed inputs
give a new one, and nothing a user wrote is overwritten.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from freqforensics.data import images
from freqforensics.errors import UserError

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
_FORMAT_VERSION = 1
_DECODE_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
  """What preparation depends on, besides the files themselves."""

  image_size: int
  channels: int
  split: tuple[float, ...]  # per class (train, val, test): fractions <= 1 or counts
  num_threads: int = 0  # 0: one per core


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
  """A prepared dataset on disk, opened for random access."""

  path: Path
  label_names: tuple[str, ...]
  image_shape: tuple[int, int, int]
  num_examples: dict[str, int]
  metadata: dict

  def source(self, split: str):
    """A random-access data source (`len`, `[i]` -> dict of numpy arrays) for `split`.

    A split with no examples (e.g. `data.split` gives it 0) is an empty tuple.
    """
    if not self.num_examples.get(split):
      return ()
    return tfds.builder_from_directory(str(self.path)).as_data_source(split)


def split_counts(n: int, split: Sequence[float], class_name: str) -> tuple[int, int, int]:
  """Per-class (train, val, test) sizes from fractions (all <= 1) or counts (integers).

  Fractions that sum to 1 give the rounding remainder to test, so every file is used. Raises
  `UserError` when a class has fewer images than requested.
  """
  if len(split) != 3 or any(s < 0 for s in split):
    raise UserError(f"data.split must be three non-negative numbers (train, val, test), got {tuple(split)}")
  if all(s <= 1 for s in split):  # fractions
    if sum(split) > 1 + 1e-9:
      raise UserError(f"data.split fractions {tuple(split)} sum to more than 1: lower them")
    n_train, n_val = int(n * split[0]), int(n * split[1])
    n_test = n - n_train - n_val if abs(sum(split) - 1) < 1e-9 else int(n * split[2])
    counts = (n_train, n_val, n_test)
    if any(c == 0 and s > 0 for c, s in zip(counts, split)):
      raise UserError(
          f"class {class_name} has {n} images: too few for split fractions {tuple(split)} (a split"
          " would be empty); add images or use larger fractions")
    return counts
  if any(float(s) != int(s) for s in split):
    raise UserError(f"data.split counts must be whole numbers (or all fractions <= 1), got {tuple(split)}")
  counts = (int(split[0]), int(split[1]), int(split[2]))
  if sum(counts) > n:
    raise UserError(
        f"class {class_name} has {n} images, fewer than the requested split"
        f" {counts[0]}+{counts[1]}+{counts[2]}={sum(counts)}: lower data.split or add images")
  return counts


def assign_splits(folders: images.ClassFolders, split: Sequence[float]) -> dict[str, list[tuple[Path, int]]]:
  """Assigns each class's sorted files to train, then val, then test; returns (path, label) lists."""
  out: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
  for label, name in enumerate(folders.class_names):
    files = folders.files[name]
    n_train, n_val, n_test = split_counts(len(files), split, name)
    bounds = np.cumsum([0, n_train, n_val, n_test])
    for s, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:]):
      out[s].extend((path, label) for path in files[lo:hi])
  return out


def fingerprint(folders: images.ClassFolders, options: PrepareOptions) -> str:
  """A hash of every file's relative path, size and mtime, and of the options that shape the data."""
  h = hashlib.sha256()
  h.update(json.dumps({"v": _FORMAT_VERSION, "size": options.image_size, "channels": options.channels,
                       "split": list(map(float, options.split))}).encode())
  for name in folders.class_names:
    for path in folders.files[name]:
      st = path.stat()
      h.update(f"{path.relative_to(folders.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return h.hexdigest()


class FreqforensicsFolder(tfds.core.GeneratorBasedBuilder):
  """tfds builder over a class-folder source; constructed by `prepare`, not by name."""

  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, folders: images.ClassFolders, options: PrepareOptions, assignment, fp: str,
               progress: bool, **kwargs):
    self._folders = folders
    self._options = options
    self._assignment = assignment
    self._fp = fp
    self._progress = progress
    self.skipped: list[tuple[str, str]] = []
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    o = self._options
    return tfds.core.DatasetInfo(
        builder=self,
        description="Class-folder images prepared by freqforensics.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(o.image_size, o.image_size, o.channels), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(self._folders.class_names)),
            "path": tfds.features.Text(),
        }),
        metadata=tfds.core.MetadataDict(
            source_dir=str(self._folders.root.resolve()), label_names=list(self._folders.class_names),
            image_size=o.image_size, channels=o.channels, crop="center", split=list(map(float, o.split)),
            fingerprint=self._fp, format_version=_FORMAT_VERSION),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {s: self._generate_examples(s) for s in SPLITS if self._assignment[s]}

  def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

    items = self._assignment[split]
    o = self._options
    workers = o.num_threads or os.cpu_count() or 1
    bar = tqdm(total=len(items), desc=f"prepare {split}", unit="img", disable=not self._progress)
    root = self._folders.root

    def decode(item):
      path, label = item
      try:
        return path, label, images.load_image(path, o.image_size, o.channels), None
      except images.ImageDecodeError as e:
        return path, label, None, str(e)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      it = iter(items)
      while chunk := list(itertools.islice(it, _DECODE_CHUNK * workers)):
        for path, label, array, error in pool.map(decode, chunk):
          bar.update()
          rel = str(path.relative_to(root))
          if error is not None:
            self.skipped.append((rel, error))
            continue
          yield rel, {"image": array, "label": label, "path": rel}
    bar.close()
    self.info.metadata["skipped"] = len(self.skipped)


def _open(path: Path) -> PreparedDataset:
  builder = tfds.builder_from_directory(str(path))
  info = builder.info
  shape = tuple(info.features["image"].shape)
  return PreparedDataset(
      path=path, label_names=tuple(info.features["label"].names), image_shape=shape,  # type: ignore[arg-type]
      num_examples={s: info.splits[s].num_examples for s in info.splits.keys()},
      metadata=dict(info.metadata or {}))


def open_prepared(path: str | os.PathLike) -> PreparedDataset:
  """Opens a dataset written by `prepare` (the directory holding `dataset_info.json`)."""
  path = Path(path)
  if not (path / "dataset_info.json").is_file():
    raise UserError(f"{path} is not a prepared dataset (no dataset_info.json): run the prepare step first")
  return _open(path)


def prepare(source_dir: str | os.PathLike, data_dir: str | os.PathLike, options: PrepareOptions, *,
            progress: bool = True) -> PreparedDataset:
  """Prepares `source_dir` (one folder per class) under `data_dir`, or reuses an identical one.

  Unreadable images are skipped, counted and listed in `skipped_files.txt` beside the dataset.
  """
  folders = images.list_class_folders(source_dir)
  assignment = assign_splits(folders, options.split)
  fp = fingerprint(folders, options)
  root = Path(data_dir).expanduser() / f"{folders.root.resolve().name}-{fp[:12]}"
  builder = FreqforensicsFolder(folders=folders, options=options, assignment=assignment, fp=fp,
                                progress=progress, data_dir=str(root), file_format="array_record")
  path = Path(builder.data_dir)
  if (path / "dataset_info.json").is_file():
    log.info("reusing prepared dataset %s", path)
    return _open(path)
  tfds.disable_progress_bar()
  try:
    builder.download_and_prepare()
  except AssertionError as e:  # tfds refuses to write a split that ended up empty
    if "No examples were yielded" not in str(e):
      raise
    raise UserError(f"{e}: every image assigned to it was unreadable (see the errors logged above); fix or"
                    f" remove the bad files in {folders.root}") from e
  report = root / "skipped_files.txt"
  lines = [f"{p}\t{why}" for p, why in builder.skipped]
  lines += [f"{p.relative_to(folders.root)}\tnot an image file ({', '.join(images.IMAGE_EXTENSIONS)})"
            for p in folders.ignored]
  report.write_text("".join(line + "\n" for line in lines))
  if lines:
    log.warning("skipped %d file(s) of %s; listed in %s", len(lines), folders.root, report)
  return _open(path)
