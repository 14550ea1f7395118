"""The model bundle: everything inference needs, in plain files, loaded without executing code.

`WORKDIR/bundle/` holds `bundle.json` (model name and variant, input shape, outputs, label names,
feature kind, preprocessing: image size, channels, crop rule) and `params.npz` (the best
parameters and BatchNorm statistics as named float arrays, `allow_pickle=False`), next to
`stats_<features>.npz` (the feature statistics). No pickle, no code: a bundle from anywhere is
safe to load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from freqforensics import models, spectral, stats
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


def _unflatten_into(tree: dict, arrays: dict[str, np.ndarray], prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out[k] = _unflatten_into(v, arrays, key + "/")
    elif key in arrays:
      if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key):
        out[k] = jax.random.wrap_key_data(arrays[key], impl=jax.random.key_impl(v))
      else:
        out[k] = arrays[key].astype(v.dtype)
    else:
      raise UserError(f"the bundle lacks the array {key}: it was written for another model; retrain or re-export")
  return out


def model_state(model: nnx.Module) -> dict:
  """The parameters and batch statistics of a model as a nested dict of arrays."""
  return nnx.to_pure_dict(nnx.state(model, (nnx.Param, nnx.BatchStat)))


def save(directory: str | os.PathLike, model: nnx.Module, info: dict[str, Any], stats_path: Path | None) -> None:
  """Writes the bundle atomically (a temporary folder renamed into place)."""
  directory = Path(directory)
  tmp = directory.with_name(directory.name + ".tmp")
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  np.savez(tmp / "params.npz", **_flatten(model_state(model)))
  info = dict(info, format_version=_FORMAT_VERSION, stats=stats_path.name if stats_path else None)
  (tmp / "bundle.json").write_text(json.dumps(info, indent=2) + "\n")
  if stats_path is not None:
    shutil.copyfile(stats_path, tmp / stats_path.name)
  if directory.exists():
    shutil.rmtree(directory)
  os.replace(tmp, directory)


def load(directory: str | os.PathLike) -> Bundle:
  """Loads a bundle written by `save`; raises `UserError` naming what is missing or wrong."""
  directory = Path(directory)
  path = directory / "bundle.json"
  if not path.is_file():
    raise UserError(f"{directory} holds no model bundle (bundle.json): give the bundle/ folder of a finished run")
  info = json.loads(path.read_text())
  if info.get("format_version") != _FORMAT_VERSION:
    raise UserError(f"{path} has bundle format {info.get('format_version')}, this version reads {_FORMAT_VERSION}")
  # Bundles from before `feature_shape` existed had image-shaped features only.
  model = models.create_model(info["model"], tuple(info.get("feature_shape", info["input_shape"])), info["outputs"],
                              l1=0.0, l2=0.0, variant=info.get("variant", "paper"))
  with np.load(directory / "params.npz", allow_pickle=False) as f:
    arrays = dict(f)
  params = nnx.state(model, (nnx.Param, nnx.BatchStat))
  nnx.replace_by_pure_dict(params, _unflatten_into(nnx.to_pure_dict(params), arrays))
  nnx.update(model, params)
  feature_stats = stats.load(directory / info["stats"], info["features"]) if info.get("stats") else None
  return Bundle(model=model, feature_stats=feature_stats, info=info)
