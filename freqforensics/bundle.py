"""The model bundle: everything inference needs, in plain files, loaded without executing code.

`WORKDIR/bundle/` holds `bundle.json` (model name and variant, input shape, outputs, label names,
feature kind, preprocessing: image size, channels, crop rule, format matching) and `params.npz` (the best
parameters and BatchNorm statistics as named float arrays, `allow_pickle=False`), next to
`stats_<features>.npz` (the feature statistics). No pickle, no code: a bundle from anywhere is
safe to load.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from freqforensics import models, outputs, spectral, stats
from freqforensics.errors import UserError

_FORMAT_VERSION = 1


@dataclasses.dataclass
class Bundle:
  """A loaded bundle: the model (in eval mode), its feature statistics and its description."""

  model: nnx.Module
  feature_stats: spectral.FeatureStats | None
  info: dict[str, Any]

  @property
  def label_names(self) -> tuple[str, ...]:
    return tuple(self.info["label_names"])


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
  return [directory / "params.npz", directory / "bundle.json"] + ([directory / stats_path.name] if stats_path else [])


def save(directory: str | os.PathLike, model: nnx.Module, info: dict[str, Any], stats_path: Path | None) -> None:
  """Writes the bundle's files, each atomically; `bundle.json` last, so a bundle that has it is whole.

  Only the bundle's own files are written: anything else in the folder is left alone.
  """
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  outputs.write_with(directory / "params.npz", lambda p: np.savez(p, **_flatten(model_state(model))))
  if stats_path is not None:
    outputs.write_bytes(directory / stats_path.name, stats_path.read_bytes())
  info = dict(info, format_version=_FORMAT_VERSION, stats=stats_path.name if stats_path else None)
  outputs.write_json(directory / "bundle.json", info)


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


def validate(directory: Path, info: Any) -> dict[str, Any]:
  """Checks a bundle's description before anything is built from it; returns it or raises `UserError`."""
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
  if info.get("crop", "center") not in crops.CROPS:
    raise _bad(directory, f"crop rule {info.get('crop')!r} is not one of {', '.join(crops.CROPS)}")
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
  return info


def load(directory: str | os.PathLike) -> Bundle:
  """Loads a bundle written by `save`; raises `UserError` naming what is missing or wrong.

  Everything is checked before it is used: the description (`validate`), that `params.npz` holds
  plain arrays (no pickled objects) of exactly the model's shapes, and that the statistics fit
  the features.
  """
  directory = Path(directory)
  path = directory / "bundle.json"
  if not path.is_file():
    raise UserError(f"{directory} holds no model bundle (bundle.json): give the bundle/ folder of a finished run")
  info = validate(directory, outputs.read_json(path, "the description of a model bundle"))
  # Bundles from before `feature_shape` existed had image-shaped features only.
  feature_shape = tuple(info.get("feature_shape", info["input_shape"]))
  model = models.create_model(
    info["model"], feature_shape, info["outputs"], l1=0.0, l2=0.0, variant=info.get("variant", "paper")
  )
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
  if info.get("stats"):
    try:
      feature_stats = stats.load(directory / info["stats"], info["features"])
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
      raise _bad(directory, f"{info['stats']} cannot be used ({e})") from None
    if tuple(feature_stats.mean.shape) != feature_shape:
      raise _bad(
        directory,
        f"{info['stats']} holds statistics of shape {tuple(feature_stats.mean.shape)}, the"
        f" features have {feature_shape}",
      )
  return Bundle(model=model, feature_stats=feature_stats, info=info)
