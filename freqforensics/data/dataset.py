"""From a config to a prepared dataset and its feature statistics, both cached on disk.

`config.data.source` is `synthetic` (the embedded benchmark, generated once) or `folder` (a
user's class-folder directory). Prepared datasets and the synthetic benchmark live under the data
root (`config.data.data_dir`, else `$FREQFORENSICS_DATA`, else `~/.cache/freqforensics`), keyed
by what they depend on, so runs that share data share the work.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import jax
import ml_collections
from tqdm.auto import tqdm

from freqforensics import sharding, spectral, stats
from freqforensics.data import pipeline, prepare
from freqforensics.errors import UserError

log = logging.getLogger(__name__)


def data_root(config: ml_collections.ConfigDict) -> Path:
  """Where generated and prepared data live."""
  root = config.data.data_dir or os.environ.get("FREQFORENSICS_DATA") or "~/.cache/freqforensics"
  return Path(root).expanduser()


def source_dir(config: ml_collections.ConfigDict, *, progress: bool = True) -> Path:
  """The class-folder directory of the config; generates the synthetic benchmark when asked."""
  d = config.data
  if d.source == "folder":
    if not d.source_dir:
      raise UserError("data.source is 'folder' but no directory is given: set --config.data.source_dir=DIR")
    return Path(d.source_dir).expanduser()
  if d.source == "synthetic":
    from freqforensics.data import synthetic  # pylint: disable=g-import-not-at-top

    s = d.synthetic
    out = data_root(config) / "synthetic" / f"n{s.num_per_class}-s{s.image_size}-seed{s.seed}"
    report = synthetic.generate(out, num_per_class=s.num_per_class, image_size=s.image_size, seed=s.seed,
                                progress=progress)
    if not report.reused:
      for name, psnr in report.psnr_db.items():
        log.info("synthetic class %s: mean PSNR %.2f dB against its source crop", name, psnr)
    return out
  raise UserError(f"unknown data.source {d.source!r}: use 'synthetic' or 'folder'")


def prepare_from_config(config: ml_collections.ConfigDict, *, progress: bool = True) -> prepare.PreparedDataset:
  """Generates (if synthetic) and prepares the config's data set, reusing cached results."""
  d = config.data
  options = prepare.PrepareOptions(image_size=d.image_size, channels=d.channels, split=tuple(d.split),
                                   num_threads=d.num_threads)
  return prepare.prepare(source_dir(config, progress=progress), data_root(config) / "prepared", options,
                         progress=progress)


def feature_kind(config: ml_collections.ConfigDict) -> str:
  """The config's feature name (`spectral.feature_name`: kind and parameters), checked before any work.

  Raises `UserError` naming the option when the kind is unknown, its parameters do not fit
  `data.image_size`, or the model needs image-shaped input and the feature is 1-D (`azimuthal`).
  """
  kind, o, d = config.features, config.feature_options, config.data
  if kind not in spectral.FEATURE_KINDS:
    raise UserError(f"unknown features {kind!r}: use --config.features= one of {', '.join(spectral.FEATURE_KINDS)}")
  try:
    name = spectral.feature_name(kind, wavelet=o.wavelet, level=o.level, bins=o.bins)
    shape = spectral.feature_shape(name, (d.image_size, d.image_size, d.channels))
  except ValueError as e:
    options = {"wpt_log": ("wavelet", "level"), "azimuthal": ("bins",)}.get(kind, ())
    named = ", ".join(f"--config.feature_options.{k}={o[k]}" for k in options)
    raise UserError(f"features={kind} with data.image_size={d.image_size}: {e} ({named})") from e
  if len(shape) != 3 and config.model.name in ("cnn", "resnet"):
    raise UserError(f"model {config.model.name} needs image-shaped features, but features={kind} is a 1-D profile"
                    f" of shape {shape}: use --config.model.name=log2 (or log, log1, log3, nn)")
  return name


def feature_stats(prepared: prepare.PreparedDataset, kind: str, mesh: jax.sharding.Mesh, *, batch_size: int,
                  num_threads: int = 2, progress: bool = True, write: bool = True) -> spectral.FeatureStats | None:
  """Per-coefficient mean/std of `kind` over the training split; cached as `stats_<kind>.npz`.

  Returns None for kinds without statistics (`pixel`). Features are computed on device exactly as
  in training, and accumulated in float64 with masking, so each training example counts once. In a
  multi-host run every process reads its share and all compute the same result; `write` is for
  process 0 only.
  """
  if not spectral.needs_stats(kind):
    return None
  path = prepared.path / f"stats_{kind}.npz"
  if path.is_file():
    return stats.load(path, kind)
  source = prepared.source("train")
  raw = jax.jit(sharding.raw_features_fn(mesh, kind))
  put = sharding.make_put(mesh)
  acc = stats.init(spectral.feature_shape(kind, prepared.image_shape))
  procs = {"process_index": jax.process_index(), "process_count": jax.process_count()}
  steps = pipeline.num_eval_steps(len(source), batch_size, jax.process_count())
  for batch in tqdm(pipeline.eval_batches(source, batch_size, num_threads=num_threads, **procs), total=steps,
                    desc=f"stats {kind}", unit="batch", disable=not progress):
    batch = put(batch)
    acc = sharding.settle(mesh, stats.update(acc, raw(batch["image"]), batch["mask"]))
  acc = stats.Moments(*sharding.to_host(tuple(acc)))
  if int(acc.count) != len(source):
    raise RuntimeError(f"statistics saw {int(acc.count)} examples, the split has {len(source)}")
  if write:
    stats.save(path, acc, kind)
  return stats.to_feature_stats(acc.mean, stats.variance(acc))
