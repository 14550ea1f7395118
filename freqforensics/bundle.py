"""The model bundle: everything inference needs, in plain files, loaded without executing code.

`bundle.json` (described by `BundleInfo`, the one schema, with defaults for older bundles), `params.npz`
(`allow_pickle=False`), `stats_<features>.npz`, and for detectors `outliers.npz` and `MODEL_CARD.md`.
`load` checks everything before use: finite numbers, thresholds that agree, the bundle's own files (no
links), and refuses the bundle of an unfinished run (`real_label` without `calibration`) unless asked.
What each file holds: docs/outputs.md; the rules: docs/reliability.md.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
import scipy.special
from flax import nnx

from freqforensics import models, spectral, stats
from freqforensics.data import patches
from freqforensics.errors import UserError
from freqforensics.files import atomic

_FORMAT_VERSION = 1
CARD = "MODEL_CARD.md"
OUTLIERS = "outliers.npz"
NOTE_UNCALIBRATED = (
  "this bundle was written before calibration, thresholds and the open-set score existed: its probabilities"
  " are uncalibrated, the decision is p_fake > 0.5 and there is no outlier score (train again to get them)"
)
NOTE_UNFINISHED = (
  "the run that wrote this bundle has not finished (killed, crashed or still training): this is its best"
  " epoch so far, its probabilities are uncalibrated, the decision is p_fake > 0.5 and there is no outlier"
  " score (rerun its training command to finish it)"
)
THRESHOLD_TOLERANCE = 1e-6  # |sigmoid(threshold_logit) - threshold| allowed: both are written from one number


class _Unset(enum.Enum):
  UNSET = "unset"


UNSET = _Unset.UNSET  # `BundleInfo.real_label` of a bundle from before real_label existed


# The order of bundle.json's keys (then format_version and stats), as training has always written them.
_JSON_ORDER = (
  "model",
  "variant",
  "features",
  "input_shape",
  "feature_shape",
  "outputs",
  "label_names",
  "image_size",
  "channels",
  "crop",
  "match_format",
  "read",
  "aggregate",
  "patch_stride",
  "max_patches",
  "dataset",
  "augment",
  "real_label",
  "calibration",
  "outliers",
  "model_card",
)


@dataclasses.dataclass(frozen=True)
class BundleInfo:
  """`bundle.json`: what the model is, what it takes, how its inputs are prepared and, for a detector, its
  operating point. Defaults are those of bundles written before a field existed; `from_json` checks it."""

  model: str
  features: str  # e.g. "dct_log", "wpt_log-haar-l3"
  input_shape: tuple[int, int, int]  # the images the bundle takes (H, W, C)
  outputs: int
  label_names: tuple[str, ...]
  variant: str = "paper"
  feature_shape: tuple[int, ...] = ()  # what its model takes (differs for azimuthal); () means input_shape
  image_size: int = 0  # 0 means input_shape's
  channels: int = 0  # 0 means input_shape's
  crop: str = "center"
  match_format: str = ""  # format matching of its data (`format_matching`); "" for data stored as decoded
  # How it reads an image (`evaluation.reading`): `resize` by the crop rule (bundles from before this), or
  # `native` patches of its side, aggregated; written only when not these defaults.
  read: str = "resize"
  aggregate: str = "mean"
  patch_stride: int = 0  # 0 means image_size
  max_patches: int = 0  # 0 means `patches.DEFAULT_MAX_PATCHES`
  dataset: str = ""  # the prepared dataset it was trained on
  augment: dict[str, Any] | None = None
  real_label: int | None | _Unset = UNSET  # the real class's index; None: no class is real (no detector)
  calibration: dict[str, Any] | None = None  # `operating_points.fit`
  outliers: dict[str, Any] | None = None  # `outliers.info`; its arrays are in OUTLIERS
  model_card: dict[str, Any] | None = None  # `model_card.build`
  stats: str | None = None  # the feature statistics' file in the bundle folder (set by `save`)

  def __post_init__(self):
    shape = tuple(self.input_shape)
    object.__setattr__(self, "input_shape", shape)
    object.__setattr__(self, "label_names", tuple(self.label_names))
    object.__setattr__(self, "feature_shape", tuple(self.feature_shape) or shape)
    object.__setattr__(self, "image_size", self.image_size or shape[0])
    object.__setattr__(self, "channels", self.channels or shape[-1])
    object.__setattr__(self, "patch_stride", self.patch_stride or self.image_size)
    object.__setattr__(self, "max_patches", self.max_patches or patches.DEFAULT_MAX_PATCHES)

  @property
  def finished(self) -> bool:
    """False for the description training writes before the run has finished: the best epoch so far has
    `real_label` (None or an index) but no `calibration` yet, which the finished run always adds. A bundle
    of a version from before both has neither."""
    return self.real_label is UNSET or self.calibration is not None

  def prepare_options(self, *, max_pixels: int, num_threads: int = 0):
    """`preparation.PrepareOptions` that prepare class folders (all into `test`) as this model's inputs."""
    from freqforensics.data import preparation  # pylint: disable=g-import-not-at-top

    return preparation.PrepareOptions(
      image_size=self.image_size,
      channels=self.channels,
      split=(0.0, 0.0, 1.0),
      crop=self.crop,
      max_pixels=max_pixels,
      num_threads=num_threads,
    )

  def to_json(self) -> dict[str, Any]:
    """The JSON object of `bundle.json` (the detector fields only where set)."""
    out: dict[str, Any] = {}
    default_reading = (self.read, self.aggregate, self.patch_stride, self.max_patches) == (
      "resize",
      "mean",
      self.image_size,
      patches.DEFAULT_MAX_PATCHES,
    )
    for name in _JSON_ORDER:
      v = getattr(self, name)
      if name in ("calibration", "outliers", "model_card") and v is None or v is UNSET:
        continue
      if name in ("read", "aggregate", "patch_stride", "max_patches") and default_reading:
        continue
      out[name] = list(v) if isinstance(v, tuple) else v
    return dict(out, format_version=_FORMAT_VERSION, stats=self.stats)

  @classmethod
  def from_json(cls, directory: Path, info: Any) -> BundleInfo:
    """`bundle.json`'s object checked before anything is built from it; `UserError` (one line) if it is not
    one `save` writes."""
    _validate(directory, info)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in info.items() if k in names})


@dataclasses.dataclass
class Bundle:
  """A loaded bundle: the model (in eval mode), its feature statistics and its description."""

  model: nnx.Module
  feature_stats: spectral.FeatureStats | None
  info: BundleInfo
  outlier_stats: Any = None  # `evaluation.outliers.OutlierStats` of the open-set score, if the bundle has one

  @property
  def label_names(self) -> tuple[str, ...]:
    return self.info.label_names

  @property
  def finished(self) -> bool:
    """False for the bundle of a run that has not finished (`BundleInfo.finished`)."""
    return self.info.finished

  @property
  def note(self) -> str | None:
    """What the bundle lacks (no calibration, threshold or outlier score) and why; None for a current one."""
    if self.info.calibration is not None:
      return None
    return NOTE_UNCALIBRATED if self.info.finished else NOTE_UNFINISHED


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
  out = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "/"))
    else:
      out[key] = np.asarray(jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v)
  return out


def _unflatten_into(tree: dict, arrays: dict[str, np.ndarray], directory: Path, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out[k] = _unflatten_into(v, arrays, directory, key + "/")
    elif key in arrays:
      if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key):
        out[k] = jax.random.wrap_key_data(arrays[key], impl=jax.random.key_impl(v))
      elif arrays[key].shape != tuple(v.shape) or not np.issubdtype(arrays[key].dtype, np.number):
        raise _bad(
          directory,
          f"params.npz has {key} of shape {arrays[key].shape} ({arrays[key].dtype}), the model"
          f" described by bundle.json needs {tuple(v.shape)}",
        )
      elif not np.isfinite(arrays[key]).all():  # NaN weights make every score NaN: every image "real"
        raise _bad(directory, f"params.npz has non-finite values (NaN or infinity) in {key}")
      else:
        out[k] = arrays[key].astype(v.dtype)
    else:
      raise _bad(directory, f"params.npz lacks the array {key}: it was written for another model")
  return out


def model_state(model: nnx.Module) -> dict:
  """The parameters and batch statistics of a model as a nested dict of arrays."""
  return nnx.to_pure_dict(nnx.state(model, (nnx.Param, nnx.BatchStat)))


def files(directory: str | os.PathLike, stats_path: Path | None) -> list[Path]:
  """The files `save` writes in `directory` (for the work dir's ownership record)."""
  directory = Path(directory)
  own = [directory / "params.npz", directory / "bundle.json", directory / OUTLIERS, directory / CARD]
  return own + ([directory / stats_path.name] if stats_path else [])


def save(
  directory: str | os.PathLike,
  model: nnx.Module,
  info: BundleInfo,
  stats_path: Path | None,
  *,
  outlier_stats: Any = None,
  card: str | None = None,
) -> None:
  """Writes the bundle's files, each atomically; `bundle.json` last, so a bundle that has it is whole.

  Only the bundle's own files are written: anything else in the folder is left alone.

  Args:
    directory: the bundle folder (created if needed).
    model: the model whose parameters and batch statistics go to `params.npz`.
    info: the description (`bundle.json`); its `stats` is set from `stats_path`.
    stats_path: the feature statistics file, copied in (None for features that need none).
    outlier_stats: `outliers.OutlierStats` of the open-set score, to `outliers.npz`.
    card: the model card as markdown, to `MODEL_CARD.md`.
  """
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  atomic.write_with(directory / "params.npz", lambda p: np.savez(p, **_flatten(model_state(model))))
  if stats_path is not None:
    atomic.write_bytes(directory / stats_path.name, stats_path.read_bytes())
  if outlier_stats is not None:
    outlier_stats.save(directory / OUTLIERS)
  if card is not None:
    atomic.write_text(directory / CARD, card)
  info = dataclasses.replace(info, stats=stats_path.name if stats_path else None)
  atomic.write_json(directory / "bundle.json", info.to_json())


def _bad(directory: Path, what: str) -> UserError:
  return UserError(
    f"the model bundle {directory} is damaged or edited: {what}; use the bundle/ folder of a finished"
    " run as it was written (or train again)"
  )


def _positive_ints(value: Any, n: int | None = None) -> bool:
  return (
    isinstance(value, list)
    and (n is None or len(value) == n)
    and len(value) > 0
    and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
  )


def _validate(directory: Path, info: Any) -> None:
  """Checks `bundle.json`'s object (`BundleInfo.from_json`); raises `UserError`."""
  from freqforensics.data import crops, format_matching  # pylint: disable=g-import-not-at-top

  if not isinstance(info, dict):
    raise _bad(directory, "bundle.json is not a JSON object")
  if info.get("format_version") != _FORMAT_VERSION:
    raise UserError(
      f"{directory / 'bundle.json'} has bundle format {info.get('format_version')!r}, this version"
      f" reads {_FORMAT_VERSION}: retrain, or use the freqforensics version that wrote it"
    )
  model = info.get("model")
  if model not in models.MODEL_NAMES:
    raise _bad(directory, f"model {model!r} is not one of {', '.join(models.MODEL_NAMES)}")
  if info.get("variant", "paper") not in models.VARIANTS:
    raise _bad(directory, f"model variant {info.get('variant')!r} is not one of {', '.join(models.VARIANTS)}")
  labels = info.get("label_names")
  if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(n, str) and n for n in labels):
    raise _bad(directory, f"label_names {labels!r} is not a list of two or more names")
  if len(set(labels)) != len(labels):
    raise _bad(directory, f"label_names {labels!r} repeats a name")
  if info.get("outputs") != models.num_outputs(len(labels)):
    raise _bad(
      directory,
      f"{len(labels)} label names need {models.num_outputs(len(labels))} model outputs, but"
      f" outputs is {info.get('outputs')!r}",
    )
  if not _positive_ints(info.get("input_shape"), 3) or info["input_shape"][-1] not in (1, 3):
    raise _bad(directory, f"input_shape {info.get('input_shape')!r} is not (H, W, 1 or 3)")
  if "feature_shape" in info and not _positive_ints(info["feature_shape"]):
    raise _bad(directory, f"feature_shape {info['feature_shape']!r} is not a list of positive integers")
  h, w, c = info["input_shape"]
  if info.get("image_size", h) != h or info.get("channels", c) != c or h != w:
    raise _bad(
      directory,
      f"image_size {info.get('image_size')!r} / channels {info.get('channels')!r} do not match"
      f" input_shape {info['input_shape']}",
    )
  features = info.get("features")
  try:
    spectral.parse_feature(str(features))
    shape = spectral.feature_shape(str(features), tuple(info["input_shape"]))
  except (ValueError, TypeError) as e:
    raise _bad(directory, f"features {features!r}: {e}") from None
  if list(shape) != list(info.get("feature_shape", shape)):
    raise _bad(
      directory,
      f"feature_shape {info['feature_shape']} is not the shape of {features} features of"
      f" {info['input_shape']} images ({list(shape)})",
    )
  if not isinstance(info.get("dataset", ""), str):  # a path: commands open it (`reader.open_prepared` checks it)
    raise _bad(directory, f"dataset {info['dataset']!r} is not the path of a prepared dataset")
  if info.get("crop", "center") not in crops.CROPS:
    raise _bad(directory, f"crop rule {info.get('crop')!r} is not one of {', '.join(crops.CROPS)}")
  from freqforensics.evaluation import reading  # pylint: disable=g-import-not-at-top

  rule = [info.get(k, d) for k, d in (("read", "resize"), ("aggregate", "mean"), ("patch_stride", h))]
  if why := reading.problem(*rule, info.get("max_patches", patches.DEFAULT_MAX_PATCHES), h):
    raise _bad(directory, why)
  try:  # bundles from before format matching have no match_format: their data were stored as decoded
    format_matching.check(info.get("match_format", ""), "match_format")
  except UserError as e:
    raise _bad(directory, str(e)) from None
  name = info.get("stats")
  if spectral.needs_stats(str(features)) and not name:
    raise _bad(directory, f"{features} features need feature statistics, but bundle.json names none")
  if name is not None and (
    not isinstance(name, str) or Path(name).name != name or name.startswith(".") or not (directory / name).is_file()
  ):
    raise _bad(directory, f"stats {name!r} must name a file inside the bundle folder (e.g. stats_dct_log.npz)")
  _validate_detector(directory, info, labels)


def _number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_detector(directory: Path, info: dict[str, Any], labels: list[str]) -> None:
  """Checks the optional detector fields: `real_label`, `calibration`, `outliers`, `model_card`."""
  from freqforensics.evaluation import operating_points, outliers  # pylint: disable=g-import-not-at-top

  real = info.get("real_label")
  if real is not None and (not isinstance(real, int) or isinstance(real, bool) or not 0 <= real < len(labels)):
    raise _bad(directory, f"real_label {real!r} is not the index of one of the labels {labels}")
  c = info.get("calibration")
  if c is not None:
    if not isinstance(c, dict) or not _number(c.get("temperature")) or c["temperature"] <= 0:
      raise _bad(directory, f"calibration {c!r} needs a positive temperature")
    if "threshold_logit" in c or real is not None:
      if not _number(c.get("threshold_logit")) or not _number(c.get("threshold")) or not 0 <= c["threshold"] <= 1:
        raise _bad(directory, f"calibration needs a threshold in [0, 1] and a finite threshold_logit, got {c!r}")
      # Decisions use threshold_logit, reports show threshold: they must be one number.
      if abs(float(scipy.special.expit(c["threshold_logit"])) - c["threshold"]) > THRESHOLD_TOLERANCE:
        raise _bad(
          directory,
          f"calibration's threshold {c['threshold']!r} and threshold_logit {c['threshold_logit']!r} disagree"
          f" (sigmoid(threshold_logit) = {float(scipy.special.expit(c['threshold_logit'])):.6g})",
        )
      try:
        operating_points.parse_policy(c.get("policy"))
      except UserError:
        raise _bad(directory, f"calibration policy {c.get('policy')!r} is not a threshold policy") from None
  o = info.get("outliers")
  if o is not None:
    ok = (
      isinstance(o, dict)
      and o.get("file") == OUTLIERS
      and (directory / OUTLIERS).is_file()
      and o.get("score") in outliers.CANDIDATES
      and isinstance(o.get("thresholds"), dict)
      and all(k in outliers.CANDIDATES and _number(v) for k, v in o["thresholds"].items())
      and o["score"] in o["thresholds"]
      and _number(o.get("fpr"))
      and 0 < o["fpr"] < 1
      and real is not None
    )
    if not ok:
      raise _bad(
        directory,
        f"outliers must name {OUTLIERS} in the bundle folder, a score of {', '.join(outliers.CANDIDATES)} with"
        " its threshold, an fpr in (0, 1), and the bundle a real_label",
      )
  card = info.get("model_card")
  if card is not None:
    from freqforensics.evaluation import model_card  # pylint: disable=g-import-not-at-top

    if problem := model_card.problem(card):
      raise _bad(directory, f"model_card {problem}")


def _no_link(directory: Path, name: str) -> None:
  """A bundle reads only its own files: a link (to another run's statistics, say) is refused, not followed."""
  if (directory / name).is_symlink():
    raise _bad(
      directory,
      f"{name} is a link to {os.readlink(directory / name)}, not a file of the bundle; put the file itself there",
    )


def load(directory: str | os.PathLike, *, allow_unfinished: bool = False) -> Bundle:
  """Loads a bundle written by `save`; raises `UserError` naming what is missing or wrong.

  Everything is checked before it is used: the description (`BundleInfo.from_json`), that no file it reads is a
  link, that `params.npz` holds plain, finite arrays (no pickled objects) of exactly the model's
  shapes, and that the statistics are finite and fit the features. The bundle of a run that has not
  finished (`BundleInfo.finished`) is refused unless `allow_unfinished`.
  """
  directory = Path(directory)
  path = directory / "bundle.json"
  if not path.is_file():
    raise UserError(f"{directory} holds no model bundle (bundle.json): give the bundle/ folder of a finished run")
  _no_link(directory, "bundle.json")
  info = BundleInfo.from_json(directory, atomic.read_json(path, "the description of a model bundle"))
  for name in ("params.npz", info.stats, OUTLIERS if info.outliers else None):
    if name:
      _no_link(directory, name)
  if not info.finished and not allow_unfinished:
    raise UserError(
      f"the run that wrote {directory} has not finished (killed, crashed or still training): its bundle holds"
      " the best epoch so far, with no calibration, threshold or outlier score; rerun its training command to"
      " finish it (classify and explain take --allow_unfinished to use it as it is)"
    )
  # Bundles from before `feature_shape` existed had image-shaped features only (its default).
  feature_shape = info.feature_shape
  model = models.create_model(info.model, feature_shape, info.outputs, l1=0.0, l2=0.0, variant=info.variant)
  try:
    with np.load(directory / "params.npz", allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except FileNotFoundError:
    raise _bad(directory, "params.npz is missing") from None
  except ValueError as e:  # object arrays need pickle, which is never allowed
    raise _bad(directory, f"params.npz holds something other than plain arrays ({e})") from None
  except (OSError, EOFError, zipfile.BadZipFile) as e:
    raise _bad(directory, f"params.npz cannot be read ({e})") from None
  params = nnx.state(model, (nnx.Param, nnx.BatchStat))
  nnx.replace_by_pure_dict(params, _unflatten_into(nnx.to_pure_dict(params), arrays, directory))
  nnx.update(model, params)
  feature_stats = None
  if info.stats:
    try:
      feature_stats = stats.load(directory / info.stats, info.features)
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
      raise _bad(directory, f"{info.stats} cannot be used ({e})") from None
    if tuple(feature_stats.mean.shape) != feature_shape:
      raise _bad(
        directory,
        f"{info.stats} holds statistics of shape {tuple(feature_stats.mean.shape)}, the features have {feature_shape}",
      )
  outlier_stats = None
  if info.outliers:
    from freqforensics.evaluation import outliers  # pylint: disable=g-import-not-at-top

    try:
      outlier_stats = outliers.OutlierStats.load(directory / OUTLIERS, len(info.label_names), info.input_shape)
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
      raise _bad(directory, f"{OUTLIERS} cannot be used ({e})") from None
  return Bundle(model=model, feature_stats=feature_stats, info=info, outlier_stats=outlier_stats)
