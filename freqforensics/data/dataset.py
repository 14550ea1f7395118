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
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from freqforensics import sharding, spectral, stats
from freqforensics.data import pipeline, prepare, records
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
    # The harder-benchmark options name the cache folder only when set: folders written before they
    # existed stay the ones the default config finds.
    options = {"lowpass": s.lowpass, "fingerprint": s.fingerprint, "jpeg_quality": s.jpeg_quality}
    synthetic.check_options(**options)
    # `--config.data.synthetic.generators=gan_nearest,ae_decoder` arrives as one string: split it.
    generators = tuple(g for item in s.generators for g in str(item).split(",") if g)
    suffix = synthetic.variant_suffix(**options) + synthetic.generators_suffix(generators)
    if s.layout != "benchmark":
      if generators != synthetic.GENERATORS:
        raise UserError(f"data.synthetic.generators applies to the benchmark layout, not to the {s.layout} stand-in "
                        "(its classes are fixed): drop --config.data.synthetic.generators or set layout=benchmark")
      from freqforensics.data import standins  # pylint: disable=g-import-not-at-top

      out = data_root(config) / "standins" / f"{s.layout}-n{s.num_per_class}-s{s.image_size}-seed{s.seed}{suffix}"
      return standins.write(s.layout, out, num_per_class=s.num_per_class, image_size=s.image_size, seed=s.seed,
                            progress=progress, **options)
    out = data_root(config) / "synthetic" / f"n{s.num_per_class}-s{s.image_size}-seed{s.seed}{suffix}"
    report = synthetic.generate(out, num_per_class=s.num_per_class, image_size=s.image_size, seed=s.seed,
                                progress=progress, generators=generators, **options)
    if not report.reused:
      for name, psnr in report.psnr_db.items():
        log.info("synthetic class %s: mean PSNR %.2f dB against its source crop", name, psnr)
    return out
  raise UserError(f"unknown data.source {d.source!r}: use 'synthetic' or 'folder'")


def prepare_from_config(config: ml_collections.ConfigDict, *, progress: bool = True) -> prepare.PreparedDataset:
  """The config's prepared dataset: `data.prepared_dir`, or its source generated (if synthetic) and prepared.

  Prepared data are cached: a dataset prepared earlier from the same files and options is reused.
  """
  d = config.data
  if d.prepared_dir:
    return prepare.open_prepared(d.prepared_dir)
  options = prepare.PrepareOptions(image_size=d.image_size, channels=d.channels, split=tuple(d.split),
                                   crop=d.crop, max_pixels=d.max_pixels, num_threads=d.num_threads)
  return prepare.prepare(source_dir(config, progress=progress), data_root(config) / "prepared", options,
                         progress=progress, classes=tuple(d.classes))


def train_subset(prepared: prepare.PreparedDataset, subset: float, seed: int) -> tuple[Any, str]:
  """The training split, or a class-balanced part of it for few-sample runs; returns (source, tag).

  `subset` per class: a fraction in (0, 1] (1 = everything) or a count above 1 (config values are
  floats, so 100 and 100.0 both mean 100 images per class). Which examples is drawn with `seed` per
  class, so a run is reproducible. The tag names the subset in cache files ('' for the whole split).
  """
  source = prepared.source("train")
  if subset == 1:
    return source, ""
  if subset <= 0 or (subset > 1 and subset != int(subset)):
    raise UserError(f"data.train_subset={subset}: give a fraction in (0, 1] or a whole count above 1 per class")
  chosen = []
  for label, name in enumerate(prepared.label_names):
    span = prepared.class_range("train", label)
    k = max(1, round(subset * len(span))) if subset < 1 else int(subset)
    if k > len(span):
      raise UserError(f"data.train_subset={subset}: class {name} has only {len(span)} training images")
    rng = np.random.default_rng([seed, label])
    chosen.append(np.sort(rng.choice(np.asarray(span), size=k, replace=False)))
  return records.SubsetSource(source, np.concatenate(chosen)), f"_subset{subset}_seed{seed}"


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
                  num_threads: int = 2, progress: bool = True, write: bool = True, source: Any = None,
                  tag: str = "") -> spectral.FeatureStats | None:
  """Per-coefficient mean/std of `kind` over the training split (or `source`, a subset of it named by
  `tag`); cached as `stats_<kind><tag>.npz`.

  Returns None for kinds without statistics (`pixel`). Features are computed on device exactly as
  in training, and accumulated in float64 with masking, so each training example counts once. In a
  multi-host run every process reads its share and all compute the same result; `write` is for
  process 0 only.
  """
  if not spectral.needs_stats(kind):
    return None
  path = prepared.path / f"stats_{kind}{tag}.npz"
  if path.is_file():
    return stats.load(path, kind)
  source = prepared.source("train") if source is None else source
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
