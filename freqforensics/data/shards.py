"""The two stages of preparation, as pure tasks that any runner (processes, threads, Beam) can run.

`write_chunk` decodes a run of one class's files into a temporary array_record chunk (all the
decoding time, so chunks run in parallel); `pack_shard` copies ranges of serialised records into one
split shard, once the usable images of every class are known. Each task writes its output atomically
with a JSON record beside it, and a task whose record exists is not run again, so an interrupted
preparation resumes whichever runner ran it. Tasks are frozen dataclasses (picklable, for Beam).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from freqforensics.data import format_audit, format_matching, images
from freqforensics.files import atomic

_OPTIONS = "group_size:1,uncompressed"  # one record per group (random access); uncompressed reads 2.4x faster


@dataclasses.dataclass(frozen=True)
class ChunkTask:
  """Decode `files` (absolute paths of class `label`, sorted) into the chunk file `out`."""

  out: str
  root: str  # the source directory; records store paths relative to it
  files: tuple[str, ...]
  label: int
  label_names: tuple[str, ...]
  image_size: int
  channels: int
  crop: str
  max_pixels: int
  match_format: str = ""  # format matching (`format_matching`): '' = store as decoded


@dataclasses.dataclass(frozen=True)
class PackTask:
  """Copy records `[start, stop)` of each chunk file in `sources`, in order, into the shard `out`."""

  out: str
  sources: tuple[tuple[str, int, int], ...]


@functools.lru_cache(maxsize=8)
def features(image_size: int, channels: int, label_names: tuple[str, ...]):
  """The tfds feature spec of a prepared example: raw uint8 image bytes, class label, relative path."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return tfds.features.FeaturesDict(
    {
      # Raw bytes: decoding is one np.frombuffer (0.03 ms per 128x128x3 image); tfds' default
      # encoding stores every pixel as an int64 varint and takes 16x longer to decode.
      "image": tfds.features.Tensor(
        shape=(image_size, image_size, channels), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
      ),
      "label": tfds.features.ClassLabel(names=list(label_names)),
      "path": tfds.features.Text(),
    }
  )


def serialize(image: np.ndarray | bytes, label: int, path: str) -> bytes:
  """One example in tfds' on-disk format for `features(...)`: a `tf.train.Example` of the raw image
  bytes, the label and the path, serialised deterministically (map entries sorted), so the same
  inputs give the same bytes in any process: local and Beam runs write identical files."""
  from tensorflow_datasets.core import example_parser  # pylint: disable=g-import-not-at-top

  example = example_parser.tf_example_pb2.Example()
  feature = example.features.feature
  raw = image if isinstance(image, bytes) else np.ascontiguousarray(image, np.uint8).tobytes()
  feature["image"].bytes_list.value.append(raw)
  feature["label"].int64_list.value.append(int(label))
  feature["path"].bytes_list.value.append(path.encode("utf-8"))
  return example.SerializeToString(deterministic=True)


def record_file(out: str | os.PathLike) -> Path:
  """Where the JSON record of a finished task's output `out` is kept (beside it, in `.progress/`)."""
  out = Path(out)
  return out.parent / ".progress" / (out.name + ".json")


def read_record(out: str | os.PathLike) -> dict | None:
  """The record of a finished task, or None when its output is missing or unfinished.

  A chunk that became a shard whole (`pack_shard` moved it) stays finished: its record says where.
  """
  rec = record_file(out)
  if not rec.is_file():
    return None
  record = json.loads(rec.read_text())
  if Path(out).is_file() or ("moved_to" in record and Path(record["moved_to"]).is_file()):
    return record
  return None


def write_json(path: Path, obj) -> None:
  """Writes `obj` as JSON to `path` atomically (`atomic.write_json`), making its folder if needed."""
  path.parent.mkdir(parents=True, exist_ok=True)
  atomic.write_json(path, obj, indent=None)


def _writer(path: Path):
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  path.parent.mkdir(parents=True, exist_ok=True)
  return array_record_module.ArrayRecordWriter(str(path), _OPTIONS)


def _finish(out: Path, tmp: Path, record: dict) -> dict:
  write_json(record_file(out), record)
  os.replace(tmp, out)  # the output exists only once complete: resume trusts what it finds
  return record


def write_chunk(task: ChunkTask) -> dict:
  """Runs a `ChunkTask` (or returns its existing record).

  The record: `count` (usable images written), `digests` (SHA-256 of each written file's bytes, in
  order: the dataset's content fingerprint is built from them), `skipped` (`[relative path,
  reason, message]` for each unusable file) and `audit` (the format audit's tally of the written
  files, `format_audit.tally`, read from the bytes already in memory).
  """
  out = Path(task.out)
  if (done := read_record(out)) is not None:
    return done
  tmp = atomic.temp_name(out)
  writer = _writer(tmp)
  digests, skipped, facts = [], [], []
  for file in task.files:
    rel = os.path.relpath(file, task.root)
    try:
      data = images.read_bytes(file)
      image = images.decode_pil(
        data,
        task.image_size,
        task.channels,
        crop=task.crop,
        max_pixels=task.max_pixels,
        jpeg_quality=format_matching.quality(task.match_format, rel),
      )
    except images.ImageDecodeError as e:
      skipped.append([rel, e.reason, str(e)])
      continue
    writer.write(serialize(image.tobytes(), task.label, rel))  # the raw HWC bytes np.asarray would hold
    digests.append(hashlib.sha256(data).hexdigest())
    facts.append(format_audit.inspect(data, task.max_pixels))
  writer.close()
  record = {"count": len(digests), "digests": digests, "skipped": skipped, "audit": format_audit.tally(facts)}
  return _finish(out, tmp, record)


def pack_shard(task: PackTask, batch: int = 64) -> dict:
  """Runs a `PackTask` (or returns its existing record): `{"count": records written}`.

  A shard that is one whole chunk file (the usual case: no bad file moved a split boundary) is that
  file, renamed: no copy. Otherwise the records are copied, a batch at a time.
  """
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  out = Path(task.out)
  if (done := read_record(out)) is not None:
    return done
  if len(task.sources) == 1:
    chunk, start, stop = task.sources[0]
    chunk_record = read_record(chunk)
    whole = chunk_record is not None and start == 0 and stop == chunk_record["count"]
    if whole and chunk_record.get("moved_to") == str(out) and out.is_file():  # moved before an interruption
      write_json(record_file(out), {"count": stop})
      return {"count": stop}
    if whole and Path(chunk).is_file():
      os.replace(chunk, out)
      write_json(record_file(chunk), dict(chunk_record, moved_to=str(out)))
      write_json(record_file(out), {"count": stop})
      return {"count": stop}
  tmp = atomic.temp_name(out)
  writer = _writer(tmp)
  count = 0
  for chunk, start, stop in task.sources:
    reader = array_record_module.ArrayRecordReader(chunk, "readahead_buffer_size:0")
    for lo in range(start, stop, batch):
      for record in reader.read(lo, min(lo + batch, stop)):
        writer.write(record)
        count += 1
    reader.close()
  writer.close()
  return _finish(out, tmp, {"count": count})
