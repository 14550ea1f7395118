"""Running a trained model on images: its bundle placed on a device mesh, files decoded as it was trained.

Evaluation (`runner`) and classification (`tools/classify.py`) run a bundle the same way: the model
is split once (the jitted logits function of `steps` merges it inside the trace, so NNX's Python
overhead is paid once), its state and feature statistics are replicated over the mesh, and each
device turns its own slice of the batch into features. Files are listed by the one listing rule
(`images.LISTING_RULE`) and decoded with the bundle's preprocessing in a thread pool, one batch ahead
of the model, so memory stays flat however many files there are.

  clf = inference.load("runs/mine")
  probs = clf.predict(np.stack([clf.prepare_file(p) for p in paths]))  # (N, len(clf.label_names)), calibrated
  found = inference.predict_files(clf, ["photos/"])                    # folders, in memory

Probabilities are calibrated with the bundle's temperature (`operating_points.Detector`); `outputs`
gives the raw logits and the open-set scores that classify turns into `p_fake`, `decision` and
`outlier` exactly as `mode=eval` does.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from freqforensics import bundle, sharding, steps
from freqforensics.data import crops, format_matching, images
from freqforensics.errors import UserError
from freqforensics.evaluation import operating_points, outliers
from freqforensics.models import heads


@dataclasses.dataclass(frozen=True)
class PlacedModel:
  """A bundle's model and statistics on `mesh`; `logits` / `probabilities` take batch-sharded uint8 images."""

  mesh: jax.sharding.Mesh
  put: Callable[[dict[str, Any]], dict[str, jax.Array]]  # host batch -> arrays sharded over the mesh
  _state: Any
  _stats: Any
  _logits: Callable[..., jax.Array]
  _probabilities: Callable[..., jax.Array]
  _outliers: Callable[[jax.Array], dict[str, jax.Array]] | None = None

  def outlier_scores(self, images: jax.Array) -> dict[str, jax.Array]:
    """The spectral open-set candidates `{name: (B,)}` (`outliers.spectral_scores`); {} without them."""
    return sharding.settle(self.mesh, self._outliers(images)) if self._outliers is not None else {}

  def logits(self, images: jax.Array) -> jax.Array:
    """Model outputs `(B, outputs)` of images `(B, H, W, C)` (a global array sharded over the mesh)."""
    return sharding.settle(self.mesh, self._logits(self._state, images, self._stats))

  def probabilities(self, images: jax.Array) -> jax.Array:
    """Probability of every label `(B, len(label_names))` (`heads.probabilities` of the logits)."""
    return sharding.settle(self.mesh, self._probabilities(self._state, images, self._stats))


def place(b: bundle.Bundle, mesh: jax.sharding.Mesh) -> PlacedModel:
  """Puts `b`'s model and statistics on `mesh` (replicated) and compiles nothing yet.

  The logits are `steps.make_logits_fn`'s, the one function training's evaluation uses too.
  """
  graphdef, state = nnx.split(b.model)
  logits = steps.make_logits_fn(graphdef, b.info.features, mesh)
  rep = sharding.replicated(mesh)
  feature_stats = jax.device_put(b.feature_stats, rep) if b.feature_stats is not None else None
  scores = outliers.scores_on(b.outlier_stats, mesh) if b.outlier_stats is not None else None
  return PlacedModel(
    mesh=mesh,
    put=sharding.make_put(mesh),
    _state=jax.device_put(state, rep),
    _stats=feature_stats,
    _logits=logits,
    _probabilities=jax.jit(lambda *args: heads.probabilities(logits(*args))),
    _outliers=scores,
  )


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
  if (path / "bundle.json").is_file():
    return path
  return path / "bundle"


@dataclasses.dataclass
class Classifier:
  """A loaded model with its preprocessing: decode files, predict label probabilities."""

  bundle: bundle.Bundle
  _placed: PlacedModel
  _match_names: dict[Path, str] | None = None  # set by `matching`: files' relative names for format matching

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
  def image_size(self) -> int:
    # Bundles written without preprocessing keys (older or hand-made ones) imply it by the input shape.
    return self.bundle.info.image_size

  @property
  def channels(self) -> int:
    return self.bundle.info.channels

  @property
  def crop(self) -> str:
    return self.bundle.info.crop

  @property
  def match_format(self) -> str:
    """The format matching of the bundle's training data (`format_matching`; '' for none or older bundles)."""
    return self.bundle.info.match_format

  def matching(self, names: dict[Path, str]) -> Classifier:
    """This classifier, decoding files with the bundle's format matching: each image goes through the JPEG
    step its training data went through, its quality drawn from `names[path]` (the file's path relative
    to the folder given, as preparation draws it from the path relative to the source directory)."""
    if not self.match_format:
      raise UserError(
        "this model was trained without format matching (its bundle has no match_format): there is nothing to"
        " apply; drop --match_format, or train with --config.data.match_format=jpeg:Q"
      )
    return dataclasses.replace(self, _match_names=dict(names))

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
    match = self.match_format if self._match_names is not None else ""
    return functools.partial(
      decode_file,
      size=self.image_size,
      channels=self.channels,
      crop=self.crop,
      match_format=match,
      names=self._match_names,
    )

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
    n = len(batch)
    if n == 0:
      return {"logits": np.zeros((0, self.bundle.info.outputs), np.float32)}
    pad = -n % self._placed.mesh.size  # the batch is split over the devices: pad it to a multiple of them
    if pad:
      batch = np.concatenate([batch, np.zeros((pad,) + batch.shape[1:], np.uint8)])
    images = self._placed.put({"image": batch})["image"]
    out = {"logits": self._placed.logits(images), **self._placed.outlier_scores(images)}
    return {k: np.asarray(sharding.gather(v))[:n] for k, v in out.items()}

  def predict(self, batch: np.ndarray) -> np.ndarray:
    """Calibrated label probabilities `(N, len(label_names))` of uint8 images `(N, H, W, C)` at the input shape."""
    logits = self.outputs(batch)["logits"]
    if not len(logits):
      return np.zeros((0, len(self.label_names)), np.float32)
    return self.detector.probabilities(logits).astype(np.float32)


def decode_file(
  path: str | os.PathLike,
  *,
  size: int,
  channels: int,
  crop: str,
  match_format: str = "",
  names: dict[Path, str] | None = None,
) -> np.ndarray | str:
  """The uint8 image `(size, size, channels)` of `path` by crop rule `crop`, or why it cannot be used.

  `match_format` (`format_matching`) adds its JPEG step, the quality drawn from `names[path]` (else
  the file's name).
  """
  quality = format_matching.quality(match_format, (names or {}).get(Path(path), Path(path).name))
  try:
    return images.load_image(path, size, channels, crop=crop, jpeg_quality=quality)
  except images.ImageDecodeError as e:
    return f"cannot use {path}: {e}"


def relative_names(paths: Sequence[str | os.PathLike], files: Sequence[Path]) -> dict[Path, str]:
  """Each of `files` (as `collect_files` found them under `paths`) -> its path relative to the first folder
  of `paths` that holds it, or its name for a file given directly: what format matching draws from."""
  folders = [Path(p).expanduser() for p in paths if Path(p).expanduser().is_dir()]
  names = {}
  for f in files:
    holder = next((d for d in folders if os.fspath(f).startswith(os.path.join(os.fspath(d), ""))), None)
    names[f] = images.relative_name(f, holder) if holder is not None else f.name
  return names


def load(workdir: str | os.PathLike, *, allow_unfinished: bool = False) -> Classifier:
  """Loads the model of `WORKDIR/bundle` (or of a bundle folder); raises `UserError` if there is none, or if
  its run has not finished and not `allow_unfinished` (`bundle.load`)."""
  loaded = bundle.load(bundle_dir(workdir), allow_unfinished=allow_unfinished)
  # All devices (one per CPU core under the command line), as evaluation.
  return Classifier(bundle=loaded, _placed=place(loaded, sharding.make_mesh()))


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


def decoded_batches(
  files: Sequence[Path],
  decode: Callable[[Path], np.ndarray | str],
  batch_size: int,
  workers: int | None = None,
) -> Iterator[tuple[list[Path], list[np.ndarray | str]]]:
  """Yields `(paths, decoded images or error reasons)` per batch, decoded in a thread pool.

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


def predicted(
  clf: Classifier, files: Sequence[Path], batch_size: int
) -> Iterator[list[tuple[Path, dict[str, np.ndarray] | str]]]:
  """Per batch of `files`, in order: `(path, outputs or the reason it could not be used)`; outputs are the
  file's `logits` and open-set scores (`Classifier.outputs`, one row).

  Decoding runs a batch ahead in threads (`decoded_batches`); a short last batch is padded to
  `batch_size`, so the model compiles for one shape.
  """
  for paths, decoded in decoded_batches(files, clf.decoder(), batch_size):
    good = [x for x in decoded if not isinstance(x, str)]
    rows: Iterator[dict[str, np.ndarray]] = iter(())
    if good:
      batch = np.stack(good)
      if len(batch) < batch_size:  # pad the last batch: one shape, one compilation; eval mode is per image
        batch = np.concatenate([batch, np.zeros((batch_size - len(batch),) + batch.shape[1:], np.uint8)])
      out = clf.outputs(batch)
      rows = iter([{k: v[i] for k, v in out.items()} for i in range(len(good))])
    yield [(path, x if isinstance(x, str) else next(rows)) for path, x in zip(paths, decoded)]


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
  logits: list[np.ndarray] = []
  failed: list[tuple[Path, str]] = []
  for rows in predicted(clf, files, batch_size):
    for path, p in rows:
      if isinstance(p, str):
        failed.append((path, p))
      else:
        done.append(path)
        logits.append(p["logits"])
  k = len(clf.label_names)
  return FilePredictions(
    clf.label_names,
    done,
    clf.detector.probabilities(np.stack(logits)).astype(np.float32) if logits else np.zeros((0, k), np.float32),
    failed,
    [p for p, _ in skipped],
    skipped,
  )
