"""What classification writes: one row per image file (CSV or JSON lines), the file it goes to, a summary.

Rows are `path, predicted, p_<label>..., error` (CSV) or JSON objects with the same keys (`error`
only where a file could not be used). The output file is written under a temporary name and renamed
into place when every row is in (`OutputFile`), so a run that crashes leaves nothing that blocks the
same command; a named output that exists is refused, the default name in a work dir is new each time.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from freqforensics.errors import UserError
from freqforensics.evaluation import inference


class RowWriter:
  """Rows as CSV (`path, predicted, p_<label>..., error`) or JSON lines (the same keys, `error` only if any)."""

  def __init__(self, stream: IO[str], fmt: str, label_names: Sequence[str]):
    self._stream = stream
    self._fmt = fmt
    self._prob_keys = [f"p_{name}" for name in label_names]
    self._csv = None
    if fmt == "csv":
      self._csv = csv.writer(stream)
      self._csv.writerow(["path", "predicted", *self._prob_keys, "error"])

  def row(
    self, path: Path, predicted: str | None = None, probs: np.ndarray | None = None, error: str | None = None
  ) -> None:
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


class OutputFile:
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
      raise UserError(
        f"output file {self.path} was created by something else while classifying; the results are in"
        f" {self._partial(self.path)}"
      )
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


def classify_files(
  clf: inference.Classifier, files: Sequence[Path], writer: RowWriter, batch_size: int, progress: bool = True
) -> tuple[collections.Counter, list[tuple[Path, str]]]:
  """Classifies `files` in batches, writing one row each; returns counts per label and the failures."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  counts: collections.Counter = collections.Counter()
  failed: list[tuple[Path, str]] = []
  names = clf.label_names
  with tqdm(total=len(files), unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
    for rows in inference.predicted(clf, files, batch_size):
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
