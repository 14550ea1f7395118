"""Class folders -> a tensorflow-datasets dataset in `array_record` format (no TensorFlow).
Run by `python -m freqforensics.tools.prepare`, and by training (`data.loading`).

Each class is split on its own: the first usable images in sorted file-name order go to train, the
next to val, then test (counts or fractions per class). Images are decoded once, cropped (`crops`)
and stored as raw uint8, in two stages of atomic tasks (`shards`) on worker processes or a Beam
runner (`beam`), so memory is one image per worker and an interrupted run resumes. Unusable files are
skipped and listed in `skipped_files.csv`; a folder prepared from other inputs (by their recorded
fingerprint) is never overwritten without `overwrite=True`. docs/data.md describes the result.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import json
import logging
import multiprocessing
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from freqforensics.data import crops, format_audit, format_matching, images, reader, shards
from freqforensics.data.reader import REPORT, SPLITS, PreparedDataset
from freqforensics.errors import UserError
from freqforensics.files import atomic, locks, ownership

log = logging.getLogger(__name__)

_FORMAT_VERSION = 3
_CHUNK_BYTES = 64 << 20  # raw image bytes per decoding task (and so per output shard) ...
_CHUNK_FILES = (16, 4096)  # ... within these bounds in files (progress and resume granularity)
_PROCESS_MIN_FILES = 1024  # parallel="auto": below this, threads (starting processes costs more)
_DATASET_NAME = "freqforensics"
_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
_MARKER = ".freqforensics_prepare.json"  # what a directory is being prepared from (for resume/refusal)
LOCK = ".freqforensics.lock"  # held while a process prepares (or reuses) a directory: `locks.DirLock`
LOCK_WAIT_S = 2 * 3600  # how long a second process waits for the first to finish preparing the same directory

# A runner executes a list of tasks with a function (all of them; order does not matter) and calls
# `done(weight)` as tasks finish. Local processes/threads here; Beam in `prepare_beam`.
Runner = Callable[[Callable, Sequence, Sequence[int], Callable[[int], None]], None]


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
  """What preparation depends on, besides the files themselves."""

  image_size: int
  channels: int
  split: tuple[float, ...]  # per class (train, val, test): floats = fractions of usable images, ints = counts
  crop: str = "center"  # center | celeba | none | resize (see `crops`)
  max_pixels: int = images.DEFAULT_MAX_PIXELS  # larger images are refused unread
  match_format: str = ""  # '' | jpeg:Q | jpeg:LO-HI: the same JPEG step for every class (`format_matching`)
  num_threads: int = 0  # parallel workers; 0 = one per core
  parallel: str = "auto"  # auto | process | thread
  split_option: str = "data.split"  # how the calling command names the split in its messages (--split for prepare)


def split_counts(n: int, split: Sequence[float], class_name: str, option: str = "data.split") -> tuple[int, int, int]:
  """Per-class (train, val, test) sizes: integers are counts, floats are fractions of the class.

  `(100, 20, 30)` takes 100/20/30 images of each class; `(0.7, 0.1, 0.2)` takes 70%/10%/20%
  (fractions that sum to 1 give the rounding remainder to test, so every file is used). Raises
  `UserError` when a class has fewer images than requested; messages name the split as `option`.
  """
  if len(split) != 3 or any(s < 0 for s in split):
    raise UserError(f"{option} must be three non-negative numbers (train, val, test), got {tuple(split)}")
  if any(isinstance(s, float) for s in split):  # fractions
    if sum(split) > 1 + 1e-9:
      raise UserError(f"{option} fractions {tuple(split)} sum to more than 1: lower them (or give integer counts)")
    n_train, n_val = int(n * split[0]), int(n * split[1])
    n_test = n - n_train - n_val if abs(sum(split) - 1) < 1e-9 else int(n * split[2])
    counts = (n_train, n_val, n_test)
    if any(c == 0 and s > 0 for c, s in zip(counts, split)):
      raise UserError(
        f"class {class_name} has {n} images: too few for split fractions {tuple(split)} (a split"
        f" would be empty); add images or give larger fractions ({option})"
      )
    return counts
  counts = (int(split[0]), int(split[1]), int(split[2]))
  if sum(counts) > n:
    raise UserError(
      f"class {class_name} has {n} images, fewer than the requested split"
      f" {counts[0]}+{counts[1]}+{counts[2]}={sum(counts)}: lower {option} or add images"
    )
  return counts


def is_counts(split: Sequence[float]) -> bool:
  """Whether a split gives counts (all integers) rather than fractions (any float)."""
  return not any(isinstance(x, float) for x in split)


def fingerprint(folders: images.ClassFolders, options: PrepareOptions) -> str:
  """A hash of every file's relative path, size and mtime, and of the options that shape the data.

  Format matching enters only when set: a dataset prepared without it keeps the fingerprint (and
  the cache folder) it had before the option existed.
  """
  shaping = {
    "v": _FORMAT_VERSION,
    "size": options.image_size,
    "channels": options.channels,
    "split": list(options.split),
    "crop": options.crop,
    "max_pixels": options.max_pixels,
  }
  if options.match_format:
    shaping["match_format"] = format_matching.check(options.match_format)
  h = hashlib.sha256()
  h.update(json.dumps(shaping).encode())
  for name in folders.class_names:
    for path in folders.files[name]:
      st = path.stat()
      h.update(f"{images.relative_name(path, folders.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return h.hexdigest()


def _shard_name(split: str, index: int, count: int) -> str:
  return f"{_DATASET_NAME}-{split}.array_record-{index:05d}-of-{count:05d}"


def _image_bytes(options: PrepareOptions) -> int:
  return options.image_size**2 * options.channels


def chunk_files(options: PrepareOptions) -> int:
  """Files per decoding task: about `_CHUNK_BYTES` of decoded images, within `_CHUNK_FILES`."""
  return int(np.clip(_CHUNK_BYTES // _image_bytes(options), *_CHUNK_FILES))


def planned(n_files: int, split: Sequence[float], class_name: str, option: str = "data.split") -> tuple[int, int, int]:
  """A class's split sizes if every file is usable: the counts, or the fractions of its files."""
  if is_counts(split):
    return tuple(int(x) for x in split)  # type: ignore[return-value]
  return split_counts(n_files, split, class_name, option)


def chunk_bounds(n_files: int, plan: Sequence[int], k: int) -> list[tuple[int, int]]:
  """File ranges of a class's decoding tasks: at most `k` files, never across a planned split
  boundary, so that with no bad file every task's output is a whole shard (moved, not copied)."""
  edges = sorted({0, n_files, *(min(n_files, int(e)) for e in np.cumsum(plan))})
  return [(lo, min(lo + k, hi)) for a, hi in zip(edges[:-1], edges[1:]) for lo in range(a, hi, k)]


def _chunk_task(
  path: Path, folders: images.ClassFolders, label: int, j: int, bounds: tuple[int, int], options: PrepareOptions
) -> shards.ChunkTask:
  files = folders.files[folders.class_names[label]][bounds[0] : bounds[1]]
  decoding = {name: getattr(options, name) for name in ("image_size", "channels", "crop", "max_pixels", "match_format")}
  return shards.ChunkTask(
    out=str(path / ".chunks" / f"class{label:04d}-{j:06d}.array_record"),
    root=str(folders.root),
    files=tuple(str(f) for f in files),
    label=label,
    label_names=folders.class_names,
    **decoding,
  )


def _needed(n_files: int, split: Sequence[float]) -> int:
  """How many of a class's files to decode first: all of them for fractions, the counts' sum else."""
  return n_files if not is_counts(split) else min(n_files, int(sum(split)))


def _decode_classes(
  path: Path, folders: images.ClassFolders, options: PrepareOptions, run: Runner, bar
) -> dict[int, list[tuple[shards.ChunkTask, dict]]]:
  """Runs the decoding stage; returns, per label, its chunk tasks and records in file order.

  With count splits only the files needed are decoded; when bad files leave a class short, the
  next files are decoded in further rounds until the counts are met or the files run out.
  """
  k = chunk_files(options)
  done: dict[int, list[tuple[shards.ChunkTask, dict]]] = {label: [] for label in range(len(folders.class_names))}
  bounds = {
    label: chunk_bounds(
      len(folders.files[name]), planned(len(folders.files[name]), options.split, name, options.split_option), k
    )
    for label, name in enumerate(folders.class_names)
  }
  want = {label: _needed(len(folders.files[name]), options.split) for label, name in enumerate(folders.class_names)}
  while True:
    tasks = []
    for label in bounds:
      covered = bounds[label][len(done[label]) - 1][1] if done[label] else 0  # files decoded so far
      reach = covered + want[label] - sum(r["count"] for _, r in done[label])  # ... and to cover now
      tasks += [
        _chunk_task(path, folders, label, j, bounds[label][j], options)
        for j in range(len(done[label]), len(bounds[label]))
        if bounds[label][j][0] < reach
      ]
    if not tasks:
      return done
    run(shards.write_chunk, tasks, [len(t.files) for t in tasks], bar.update)
    for t in tasks:
      done[t.label].append((t, shards.read_record(t.out)))


def class_requests(
  usable: int,
  split: Sequence[float],
  class_name: str,
  n_files: int,
  n_skipped: int,
  report: Path,
  option: str = "data.split",
  skipped: Sequence[Sequence[str]] = (),
  source: str | os.PathLike = "",
) -> tuple[int, int, int]:
  """Per-class (train, val, test) sizes from its usable images; a shortfall names the class and numbers.

  A class whose every file was skipped is named with its folder and why (`skipped`: its rows, (path,
  reason, detail)): e.g. every image smaller than the target size.

  Args:
    usable: the class's usable images.
    split: the per-class split, counts (ints) or fractions (floats).
    class_name: the class's folder name, for messages.
    n_files: the class's files.
    n_skipped: how many of them were skipped.
    report: the skip report (`skipped_files.csv`) that messages point to.
    option: how the calling command names the split option in messages.
    skipped: the class's skipped rows (path, reason, detail).
    source: the source directory, named in messages when given.
  """
  if usable == 0 and n_files and skipped:
    path, _, detail = skipped[0]
    reasons = ", ".join(f"{r}: {k}" for r, k in skip_reasons(skipped).items())
    raise UserError(
      f"class {class_name}{f' of {source}' if source else ''} has no usable image: all {n_files} of its files"
      f" were skipped ({reasons}; e.g. {path} {detail}; all listed in {report}): add images that fit the"
      " preparation's size and rules, or remove the folder"
    )
  if is_counts(split) and usable < sum(split):
    raise UserError(
      f"class {class_name} has {usable} usable images ({n_skipped} of its {n_files} files skipped, listed in"
      f" {report}), fewer than the requested split {'+'.join(str(int(x)) for x in split)}={int(sum(split))}:"
      f" lower {option} or add images"
    )
  return split_counts(usable, split, class_name, option)


def assign_records(counts: Sequence[int], requests: Sequence[int]) -> list[list[tuple[int, int, int]]]:
  """Splits a class's records, `counts[j]` in chunk j, into consecutive runs of `requests[s]`.

  Returns, per split, `(chunk, start, stop)` ranges: the first `requests[0]` records (in chunk order)
  for train, the next `requests[1]` for val, and so on.
  """
  out: list[list[tuple[int, int, int]]] = [[] for _ in requests]
  j, pos = 0, 0  # the next record: chunk j, offset pos
  for s, want in enumerate(requests):
    while want > 0:
      while j < len(counts) and pos >= counts[j]:
        j, pos = j + 1, 0
      if j >= len(counts):
        raise ValueError("fewer records than requested")
      take = min(want, counts[j] - pos)
      out[s].append((j, pos, pos + take))
      pos, want = pos + take, want - take
  return out


def listing_skips(folders: images.ClassFolders) -> list[list[str]]:
  """`[relative path, reason, message]` of the files the listing rule left out (`images.LISTING_RULE`)."""
  return [
    [os.path.relpath(p, folders.root), reason, images.SKIP_REASONS.get(reason, reason)] for p, reason in folders.skipped
  ]


def _write_report(path: Path, skipped: Sequence[Sequence[str]]) -> Path:
  """`skipped_files.csv`: one row per file not used (`path,reason,message`), quoted as CSV, so any file
  name (commas, tabs, newlines) reads back exactly."""
  buf = io.StringIO()
  writer = csv.writer(buf)
  writer.writerow(["path", "reason", "message"])
  writer.writerows(skipped)
  return dataset_record(path).write_text(REPORT, buf.getvalue())


def skip_reasons(skipped: Sequence[Sequence[str]]) -> dict[str, int]:
  """Skipped files counted per reason."""
  return dict(sorted(collections.Counter(reason for _, reason, _ in skipped).items()))


def _write_dataset(
  path: Path, folders: images.ClassFolders, options: PrepareOptions, fp: str, run: Runner, progress: bool
) -> None:
  """Decodes, assigns, packs, and writes the tfds metadata and the skip report."""
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  total = sum(_needed(len(folders.files[n]), options.split) for n in folders.class_names)
  with tqdm(total=total, desc="decode", unit="img", disable=not progress, smoothing=0.1) as bar:
    decoded = _decode_classes(path, folders, options, run, bar)
  skipped = [x for label in sorted(decoded) for _, r in decoded[label] for x in r["skipped"]] + listing_skips(folders)
  report = _write_report(path, skipped)
  per_split: dict[str, list[tuple[str, int, int]]] = {s: [] for s in SPLITS}
  per_class: dict[str, dict[str, int]] = {}
  content = hashlib.sha256()
  for label, name in enumerate(folders.class_names):
    chunks = decoded[label]
    counts = [r["count"] for _, r in chunks]
    class_skipped = [x for _, r in chunks for x in r["skipped"]]
    requests = class_requests(
      sum(counts),
      options.split,
      name,
      len(folders.files[name]),
      len(class_skipped),
      report,
      options.split_option,
      class_skipped,
      folders.root,
    )
    per_class[name] = dict(zip(SPLITS, requests))
    for s, ranges in zip(SPLITS, assign_records(counts, requests)):
      for j, start, stop in ranges:
        task, record = chunks[j]
        per_split[s].append((task.out, start, stop))
        content.update("".join(f"{s}\0{label}\0{d}\n" for d in record["digests"][start:stop]).encode())
  tasks, names = [], {}
  for s in SPLITS:  # one shard per run of records: a whole chunk is moved into place, a part copied
    names[s] = [_shard_name(s, i, len(per_split[s])) for i in range(len(per_split[s]))]
    tasks += [shards.PackTask(out=str(path / name), sources=(piece,)) for name, piece in zip(names[s], per_split[s])]
  dataset_record(path).add(*(n for s in SPLITS for n in names[s]))
  with tqdm(
    total=sum(stop - start for t in tasks for _, start, stop in t.sources),
    desc="pack",
    unit="img",
    disable=not progress,
  ) as bar:
    run(shards.pack_shard, tasks, [sum(stop - start for _, start, stop in t.sources) for t in tasks], bar.update)
  split_infos = []
  for s in SPLITS:
    if not names[s]:
      continue
    lengths = [shards.read_record(path / n)["count"] for n in names[s]]
    split_infos.append(
      tfds.core.SplitInfo(
        name=s,
        shard_lengths=lengths,
        num_bytes=sum((path / n).stat().st_size for n in names[s]),
        filename_template=tfds.core.ShardedFileTemplate(
          data_dir=path, template=_TEMPLATE, dataset_name=_DATASET_NAME, split=s, filetype_suffix="array_record"
        ),
      )
    )
  reasons = skip_reasons(skipped)
  records = [r for label in sorted(decoded) for _, r in decoded[label]]
  audit = None
  if all("audit" in r for r in records):  # (chunks decoded by a version without the audit: none recorded)
    audit = format_audit.make_audit(
      {
        name: format_audit.merge(r["audit"] for _, r in decoded[label])
        for label, name in enumerate(folders.class_names)
      },
      folders.root.resolve(),
      "the files preparation decoded and stored",
    )
  metadata = tfds.core.MetadataDict(
    source_dir=str(folders.root.resolve()),
    label_names=list(folders.class_names),
    image_size=options.image_size,
    channels=options.channels,
    crop=options.crop,
    max_pixels=options.max_pixels,
    split=list(options.split),
    counts=per_class,
    skipped=sum(reasons.values()),
    skipped_by_reason=reasons,
    fingerprint=fp,
    content_fingerprint=content.hexdigest(),
    format_version=_FORMAT_VERSION,
    match_format=format_matching.check(options.match_format),
    audit=audit,
  )
  tfds.folder_dataset.write_metadata(
    data_dir=path,
    features=shards.features(options.image_size, options.channels, folders.class_names),
    split_infos=split_infos,
    filename_template=_TEMPLATE,
    check_data=False,
    description="Class-folder images prepared by freqforensics.",
    metadata=metadata,
  )
  shutil.rmtree(path / ".chunks", ignore_errors=True)
  if reasons:
    log.warning(
      "skipped %d file(s) of %s (%s); listed in %s",
      sum(reasons.values()),
      folders.root,
      ", ".join(f"{r}: {n}" for r, n in reasons.items()),
      report,
    )


def _watch_parent(parent: int) -> None:
  while True:
    if os.getppid() != parent:  # the parent died (kill -9 included): this worker goes with it
      os._exit(1)
    time.sleep(0.5)


def _die_with_parent(parent: int) -> None:
  """Initializer of the worker processes: they end within a second of their parent, however it ended."""
  if os.getppid() != parent:
    os._exit(1)
  threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="watch-parent").start()


class LocalRunner:
  """Runs tasks on this machine: worker processes on all cores (threads for small jobs).

  One pool serves every stage (processes start once). Tasks are submitted largest first, so the
  last ones to finish are small and no core idles while one big task ends. Use as a context
  manager, or call `close()`.
  """

  def __init__(self, options: PrepareOptions):
    self._options = options
    self._workers = options.num_threads or os.cpu_count() or 1
    self._pool: concurrent.futures.Executor | None = None

  def _get_pool(self, total: int) -> concurrent.futures.Executor:
    if self._pool is None:
      processes = self._options.parallel == "process" or (
        self._options.parallel == "auto" and self._workers > 1 and total >= _PROCESS_MIN_FILES
      )
      # spawn, not fork: the parent may hold JAX's threads, which a forked child would deadlock on.
      self._pool = (
        concurrent.futures.ProcessPoolExecutor(
          self._workers, multiprocessing.get_context("spawn"), initializer=_die_with_parent, initargs=(os.getpid(),)
        )
        if processes
        else concurrent.futures.ThreadPoolExecutor(self._workers)
      )
    return self._pool

  def __call__(self, fn: Callable, tasks: Sequence, weights: Sequence[int], done: Callable[[int], None]) -> None:
    if not tasks:
      return
    pool = self._get_pool(sum(weights))
    order = sorted(range(len(tasks)), key=lambda i: -weights[i])
    futures = {pool.submit(fn, tasks[i]): weights[i] for i in order}
    try:
      for f in concurrent.futures.as_completed(futures):
        f.result()
        done(futures[f])
    except BaseException:
      for f in futures:
        f.cancel()
      raise

  def close(self) -> None:
    if self._pool is not None:
      self._pool.shutdown(wait=True, cancel_futures=True)
      self._pool = None

  def __enter__(self) -> LocalRunner:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


# What preparation writes in a dataset folder, by exact name, registered in its record before it starts (its
# shards before they are packed; training registers the statistics it caches there). A folder of a version
# without records is adopted by these names, its shards by tfds' template and training's caches by content
# (`_is_cache_file`); that version wrote its shards as `<name>.tmpN` first.
_OWN_NAMES = frozenset(
  {"dataset_info.json", "features.json", "metadata.json", "label.labels.txt", REPORT, "skipped_files.txt", _MARKER}
  | {".chunks", ".progress"}
  | {f"labels_{s}.npy" for s in SPLITS}
)
_OWN_FOLDERS = frozenset({".chunks", ".progress"})
_SHARD_NAME = re.compile(re.escape(_DATASET_NAME) + r"-(" + "|".join(SPLITS) + r")\.array_record-\d{5}-of-\d{5}")
# `stats.stats_file`: stats_<feature kind><subset tag>.npz, the kind also stored inside.
_STATS_NAME = re.compile(r"stats_(?P<kind>[\w.-]+?)(_subset[\d.e+-]+_seed\d+)?\.npz")


def _is_cache_file(path: Path) -> bool:
  """Whether `path` is a statistics file of training: its name is `stats_<kind>[<tag>].npz` and it holds
  that `kind` (a user's `stats_mine.npz` is not)."""
  m = _STATS_NAME.fullmatch(path.name)
  if not m or path.is_symlink() or not path.is_file():
    return False
  try:
    with np.load(path, allow_pickle=False) as f:
      return "kind" in f.files and str(f["kind"]) == m["kind"]
  except (OSError, ValueError, EOFError, KeyError):
    return False


def _is_prepared_file(path: Path) -> bool:
  """Whether `path` (a child of a dataset folder) is one preparation or training wrote (`remove_prepared`)."""
  name = re.sub(r"\.tmp\d*$", "", path.name)
  return (
    atomic.is_temp_name(path.name) or name in _OWN_NAMES or bool(_SHARD_NAME.fullmatch(name)) or _is_cache_file(path)
  )


def _older_preparation(path: Path) -> dict[str, str]:
  """What a version without ownership records wrote in a dataset folder, recognised by its marker: the exact
  names preparation writes, its shards, training's statistics caches and the files it left half written."""
  if not (path / _MARKER).is_file():
    return {}
  return {
    c.name: "tree" if c.is_dir() and not c.is_symlink() else "file" for c in path.iterdir() if _is_prepared_file(c)
  }


def dataset_record(path: str | os.PathLike) -> ownership.OwnershipRecord:
  """The ownership record of a dataset folder (one prepared by an older version is adopted by its marker)."""
  return ownership.OwnershipRecord(path, adopt=_older_preparation)


def remove_prepared(path: str | os.PathLike) -> list[Path]:
  """Deletes what preparation and training wrote in `path` (`--overwrite`): what its record names, and the
  temporary files of writers that were killed; returns what is left there (a user's files, the lock)."""
  path = Path(path)
  atomic.remove_stale_temps(path)
  dataset_record(path).remove_owned(keep=[LOCK])
  return sorted(path.iterdir())


def _refuse_foreign(path: Path) -> None:
  """Refuses a file, or a folder that holds something but no preparation (its lock file alone does not count)."""
  if dataset_record(path).owns(_MARKER):  # registered before it is written: a preparation's folder, maybe unfinished
    return
  if path.exists() and (not path.is_dir() or any(p.name != LOCK for p in path.iterdir())):
    raise UserError(
      f"{path} exists and is not a dataset prepared by freqforensics: choose another output directory"
      " (nothing in it is overwritten)"
    )


def _claim(path: Path, fp: str, folders: images.ClassFolders, options: PrepareOptions, overwrite: bool) -> bool:
  """Makes `path` ours for fingerprint `fp`; True when it already holds the finished dataset.

  An empty or missing directory is claimed; one being prepared from the same inputs is resumed; an
  unfinished one from other inputs (a run that failed or was stopped) is started again; a finished
  one from other inputs is replaced only with `overwrite`; anything else is refused. Replacing
  deletes only what preparation and training wrote (`remove_prepared`).
  """
  marker = path / _MARKER
  _refuse_foreign(path)
  if marker.is_file():
    try:
      theirs = json.loads(marker.read_text())
    except json.JSONDecodeError:
      theirs = {}
    if theirs.get("fingerprint") == fp:
      return (path / "dataset_info.json").is_file()
    if not (path / "dataset_info.json").is_file():
      log.info("%s holds an unfinished preparation of other inputs: starting again", path)
      remove_prepared(path)
    elif not overwrite:
      raise UserError(
        f"{path} holds a dataset prepared from {theirs.get('source_dir')} with other files or arguments"
        f" ({theirs.get('options')}): pass --overwrite to replace it, or choose another output directory"
      )
    else:
      remove_prepared(path)
  elif dataset_record(path).exists():  # stopped before its marker was written
    remove_prepared(path)
  options_json = {
    k: v for k, v in dataclasses.asdict(options).items() if k not in ("num_threads", "parallel", "split_option")
  }
  rec = dataset_record(path)
  rec.add(*(_OWN_NAMES - _OWN_FOLDERS))
  rec.add(*_OWN_FOLDERS, tree=True)
  shards.write_json(marker, {"fingerprint": fp, "source_dir": str(folders.root.resolve()), "options": options_json})
  return False


def _check(folders: images.ClassFolders, options: PrepareOptions) -> None:
  """Refuses bad options, and classes with too few files for count splits, before any decoding."""
  if options.crop not in crops.CROPS:
    raise UserError(f"unknown crop rule {options.crop!r}: use one of {', '.join(crops.CROPS)} (--crop, data.crop)")
  format_matching.check(options.match_format, "match_format (--match_format, data.match_format)")
  if options.image_size < 1 or options.channels not in (1, 3):
    raise UserError(
      f"image size {options.image_size} / channels {options.channels}: need a size >= 1 and"
      " channels 1 (grayscale) or 3 (RGB)"
    )
  for name in folders.class_names:  # too few files even if every one is usable
    split_counts(len(folders.files[name]), options.split, name, options.split_option)


def prepare_to(
  source_dir: str | os.PathLike | images.ClassFolders,
  out_dir: str | os.PathLike,
  options: PrepareOptions,
  *,
  overwrite: bool = False,
  progress: bool = True,
  min_classes: int = 2,
  runner: Runner | None = None,
  source_option: str = "--config.data.source_dir",
  out_option: str = "data.data_dir (or $FREQFORENSICS_DATA)",
  wait: float = LOCK_WAIT_S,
) -> PreparedDataset:
  """Prepares `source_dir` (one folder per class, or its listing) into `out_dir`; see the module docstring.

  A re-run with the same files and options returns the existing dataset; an interrupted one
  resumes; `runner` (default: a `LocalRunner`) runs the tasks, e.g. on Beam (`prepare_beam`).
  One process at a time prepares a directory (`locks.DirLock`, its file `LOCK` in it): a second
  one waits up to `wait` seconds (saying so on stderr), then finds the dataset finished and reuses
  it, or is refused with one line naming the holder and `out_option`.

  Args:
    source_dir: one folder per class, or its listing.
    out_dir: the dataset folder (new, empty, or an earlier preparation to reuse, resume or replace).
    options: image size, channels, split, crop, pixel limit, format matching and workers.
    overwrite: replace a dataset prepared from other inputs (only the files preparation writes).
    progress: a progress bar on stderr.
    min_classes: the fewest class folders accepted.
    runner: runs the tasks; default a `LocalRunner` (worker processes).
    source_option: how messages name the source option.
    out_option: how messages name the output option.
    wait: seconds to wait for another process preparing the same folder.
  """
  folders = (
    source_dir
    if isinstance(source_dir, images.ClassFolders)
    else images.list_class_folders(source_dir, min_classes=min_classes, option=source_option)
  )
  _check(folders, options)
  fp = fingerprint(folders, options)
  path = Path(out_dir).expanduser()
  _refuse_foreign(path)  # before the lock file is made in a folder that is not ours
  path.mkdir(parents=True, exist_ok=True)
  with locks.DirLock(path, LOCK).acquire(out_option, wait=wait):
    if _claim(path, fp, folders, options, overwrite):  # under the lock: another process may have prepared it
      log.info("reusing prepared dataset %s", path)
      return reader.open_prepared(path)
    if runner is not None:
      _write_dataset(path, folders, options, fp, runner, progress)
    else:
      with LocalRunner(options) as local:
        _write_dataset(path, folders, options, fp, local, progress)
    return reader.open_prepared(path)


def prepare(
  source_dir: str | os.PathLike,
  data_dir: str | os.PathLike,
  options: PrepareOptions,
  *,
  progress: bool = True,
  min_classes: int = 2,
  classes: Sequence[str] = (),
  source_option: str = "--config.data.source_dir",
) -> PreparedDataset:
  """Prepares `source_dir` (only its folders `classes`, if given) into the cache `data_dir`, in a
  folder named after it and its fingerprint.

  Args:
    source_dir: one folder per class.
    data_dir: the cache; the dataset folder is `<source name>-<fingerprint[:12]>` in it.
    options: image size, channels, split, crop, pixel limit, format matching and workers.
    progress: a progress bar on stderr.
    min_classes: the fewest class folders accepted.
    classes: the class folders to take (all when empty).
    source_option: how messages name the source option.
  """
  folders = images.list_class_folders(source_dir, min_classes=min_classes, classes=classes, option=source_option)
  out = Path(data_dir).expanduser() / f"{folders.root.resolve().name}-{fingerprint(folders, options)[:12]}"
  return prepare_to(folders, out, options, progress=progress)
