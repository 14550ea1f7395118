"""What classification writes: one row per image file (CSV or JSON lines), the file it goes to, a summary.
Run by `python -m freqforensics.tools.classify`.

Rows are `path, predicted, p_<label>..., p_fake, decision, outlier_score, outlier, error` (CSV) or JSON
objects with the same keys (`error` only where a file could not be used). Probabilities are calibrated
(the bundle's temperature); `p_fake` and `decision` (`fake` / `real` at the bundle's threshold) appear
for detectors (a model with a real class), `outlier_score` and `outlier` (1 when the image is unlike
the training data) for bundles with the open-set score; all computed as `mode=eval` computes them
(`operating_points.Detector`, `outliers.flags`). Reading natively, `patches` (the number read) comes
before `error`, and JSON lines may carry each patch's logits and corner (`patch_logits`, `patch_corners`).
The output file appears whole when every row is in (`OutputFile`); a named output that exists is
refused, the default name in a work dir is new each time.
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

from freqforensics import text
from freqforensics.data import decode
from freqforensics.errors import UserError
from freqforensics.evaluation import batches, inference, operating_points, outliers


class RowWriter:
  """Rows as CSV or JSON lines: path, predicted, p_<label>..., [p_fake, decision], [outlier_score, outlier],
  [patches], error.

  Args:
    stream: where the rows go.
    fmt: `csv` or `jsonl`.
    detector: the bundle's operating point (`Classifier.detector`).
    outlier_block: the bundle's open-set score (`BundleInfo.outliers`), if any.
    native: images are read as patches: rows gain `patches`.
    patch_logits: JSON lines gain each patch's logits and top-left corner (reading natively).
  """

  def __init__(
    self,
    stream: IO[str],
    fmt: str,
    detector: operating_points.Detector,
    outlier_block: dict[str, Any] | None = None,
    native: bool = False,
    patch_logits: bool = False,
  ):
    self._stream = stream
    self._patch_logits = patch_logits
    self._fmt = fmt
    self._detector = detector
    self._outliers = outlier_block
    self._prob_keys = [f"p_{name}" for name in detector.label_names]
    self.columns = ["path", "predicted", *self._prob_keys]
    if detector.real is not None:
      self.columns += ["p_fake", "decision"]
    if outlier_block:
      self.columns += ["outlier_score", "outlier"]
    self.columns += ["patches"] if native else []
    self.columns.append("error")
    self._csv = None
    if fmt == "csv":
      self._csv = csv.writer(stream)
      self._csv.writerow(self.columns)

  def values(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The row's values of one file's outputs (its `logits` and open-set scores)."""
    logits = np.asarray(outputs["logits"], np.float64)[None]
    probs = self._detector.probabilities(logits)[0]
    record: dict[str, Any] = {"predicted": self._detector.label_names[int(np.argmax(probs))]}
    record.update({k: float(p) for k, p in zip(self._prob_keys, probs)})
    if self._detector.real is not None:
      record["p_fake"] = float(self._detector.p_fake(logits)[0])
      record["decision"] = "fake" if bool(self._detector.decide(logits)[0]) else "real"
    if self._outliers:
      scores = outliers.all_scores({k: np.asarray(outputs[k])[None] for k in outliers.SPECTRAL}, logits)
      value, flag = outliers.flags(scores, self._outliers)
      record["outlier_score"], record["outlier"] = float(value[0]), int(flag[0])
    if "patches" in self.columns:
      record["patches"] = int(outputs["patches"])
    if self._patch_logits:
      record["patch_logits"] = np.asarray(outputs["patch_logits"], float).tolist()
      record["patch_corners"] = np.asarray(outputs["patch_corners"]).tolist()
    return record

  def row(self, path: Path, outputs: dict[str, np.ndarray] | None = None, error: str | None = None) -> dict[str, Any]:
    """Writes one file's row (its outputs, or the error that kept it from being classified); returns its values."""
    record: dict[str, Any] = {"path": str(path)}
    if error is None:
      record.update(self.values(outputs))
    if self._csv is not None:
      cells = []
      for key in self.columns:
        v = error if key == "error" else record.get(key)
        cells.append("" if v is None else (f"{v:.8g}" if isinstance(v, float) else str(v)))
      self._csv.writerow(cells)
    else:
      self._stream.write(json.dumps(record if error is None else dict(record, error=error)) + "\n")
    return record


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
  shown = {n: text.for_terminal(n) for n in label_names}
  width = max(len(s) for s in shown.values())
  lines = []
  for name in label_names:
    share = counts[name] / total if total else 0.0
    lines.append(f"  {shown[name]:<{width}}  {counts[name]:>8d}  {share:7.1%}")
  return "\n".join(lines)


def classify_files(
  clf: inference.Classifier, files: Sequence[Path], writer: RowWriter, batch_size: int, progress: bool = True
) -> tuple[collections.Counter, list[tuple[Path, str]], collections.Counter]:
  """Classifies `files` in batches, writing one row each; returns counts per label, the failures, and the
  counts of decisions (`fake`, `real`), outliers (`outlier`) and images whose patch grid was thinned (`thinned`).

  Args:
    clf: the loaded model (`inference.load`), decoding with its bundle's preprocessing.
    files: image files, in the order their rows are written (`decode.collect_files`).
    writer: where each file's row goes.
    batch_size: images per model call; the last batch is padded to it (one compilation).
    progress: show a progress bar on stderr (skipped files are reported there either way).
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  counts: collections.Counter = collections.Counter()
  decisions: collections.Counter = collections.Counter()
  failed: list[tuple[Path, str]] = []
  with tqdm(total=len(files), unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
    for rows in batches.predicted(files, clf.decoder(), clf.outputs, batch_size, clf.reading.aggregate):
      for path, x in rows:
        if isinstance(x, decode.Unreadable):
          failed.append((path, error := str(x)))
          writer.row(path, error=error)
          bar.write(f"skipped {path}: {error}", file=sys.stderr)
        else:
          record = writer.row(path, x)
          counts[record["predicted"]] += 1
          if "decision" in record:
            decisions[record["decision"]] += 1
          decisions["outlier"] += record.get("outlier", 0)
          decisions["thinned"] += int(x.get("grid_patches", 0) > x.get("patches", 0))
      bar.update(len(rows))
  return counts, failed, decisions


def format_decisions(decisions: collections.Counter, detector: operating_points.Detector, block: dict | None) -> str:
  """The detector's part of classify's summary: how many files were called fake and flagged as outliers."""
  total = decisions["fake"] + decisions["real"]
  if detector.real is None or not total:
    return ""
  lines = [
    f"decision at {text.for_terminal(detector.describe())}:",
    f"  fake {decisions['fake']:>8d}  {decisions['fake'] / total:7.1%}",
  ]
  if block:
    lines.append(
      f"  outliers {decisions['outlier']:>4d}  {decisions['outlier'] / total:7.1%}  (score {text.for_terminal(block['score'])}, threshold"
      f" set to flag at most {block['fpr']:.0%} of real validation images)"
    )
  return "\n".join(lines)
