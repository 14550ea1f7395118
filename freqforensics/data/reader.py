"""Reading a prepared dataset: its description, and random access to its splits, whole batches at once.

`open_prepared(path)` opens a folder written by `preparation`; `PreparedDataset.source(split)` gives
random access to a split. A batch is decoded by parsing each record's `tf.train.Example` and copying
its raw bytes into one uint8 array, not by tfds' per-record feature machinery (as slow as the read
itself); a self-check at open compares the two on the first record and falls back to tfds' if they
differ. Before tfds reads a folder, `check_description` requires exactly the feature spec preparation
writes, so nothing a folder names is imported.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_data_source
from google.protobuf import json_format
from tensorflow_datasets.core import example_parser
from tensorflow_datasets.core.proto import dataset_info_pb2, feature_pb2

from freqforensics.data import shards
from freqforensics.errors import UserError

SPLITS: tuple[str, ...] = ("train", "val", "test")
REPORT = "skipped_files.csv"  # the files preparation skipped, one CSV row each (`read_report`)


class SplitSource(Protocol):
  """What every split source is: random access to one split's examples, one at a time or a batch at once.

  The sources: `RecordSource` (the split on disk), `InMemorySource` (decoded once), `SubsetSource` (some
  of another's examples), `augment.PerturbedSource` (another's images, perturbed) and the evaluation
  runner's relabelled split. The loops (`pipeline`, `loading.TrainingData`) take any of them; the pipeline
  also reads a plain sequence of examples without `read_batch` (the empty split `()`, test doubles).
  """

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    """Example `index`: `image` (H, W, C) uint8, `label`, and `path` where the source keeps paths."""
    ...

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The examples at `indices` as one batch: `image` (N, H, W, C) uint8 and `label` (N,)."""
    ...


class RecordSource:
  """`len`, `[i]` -> dict of numpy arrays (image, label, path), and `read_batch(indices)`."""

  def __init__(self, dataset_dir: str | Path, split: str):
    builder = _builder(Path(dataset_dir))
    self._features = builder.info.features
    self._files = [str(f) for f in builder.info.splits[split].filepaths]
    self._open()

  def _open(self) -> None:
    self._raw = array_record_data_source.ArrayRecordDataSource(self._files)
    self._shape = tuple(self._features["image"].shape)
    self._fast = len(self._raw) > 0 and self._agrees(self._raw[0])

  def _agrees(self, record: bytes) -> bool:
    try:
      ours, ref = self._parse(record), self._features.deserialize_example_np(record)
    except (KeyError, IndexError, ValueError):
      return False
    return (
      np.array_equal(ours["image"], ref["image"])
      and int(ours["label"]) == int(ref["label"])
      and ours["path"] == ref["path"]
    )

  def _parse(self, record: bytes) -> dict[str, np.ndarray]:
    f = example_parser.tf_example_pb2.Example.FromString(record).features.feature
    image = np.frombuffer(f["image"].bytes_list.value[0], np.uint8).reshape(self._shape)
    return {"image": image, "label": np.int64(f["label"].int64_list.value[0]), "path": f["path"].bytes_list.value[0]}

  def __len__(self) -> int:
    return len(self._raw)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    record = self._raw[int(index)]
    return self._parse(record) if self._fast else self._features.deserialize_example_np(record)

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """Images `(n, H, W, C)` uint8 and labels `(n,)` int32 of the examples at `indices`."""
    images = np.empty((len(indices),) + self._shape, np.uint8)
    labels = np.empty((len(indices),), np.int32)
    for j, i in enumerate(indices):
      ex = self[i]
      images[j], labels[j] = ex["image"], ex["label"]
    return {"image": images, "label": labels}

  def __getstate__(self):  # picklable (grain worker processes): reopen the files there
    return {"files": self._files, "features": self._features.to_json()}

  def __setstate__(self, state):
    self._files = state["files"]
    self._features = tfds.features.FeatureConnector.from_json(state["features"])
    self._open()


class InMemorySource:
  """A split decoded once into one uint8 array: a batch is then a single gather.

  For splits that fit the memory budget (`data.cache_gb`): on a 2-core machine every copy the input
  pipeline makes is taken from the training step, and reading + parsing a record costs as much as
  the linear model's step on it.
  """

  def __init__(self, source: RecordSource, *, chunk: int = 1024):
    n = len(source)
    first = source[0]
    self.images = np.empty((n,) + first["image"].shape, np.uint8)
    self.labels = np.empty((n,), np.int32)
    self.paths = []
    for lo in range(0, n, chunk):
      for i in range(lo, min(n, lo + chunk)):
        ex = source[i]
        self.images[i], self.labels[i] = ex["image"], ex["label"]
        self.paths.append(ex["path"])

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    i = int(index)
    return {"image": self.images[i], "label": np.int64(self.labels[i]), "path": self.paths[i]}

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64)
    return {"image": self.images[indices], "label": self.labels[indices]}


class SubsetSource:
  """The examples of `source` at `indices`, in that order, as a source of their own."""

  def __init__(self, source: SplitSource, indices: Sequence[int]):
    self._source = source
    self.indices = np.asarray(indices, np.int64)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self._source[int(self.indices[int(index)])]

  def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    return self._source.read_batch(self.indices[np.asarray(indices, np.int64)])


def nbytes(source: SplitSource) -> int:
  """Bytes the decoded images of a split take in memory."""
  if not len(source):
    return 0
  return len(source) * source[0]["image"].nbytes


def maybe_in_memory(source: SplitSource, budget_gb: float) -> SplitSource:
  """`source` decoded into memory when its images fit in `budget_gb` (0 disables), else unchanged."""
  if isinstance(source, (RecordSource, SubsetSource)) and len(source) and nbytes(source) <= budget_gb * (1 << 30):
    return InMemorySource(source)
  return source


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
  """A prepared dataset on disk, opened for random access."""

  path: Path
  label_names: tuple[str, ...]
  image_shape: tuple[int, int, int]
  num_examples: dict[str, int]
  metadata: dict

  def source(self, split: str) -> SplitSource | tuple[()]:
    """A random-access data source (`len`, `[i]` -> dict of numpy arrays, `read_batch`) for `split`.

    A split with no examples (e.g. `data.split` gives it 0) is an empty tuple.
    """
    if not self.num_examples.get(split):
      return ()
    return RecordSource(self.path, split)

  def class_range(self, split: str, label: int) -> range:
    """Record indices of class `label` in `split`: a split holds its classes one after the other, in
    label order, with the per-class counts in the metadata."""
    counts = self.metadata.get("counts")
    if self.metadata.get("format_version", 0) < 3 or not counts:
      raise UserError(f"{self.path} was prepared by an older freqforensics without per-class counts: prepare it again")
    sizes = [int(counts[name][split]) for name in self.label_names]
    start = sum(sizes[:label])
    return range(start, start + sizes[label])


def _refused(path: Path, what: str) -> UserError:
  return UserError(
    f"{path} is not a dataset prepared by freqforensics ({what}): give a folder the prepare step wrote, as"
    " it wrote it (or prepare the class folders again)"
  )


def _read(path: Path) -> dict:
  try:
    value = json.loads(path.read_text())
  except FileNotFoundError:
    raise _refused(path.parent, f"no {path.name}") from None
  except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
    raise _refused(path.parent, f"{path.name} cannot be read: {e}") from None
  if not isinstance(value, dict):
    raise _refused(path.parent, f"{path.name} is not a JSON object")
  return value


def check_description(path: str | os.PathLike) -> None:
  """Checks what tfds reads to rebuild a dataset's features, before tfds reads it; raises `UserError`.

  `features.json` must be exactly the spec preparation writes (`shards.features`) for the image size,
  channels and label names in the dataset's `metadata.json`, and `dataset_info.json` must describe no
  features of its own: tfds imports the module of a feature class it does not know, so anything else
  could run code.
  """
  path = Path(path)
  try:
    info = json_format.ParseDict(_read(path / "dataset_info.json"), dataset_info_pb2.DatasetInfo())
  except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
    raise _refused(path, f"dataset_info.json is not a tfds description: {e}") from None
  if info.HasField("features"):  # preparation writes the features to features.json only
    raise _refused(path, "dataset_info.json describes features")
  meta = _read(path / "metadata.json")
  size, channels, labels = meta.get("image_size"), meta.get("channels"), meta.get("label_names")
  if not (
    isinstance(size, int)
    and not isinstance(size, bool)
    and size > 0
    and channels in (1, 3)
    and isinstance(labels, list)
    and all(isinstance(n, str) for n in labels)
  ):
    raise _refused(path, "metadata.json lacks its image_size, channels or label_names")
  try:
    expected = shards.features(size, channels, tuple(labels)).to_proto()
  except (ValueError, TypeError) as e:  # e.g. label names that repeat
    raise _refused(path, f"metadata.json's label names cannot be a class label: {e}") from None
  try:  # the parse tfds itself makes of the file, without turning class names into classes
    found = json_format.ParseDict(_read(path / "features.json"), feature_pb2.Feature())
  except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
    raise _refused(path, f"features.json is not a tfds feature spec: {e}") from None
  if found != expected:
    raise _refused(
      path,
      f"features.json is not the spec of {size}x{size}x{channels} images with {len(labels)} labels that"
      " preparation writes",
    )


def _builder(path: Path):
  """tfds' reader of a prepared dataset, once its description is checked (`check_description`)."""
  check_description(path)
  return tfds.builder_from_directory(str(path))


def _open(path: Path) -> PreparedDataset:
  builder = _builder(path)
  info = builder.info
  shape = tuple(info.features["image"].shape)
  return PreparedDataset(
    path=path,
    label_names=tuple(info.features["label"].names),
    image_shape=shape,  # type: ignore[arg-type]
    num_examples={s: info.splits[s].num_examples for s in info.splits.keys()},
    metadata=dict(info.metadata or {}),
  )


def open_prepared(path: str | os.PathLike) -> PreparedDataset:
  """Opens a dataset written by `prepare` (the directory holding `dataset_info.json`)."""
  path = Path(path)
  if not (path / "dataset_info.json").is_file():
    raise UserError(f"{path} is not a prepared dataset (no dataset_info.json): run the prepare step first")
  return _open(path)


def read_report(path: str | os.PathLike) -> list[dict[str, str]]:
  """The rows of a dataset's `skipped_files.csv` (`path`, `reason`, `message`)."""
  with open(Path(path) / REPORT, newline="") as f:
    return list(csv.DictReader(f))
