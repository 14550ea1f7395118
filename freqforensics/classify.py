r"""Classifying images with a trained model: a library API and a command line.

  python -m freqforensics.classify --workdir=runs/mine [--format=csv|jsonl] [--output=FILE] PATH [PATH ...]

PATHs are image files or folders (searched recursively, in sorted order). The model is the bundle of
a finished run (`WORKDIR/bundle/`, or a bundle folder given directly), so nothing but plain arrays
and JSON is read. Files are decoded with the preprocessing the model was trained with, in a thread
pool, one batch ahead of the model: memory stays flat however many files there are. Broken files
become rows with an `error` and never stop the run.

Output: one row per image file (`path`, `predicted`, `p_<label>` per label, `error`), as CSV or
JSON lines; by default in `WORKDIR/classify_<timestamp>.csv`, never overwriting a file. Exit code 0
when every image was classified, 1 when some were skipped, 2 on usage errors (one `error:` line).

In Python:

  clf = classify.load("runs/mine")
  probs = clf.predict(np.stack([clf.prepare_file(p) for p in paths]))  # (N, len(clf.label_names))
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from absl import flags
from absl import logging as absl_logging

from freqforensics import cli, host_devices
from freqforensics.data import crops, images
from freqforensics.errors import UserError

# JAX, Flax and the model modules are imported where a model is loaded, not here: importing this
# module (for `collect_files`, `decode_file`, the output writers) costs no JAX start-up.

# --- Library ------------------------------------------------------------------------------------


def _bundle_dir(workdir: str | os.PathLike) -> Path:
  """`WORKDIR/bundle`, or `workdir` itself when it is a bundle folder."""
  path = Path(workdir).expanduser()
  if not path.exists():
    raise UserError(f"work dir {path} does not exist: give --workdir=DIR of a finished training run")
  if (path / "bundle.json").is_file():
    return path
  return path / "bundle"


@dataclasses.dataclass
class Classifier:
  """A loaded model with its preprocessing: decode files, predict label probabilities."""

  bundle: Any  # bundle.Bundle
  _placed: Any  # inference.PlacedModel

  @property
  def label_names(self) -> tuple[str, ...]:
    return self.bundle.label_names

  @property
  def input_shape(self) -> tuple[int, ...]:
    """The shape of one image the model takes, `(H, W, C)`."""
    return tuple(self.bundle.info["input_shape"])

  @property
  def image_size(self) -> int:
    # Bundles written without preprocessing keys (older or hand-made ones) imply it by the input shape.
    return int(self.bundle.info.get("image_size", self.input_shape[0]))

  @property
  def channels(self) -> int:
    return int(self.bundle.info.get("channels", self.input_shape[-1]))

  @property
  def crop(self) -> str:
    return str(self.bundle.info.get("crop", "center"))

  def prepare_file(self, path: str | os.PathLike) -> np.ndarray:
    """Decodes `path` to uint8 `(H, W, C)` as the model was trained; raises `ImageDecodeError`.

    The bundle's crop rule applies (`crops`): with `center` any image at least the model's size is
    centre-cropped and resized; with `none` an image of another size is refused (the model was
    trained on images that were never resized).
    """
    x = self.decoder()(path)
    if isinstance(x, str):
      raise images.ImageDecodeError(x)
    return x

  def decoder(self) -> Callable[[str | os.PathLike], np.ndarray | str]:
    """`path -> uint8 image or the reason it cannot be used`, with the bundle's preprocessing."""
    if self.crop not in crops.CROPS:
      raise UserError(f"the bundle has an unknown crop rule {self.crop!r}; this version knows {', '.join(crops.CROPS)}")
    return functools.partial(decode_file, size=self.image_size, channels=self.channels, crop=self.crop)

  def predict(self, batch: np.ndarray) -> np.ndarray:
    """Label probabilities `(N, len(label_names))` of uint8 images `(N, H, W, C)` at the input shape."""
    batch = np.asarray(batch)
    expected = (None,) + self.input_shape
    if batch.ndim != 4 or batch.shape[1:] != self.input_shape:
      raise ValueError(f"expected images shaped (N, {', '.join(map(str, self.input_shape))}), got {batch.shape};"
                       f" decode files with prepare_file (expected {expected})")
    if batch.dtype != np.uint8:
      # The features scale by the uint8 range: floats in 0..1 would silently give garbage.
      raise ValueError(f"expected uint8 images, got {batch.dtype}")
    n = len(batch)
    if n == 0:
      return np.zeros((0, len(self.label_names)), np.float32)
    pad = -n % self._placed.mesh.size  # the batch is split over the devices: pad it to a multiple of them
    if pad:
      batch = np.concatenate([batch, np.zeros((pad,) + batch.shape[1:], np.uint8)])
    probs = self._placed.probabilities(self._placed.put({"image": batch})["image"])
    return np.asarray(probs)[:n]


def decode_file(path: str | os.PathLike, *, size: int, channels: int, crop: str) -> np.ndarray | str:
  """The uint8 image `(size, size, channels)` of `path` by crop rule `crop`, or why it cannot be used."""
  try:
    return images.load_image(path, size, channels, crop=crop)
  except images.ImageDecodeError as e:
    return f"cannot use {path}: {e}"


def load(workdir: str | os.PathLike) -> Classifier:
  """Loads the model of `WORKDIR/bundle` (or of a bundle folder); raises `UserError` if there is none."""
  from freqforensics import bundle, inference, sharding  # pylint: disable=g-import-not-at-top

  loaded = bundle.load(_bundle_dir(workdir))
  # All devices (one per CPU core under the command line), as evaluation.
  return Classifier(bundle=loaded, _placed=inference.place(loaded, sharding.make_mesh()))


# --- Files and batches ----------------------------------------------------------------------------


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


def decoded_batches(files: Sequence[Path], decode: Callable[[Path], np.ndarray | str], batch_size: int,
                    workers: int | None = None,
                    ) -> Iterator[tuple[list[Path], list[np.ndarray | str]]]:
  """Yields `(paths, decoded images or error reasons)` per batch, decoded in a thread pool.

  At most two batches are submitted ahead of the one the caller holds, so memory is bounded by a
  few batches, not by the number of files; decoding (Pillow releases the GIL) overlaps the model.
  (Worker processes were measured too: on 2 cores they were no faster, since decoding and the
  model then compete for the same cores, and they cost a start-up.)
  """
  workers = workers or min(8, os.cpu_count() or 1)
  chunks = (list(files[i:i + batch_size]) for i in range(0, len(files), batch_size))
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


# --- Output ---------------------------------------------------------------------------------------


class _Writer:
  """Rows as CSV (`path, predicted, p_<label>..., error`) or JSON lines (the same keys, `error` only if any)."""

  def __init__(self, stream: IO[str], fmt: str, label_names: Sequence[str]):
    self._stream = stream
    self._fmt = fmt
    self._prob_keys = [f"p_{name}" for name in label_names]
    self._csv = None
    if fmt == "csv":
      self._csv = csv.writer(stream)
      self._csv.writerow(["path", "predicted", *self._prob_keys, "error"])

  def row(self, path: Path, predicted: str | None = None, probs: np.ndarray | None = None,
          error: str | None = None) -> None:
    if self._csv is not None:
      values = [f"{float(p):.8g}" for p in probs] if probs is not None else [""] * len(self._prob_keys)
      self._csv.writerow([str(path), predicted or "", *values, error or ""])
      return
    record: dict[str, Any] = {"path": str(path)}
    if error is None:
      record["predicted"] = predicted
      record.update({k: float(p) for k, p in zip(self._prob_keys, probs)})
    else:
      record["error"] = error
    self._stream.write(json.dumps(record) + "\n")


class _Output:
  """The output file, written under a temporary name and renamed into place when every row is in.

  A run that crashes (or is killed) leaves no half-written file under the name asked for, so the
  same command runs again; the temporary file (`.<name>.partial`) is replaced by that rerun. A named
  `--output` that exists is a usage error (results are never overwritten); the default name in the
  work dir gets a numbered suffix instead, so two runs in the same second both keep theirs.
  """

  def __init__(self, output: str | None, workdir: Path, fmt: str):
    self.stream: IO[str]
    self.path: Path | None = None
    if output == "-":
      self.stream, self.name = sys.stdout, "stdout"
      return
    if output:
      path = Path(output).expanduser()
      if path.is_dir():
        raise UserError(f"--output={path} is a folder: give a file name")
      if path.exists():
        raise UserError(f"output file {path} exists: give another --output (results are never overwritten)")
      if not path.parent.is_dir():
        raise UserError(f"the folder of --output={path} does not exist")
      self.stream = self._partial(path).open("w", newline="")  # a partial file of a crashed run is replaced
    else:
      base = workdir / f"classify_{time.strftime('%Y%m%d-%H%M%S')}"
      for n in range(1000):
        path = base.with_name(base.name + (f"_{n}" if n else "") + f".{fmt}")
        if path.exists():
          continue
        try:  # "x": the partial name is reserved atomically, so two runs never pick the same output
          self.stream = self._partial(path).open("x", newline="")
          break
        except FileExistsError:
          continue
      else:
        raise UserError(f"cannot find a free output name like {base}.{fmt}: give --output=FILE")
      if (workdir / "config.json").is_file():
        from freqforensics import workdir as wd  # pylint: disable=g-import-not-at-top

        wd.register(workdir, path, self._partial(path))
    self.path, self.name = path, str(path)

  @staticmethod
  def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")

  def finish(self) -> None:
    """Closes the file and gives it its name (refusing, as at the start, to replace a file made meanwhile)."""
    if self.path is None:
      self.stream.flush()
      return
    self.stream.close()
    if self.path.exists():
      raise UserError(f"output file {self.path} was created by something else while classifying; the results are in"
                      f" {self._partial(self.path)}")
    os.replace(self._partial(self.path), self.path)


def format_summary(counts: collections.Counter, label_names: Sequence[str]) -> str:
  """Files per predicted label, with their share of the classified files."""
  total = sum(counts.values())
  width = max(len(n) for n in label_names)
  lines = []
  for name in label_names:
    share = counts[name] / total if total else 0.0
    lines.append(f"  {name:<{width}}  {counts[name]:>8d}  {share:7.1%}")
  return "\n".join(lines)


# --- Command line ---------------------------------------------------------------------------------

_FLAGS: dict[str, Any] = {}


def _define_flags() -> None:
  """Defines the flags when the command line runs, not on import: `main` defines `--workdir` too,
  and a process (a test session, a notebook) may import both modules."""
  if _FLAGS:
    return
  _FLAGS["workdir"] = flags.DEFINE_string("workdir", None, "Work dir of a finished training run, or its bundle/ folder.")
  _FLAGS["format"] = flags.DEFINE_enum("format", "csv", ["csv", "jsonl"], "Output format.")
  _FLAGS["output"] = flags.DEFINE_string(
      "output", None, "Output file ('-' = stdout); default WORKDIR/classify_<time>.<format>, never overwritten.")
  _FLAGS["batch_size"] = flags.DEFINE_integer("batch_size", 64, "Images per model call.", lower_bound=1)


_fail = cli.fail
_parse = cli.parse_flags


def predicted(clf: Classifier, files: Sequence[Path], batch_size: int) -> Iterator[list[tuple[Path, np.ndarray | str]]]:
  """Per batch of `files`, in order: `(path, label probabilities or the reason it could not be used)`.

  Decoding runs a batch ahead in threads (`decoded_batches`); a short last batch is padded to
  `batch_size`, so the model compiles for one shape.
  """
  for paths, decoded in decoded_batches(files, clf.decoder(), batch_size):
    good = [x for x in decoded if not isinstance(x, str)]
    probs = iter(())
    if good:
      batch = np.stack(good)
      if len(batch) < batch_size:  # pad the last batch: one shape, one compilation; eval mode is per image
        batch = np.concatenate([batch, np.zeros((batch_size - len(batch),) + batch.shape[1:], np.uint8)])
      probs = iter(clf.predict(batch)[:len(good)])
    yield [(path, x if isinstance(x, str) else next(probs)) for path, x in zip(paths, decoded)]


@dataclasses.dataclass
class FilePredictions:
  """What `predict_files` found: the classified files with their probabilities, and the failures."""

  label_names: tuple[str, ...]
  paths: list[Path]  # classified files, in the order found
  probs: np.ndarray  # (len(paths), len(label_names))
  failed: list[tuple[Path, str]]  # files that could not be used, with the reason
  ignored: list[Path]  # what the listing rule left out in the folders (`skipped` has the reasons)
  skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)

  @property
  def predicted(self) -> list[str]:
    """The most probable label of each classified file."""
    return [self.label_names[int(k)] for k in np.argmax(self.probs, axis=-1)] if len(self.paths) else []

  def counts(self) -> collections.Counter:
    """Classified files per predicted label (for `format_summary`)."""
    return collections.Counter(self.predicted)


def predict_files(clf: Classifier, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> FilePredictions:
  """Classifies image files and folders (recursively, as the command line does) in memory."""
  files, skipped = collect_files(paths)
  done: list[Path] = []
  probs: list[np.ndarray] = []
  failed: list[tuple[Path, str]] = []
  for rows in predicted(clf, files, batch_size):
    for path, p in rows:
      if isinstance(p, str):
        failed.append((path, p))
      else:
        done.append(path)
        probs.append(p)
  k = len(clf.label_names)
  return FilePredictions(clf.label_names, done, np.stack(probs) if probs else np.zeros((0, k), np.float32), failed,
                         [p for p, _ in skipped], skipped)


def classify_files(clf: Classifier, files: Sequence[Path], writer: _Writer, batch_size: int,
                   progress: bool = True) -> tuple[collections.Counter, list[tuple[Path, str]]]:
  """Classifies `files` in batches, writing one row each; returns counts per label and the failures."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  counts: collections.Counter = collections.Counter()
  failed: list[tuple[Path, str]] = []
  names = clf.label_names
  with tqdm(total=len(files), unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
    for rows in predicted(clf, files, batch_size):
      for path, x in rows:
        if isinstance(x, str):
          failed.append((path, x))
          writer.row(path, error=x)
          bar.write(f"skipped {path}: {x}", file=sys.stderr)
        else:
          label = names[int(np.argmax(x))]
          counts[label] += 1
          writer.row(path, label, x)
      bar.update(len(rows))
  return counts, failed


def main(argv: Sequence[str]) -> None:
  paths = list(argv[1:])
  fmt, batch_size = _FLAGS["format"].value, _FLAGS["batch_size"].value
  if not _FLAGS["workdir"].value:
    _fail("no work dir given: pass --workdir=DIR of a finished training run (or its bundle/ folder)")
  if not paths:
    _fail("no images given: pass image files or folders after the flags, e.g. ... --workdir=DIR photos/")
  workdir = Path(_FLAGS["workdir"].value).expanduser()
  absl_logging.set_verbosity(absl_logging.WARNING)  # stderr is for skipped files and the progress bar
  bundle_dir = _bundle_dir(workdir)  # a missing work dir is reported before any file is listed
  files, skipped = collect_files(paths)
  if not files:
    raise UserError(f"no image files ({', '.join(images.IMAGE_EXTENSIONS)}) found in {' '.join(paths)}"
                    + (f" ({len(skipped)} other files skipped by the listing rule)" if skipped else ""))
  clf = load(bundle_dir)
  # Never into a bundle folder given directly: that folder holds only the bundle's files.
  out_dir = bundle_dir.parent if bundle_dir == workdir else workdir
  output = _Output(_FLAGS["output"].value, out_dir, fmt)
  start = time.perf_counter()
  counts, failed = classify_files(clf, files, _Writer(output.stream, fmt, clf.label_names), batch_size)
  output.finish()
  where = output.name
  # With --output=- the rows own stdout; the summary goes where it cannot mix with them.
  out = sys.stderr if output.path is None else sys.stdout
  classified = sum(counts.values())
  seconds = time.perf_counter() - start
  print(f"\nclassified {classified} of {len(files)} image files in {seconds:.1f} s ({len(files) / seconds:.0f}"
        " images/s, decoding included, start-up excluded):", file=out)
  print(format_summary(counts, clf.label_names), file=out)
  if failed:
    print(f"skipped {len(failed)} unreadable files (listed above and in the output with their error)", file=out)
  if skipped:
    reasons = collections.Counter(reason for _, reason in skipped)
    print(f"ignored {len(skipped)} files of the folders by the listing rule ("
          + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) + ")", file=out)
    for path, reason in skipped[:20]:
      print(f"  {path}: {reason}", file=out)
    if len(skipped) > 20:
      print(f"  ... and {len(skipped) - 20} more", file=out)
  print(f"results: {where}", file=out)
  sys.exit(1 if failed else 0)


def run() -> None:
  host_devices.use_all_cores()  # before JAX starts: batches split over one CPU device per core
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
