"""Classifying images with a trained model in memory: `load` a run's bundle as a `Classifier`, then
Run by `python -m freqforensics.tools.classify` (with `predictions`).
`predict` uint8 images or `predict_files` over files and folders, read by the bundle's rule or another
(`reading`: resized by the crop rule, or as native-resolution patches whose logits are aggregated).
The layers below it: `data.decode` (files decoded on the host with the bundle's preprocessing),
`batches` (padded batches of files through the model) and `placement` (the model on a device mesh).
Probabilities are calibrated with the bundle's temperature (`operating_points.Detector`).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from freqforensics import bundle, sharding
from freqforensics.data import crops, decode, images, patches
from freqforensics.errors import UserError
from freqforensics.evaluation import batches, operating_points, placement
from freqforensics.evaluation import reading as reading_lib


def bundle_dir(workdir: str | os.PathLike) -> Path:
  """`WORKDIR/bundle`, or `workdir` itself when it is a bundle folder."""
  path = Path(workdir).expanduser()
  if not path.exists():
    raise UserError(f"work dir {path} does not exist: give --workdir=DIR of a finished training run")
  if not path.is_dir():
    raise UserError(
      f"--workdir={path} is a file, not a work dir or bundle folder: give the folder of a finished training run"
      " (or its bundle/ folder)"
    )
  return path if (path / "bundle.json").is_file() else path / "bundle"


@dataclasses.dataclass
class Classifier:
  """A loaded model with its preprocessing: decode files, predict label probabilities."""

  bundle: bundle.Bundle
  _placed: placement.PlacedModel
  _match_names: dict[Path, str] | None = None  # set by `matching`: files' relative names for format matching
  reading: reading_lib.Reading = reading_lib.Reading()  # how files are read (`load` sets the bundle's rule)

  # --- what the bundle says (its bundle.json): the only reads of its info in this module ---
  @property
  def label_names(self) -> tuple[str, ...]:
    return self.bundle.label_names

  @property
  def detector(self) -> operating_points.Detector:
    """How logits become calibrated probabilities, p_fake and a decision (the bundle's operating point)."""
    return operating_points.Detector.from_info(self.bundle.info)

  @property
  def input_shape(self) -> tuple[int, ...]:
    """The shape of one image the model takes, `(H, W, C)`."""
    return self.bundle.info.input_shape

  @property
  def num_outputs(self) -> int:
    """The width of the model's logits."""
    return int(self.bundle.info.outputs)

  # --- decoding ---
  def matching(self, names: dict[Path, str]) -> Classifier:
    """This classifier, decoding files with the bundle's format matching: each image goes through the JPEG
    step its training data went through, its quality drawn from `names[path]` (the file's path relative
    to the folder given, as preparation draws it from the path relative to the source directory)."""
    if not self.bundle.info.match_format:
      raise UserError(
        "this model was trained without format matching (its bundle has no match_format): there is nothing to"
        " apply; drop --match_format, or train with --config.data.match_format=jpeg:Q"
      )
    return dataclasses.replace(self, _match_names=dict(names))

  def decoder(self) -> decode.Decoder:
    """`path -> uint8 image (or its patches, reading natively) or decode.Unreadable`, by `reading`."""
    info, r = self.bundle.info, self.reading
    if info.crop not in crops.CROPS:
      raise UserError(f"the bundle has an unknown crop rule {info.crop!r}; this version knows {', '.join(crops.CROPS)}")
    match = info.match_format if self._match_names is not None else ""
    return decode.Decoder(
      info.image_size, info.channels, info.crop, match, self._match_names, r.read, r.patch_stride, r.max_patches
    )

  def prepare_file(self, path: str | os.PathLike) -> np.ndarray:
    """`path` as the model reads it, uint8: `(H, W, C)` by the crop rule (`crops`: `center` centre-crops and
    resizes, `none` refuses another size), or its patches `(P, H, W, C)` reading natively; raises
    `ImageDecodeError`."""
    x = self.decoder()(path)
    if isinstance(x, decode.Unreadable):
      raise images.ImageDecodeError(str(x))
    return x.images if isinstance(x, patches.Patches) else x

  # --- the model ---
  def outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
    """`logits` `(N, outputs)` and the spectral open-set scores `(N,)` of uint8 images `(N, H, W, C)`."""
    batch = np.asarray(batch)
    expected = (None,) + self.input_shape
    if batch.ndim != 4 or batch.shape[1:] != self.input_shape:
      raise ValueError(
        f"expected images shaped (N, {', '.join(map(str, self.input_shape))}), got {batch.shape};"
        f" decode files with prepare_file (expected {expected})"
      )
    if batch.dtype != np.uint8:
      # The features scale by the uint8 range: floats in 0..1 would silently give garbage.
      raise ValueError(f"expected uint8 images, got {batch.dtype}")
    if not len(batch):
      return {"logits": np.zeros((0, self.num_outputs), np.float32)}
    return self._placed.outputs(batch)

  def predict(self, batch: np.ndarray) -> np.ndarray:
    """Calibrated label probabilities `(N, len(label_names))` of uint8 images `(N, H, W, C)` at the input shape."""
    return self.calibrated(self.outputs(batch)["logits"])

  def calibrated(self, logits: np.ndarray) -> np.ndarray:
    """Calibrated label probabilities `(N, len(label_names))` of logits `(N, outputs)` (`detector`)."""
    if not len(logits):
      return np.zeros((0, len(self.label_names)), np.float32)
    return self.detector.probabilities(logits).astype(np.float32)


def load(
  workdir: str | os.PathLike,
  *,
  allow_unfinished: bool = False,
  read: str | None = None,
  aggregate: str | None = None,
  patch_stride: int | None = None,
  max_patches: int | None = None,
) -> Classifier:
  """Loads the model of `WORKDIR/bundle` (or of a bundle folder); raises `UserError` if there is none, if
  its run has not finished and not `allow_unfinished` (`bundle.load`), or for a bad reading rule.

  Args:
    workdir: a finished run's work dir, or its bundle folder.
    allow_unfinished: use the bundle of a run that has not finished.
    read, aggregate, patch_stride, max_patches: the reading rule's parts instead of the bundle's
      (`reading.of`); None keeps the bundle's (`resize` for bundles that store none).
  """
  loaded = bundle.load(bundle_dir(workdir), allow_unfinished=allow_unfinished)
  rule = reading_lib.of(loaded.info, read, aggregate, patch_stride, max_patches)
  mesh = sharding.make_mesh()  # all devices (one per CPU core under the command line), as evaluation
  return Classifier(bundle=loaded, _placed=placement.place(loaded, mesh), reading=rule)


@dataclasses.dataclass
class FilePredictions:
  """What `predict_files` found: the classified files with their probabilities, and the failures."""

  label_names: tuple[str, ...]
  paths: list[Path]  # classified files, in the order found
  probs: np.ndarray  # (len(paths), len(label_names))
  failed: list[tuple[Path, str]]  # files that could not be used, with the reason
  ignored: list[Path]  # what the listing rule left out in the folders (`skipped` has the reasons)
  skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
  patches: list[int] = dataclasses.field(default_factory=list)  # patches read per classified file (1: resized)

  @property
  def predicted(self) -> list[str]:
    """The most probable label of each classified file."""
    return [self.label_names[int(k)] for k in np.argmax(self.probs, axis=-1)] if len(self.paths) else []

  def counts(self) -> collections.Counter:
    """Classified files per predicted label (for `format_summary`)."""
    return collections.Counter(self.predicted)


def predict_files(clf: Classifier, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> FilePredictions:
  """Classifies image files and folders (recursively, as the command line does) in memory."""
  files, skipped = decode.collect_files(paths)
  done, logits, read, failed = [], [], [], []  # files classified, their logits and patches read; failures
  for rows in batches.predicted(files, clf.decoder(), clf.outputs, batch_size, clf.reading.aggregate):
    for path, p in rows:
      if isinstance(p, decode.Unreadable):
        failed.append((path, str(p)))
      else:
        done.append(path)
        logits.append(p["logits"])
        read.append(int(p.get("patches", 1)))
  probs = clf.calibrated(np.stack(logits) if logits else np.zeros((0, clf.num_outputs), np.float32))
  return FilePredictions(clf.label_names, done, probs, failed, [p for p, _ in skipped], skipped, read)
