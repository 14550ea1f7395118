"""From a config to a prepared dataset and the sources a run (or `mode=eval`) reads, cached on disk (host side only).

`config.data.source` is `synthetic` (the embedded synthetic data set, generated once) or `folder` (a
user's class-folder directory). Prepared datasets and the synthetic data set live under the data
root (`config.data.data_dir`, else `$FREQFORENSICS_DATA`, else `~/.cache/freqforensics`), keyed
by what they depend on, so runs that share data share the work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from freqforensics.data import augment, format_audit, format_matching, preparation, reader
from freqforensics.data.distortions import Perturbation
from freqforensics.errors import UserError

log = logging.getLogger(__name__)


def default_data_root() -> Path:
  """Where generated and prepared data live unless a config says: `$FREQFORENSICS_DATA`, else the user's cache."""
  return Path(os.environ.get("FREQFORENSICS_DATA") or "~/.cache/freqforensics").expanduser()


def data_root(config: ml_collections.ConfigDict) -> Path:
  """Where generated and prepared data live: `config.data.data_dir`, else `default_data_root()`."""
  return Path(config.data.data_dir).expanduser() if config.data.data_dir else default_data_root()


def source_dir(config: ml_collections.ConfigDict, *, progress: bool = True) -> Path:
  """The class-folder directory of the config; generates the synthetic data set when asked."""
  d = config.data
  if d.source == "folder":
    if not d.source_dir:
      raise UserError("data.source is 'folder' but no directory is given: set --config.data.source_dir=DIR")
    return Path(d.source_dir).expanduser()
  if d.source == "synthetic":
    from freqforensics.generators import synthetic  # pylint: disable=g-import-not-at-top

    s = d.synthetic
    # The harder-data options name the cache folder only when set: folders written before they
    # existed stay the ones the default config finds.
    options = {"lowpass": s.lowpass, "fingerprint": s.fingerprint, "jpeg_quality": s.jpeg_quality}
    synthetic.check_options(**options)
    # `--config.data.synthetic.generators=gan_nearest,ae_decoder` arrives as one string: split it.
    generators = tuple(g for item in s.generators for g in str(item).split(",") if g)
    suffix = synthetic.variant_suffix(**options) + synthetic.generators_suffix(generators)
    if s.layout != "benchmark":
      if generators != synthetic.GENERATORS:
        raise UserError(
          f"data.synthetic.generators applies to layout=benchmark, not to the {s.layout} stand-in "
          "(its classes are fixed): drop --config.data.synthetic.generators or set layout=benchmark"
        )
      from freqforensics.generators import standins  # pylint: disable=g-import-not-at-top

      out = data_root(config) / "standins" / f"{s.layout}-n{s.num_per_class}-s{s.image_size}-seed{s.seed}{suffix}"
      return standins.write(
        s.layout, out, num_per_class=s.num_per_class, image_size=s.image_size, seed=s.seed, progress=progress, **options
      )
    out = data_root(config) / "synthetic" / f"n{s.num_per_class}-s{s.image_size}-seed{s.seed}{suffix}"
    report = synthetic.generate(
      out,
      num_per_class=s.num_per_class,
      image_size=s.image_size,
      seed=s.seed,
      progress=progress,
      generators=generators,
      **options,
    )
    if not report.reused:
      for name, psnr in report.psnr_db.items():
        log.info("synthetic class %s: mean PSNR %.2f dB against its source crop", name, psnr)
    return out
  raise UserError(f"unknown data.source {d.source!r}: use 'synthetic' or 'folder'")


def prepare_from_config(config: ml_collections.ConfigDict, *, progress: bool = True) -> reader.PreparedDataset:
  """The config's prepared dataset: `data.prepared_dir`, or its source generated (if synthetic) and prepared.

  Prepared data are cached: a dataset prepared earlier from the same files and options is reused.
  The format audit's findings (`format_audit.findings` of the dataset's metadata) are logged, one
  warning each.
  """
  prepared = _prepared(config, progress=progress)
  for line in format_audit.findings(prepared.metadata.get("audit")):
    log.warning("format audit of %s: %s", prepared.metadata.get("source_dir", prepared.path), line)
  return prepared


def _prepared(config: ml_collections.ConfigDict, *, progress: bool) -> reader.PreparedDataset:
  d = config.data
  if d.prepared_dir:
    prepared = reader.open_prepared(d.prepared_dir)
    h, _, c = prepared.image_shape
    have = prepared.metadata.get("match_format", "")
    fix = [
      f"--config.data.{k}={v}"
      for k, v, want in (
        ("image_size", h, d.image_size),
        ("channels", c, d.channels),
        ("match_format", have, format_matching.check(d.match_format)),
      )
      if v != want
    ]
    if fix:
      # Format matching is named only where it is in play, so the common size mistake reads plainly.
      matching = have or d.match_format
      raise UserError(
        f"data.prepared_dir {prepared.path} holds {h}x{h}x{c} images"
        + (f" (match_format {have!r})" if matching else "")
        + f", but the config says data.image_size={d.image_size}, data.channels={d.channels}"
        + (f", data.match_format={d.match_format!r}" if matching else "")
        + f": pass {' '.join(fix)}, or prepare the data as the config says"
      )
    return prepared
  options = preparation.PrepareOptions(
    image_size=d.image_size,
    channels=d.channels,
    split=tuple(d.split),
    crop=d.crop,
    max_pixels=d.max_pixels,
    num_threads=d.num_threads,
    match_format=d.match_format,
  )
  return preparation.prepare(
    source_dir(config, progress=progress),
    data_root(config) / "prepared",
    options,
    progress=progress,
    classes=tuple(d.classes),
  )


def train_subset(prepared: reader.PreparedDataset, subset: float, seed: int) -> tuple[reader.SplitSource, str]:
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
  return reader.SubsetSource(source, np.concatenate(chosen)), f"_subset{subset}_seed{seed}"


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """What a training run reads: the prepared dataset and its three splits, ready for the loops."""

  prepared: reader.PreparedDataset
  train: reader.SplitSource  # the training split (or its few-sample subset), held in memory when it fits
  stats_source: reader.SplitSource  # the same examples as `train`, read from disk: what the feature statistics cover
  tag: str  # names the subset in cache files ('' for the whole split)
  val: reader.SplitSource  # validation, perturbed as the training augmentation perturbs (drawn once per image)
  test: reader.SplitSource | tuple[()]  # `()` when data.split gives test no images


def training_data(
  config: ml_collections.ConfigDict, augmentation: Perturbation, *, progress: bool = True
) -> TrainingData:
  """The config's prepared dataset and splits; `UserError` when they cannot train a model.

  With augmentation, validation (early stopping) sees the same perturbations, drawn once per image,
  as in the paper's perturbed data sets; test stays clean (the robustness report perturbs it).
  """
  prepared = prepare_from_config(config, progress=progress)
  subset, tag = train_subset(prepared, config.data.train_subset, config.seed)
  val = prepared.source("val")
  if not len(val):
    raise UserError("the validation split is empty: early stopping needs one; give data.split a val part")
  return TrainingData(
    prepared=prepared,
    train=reader.maybe_in_memory(subset, config.data.cache_gb),
    stats_source=subset,
    tag=tag,
    val=augment.perturbed_for_eval(val, augmentation, seed=config.seed),
    test=prepared.source("test"),
  )


# --- What `mode=eval` reads: splits or class folders, with labels in the model's order.


class Relabelled:
  """A source whose labels are mapped from the dataset's label order to the model's."""

  def __init__(self, source, table: np.ndarray):
    self._source, self._table = source, table

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> dict[str, Any]:
    ex = dict(self._source[i])
    ex["label"] = self._table[int(ex["label"])]
    return ex

  def read_batch(self, indices) -> dict[str, np.ndarray]:
    batch = self._source.read_batch(indices)
    return dict(batch, label=self._table[batch["label"]])


def relabelled_split(prepared: reader.PreparedDataset, label_names: Sequence[str], split: str) -> Relabelled:
  """A split of `prepared` with labels in the order of `label_names` (a model's); `UserError` for classes
  the model does not know or an empty split."""
  table = label_table(prepared.label_names, label_names)
  source = prepared.source(split)
  if not len(source):
    raise UserError(f"the {split} split of {prepared.path} is empty: nothing to evaluate")
  return Relabelled(source, table)


def label_table(class_names: Sequence[str], label_names: Sequence[str]) -> np.ndarray:
  """Each class folder's label in the model's order (`label_names`); `UserError` for one the model lacks."""
  label_names = list(label_names)
  if unknown := [n for n in class_names if n not in label_names]:
    raise UserError(
      f"class folders {unknown} are not labels of this model ({label_names}): evaluate on"
      " folders named like the training classes"
    )
  return np.array([label_names.index(n) for n in class_names], np.int32)


def source_name(prefix: str, source: str | os.PathLike) -> str:
  """`<prefix>_<base name>_<8 hex digits of the resolved path's SHA-256>`: one report name per source.

  Two folders of one base name (`a/test`, `b/test`) get two names; the same folder again gets its own
  name back. The base name keeps only letters, digits, `.`, `_`, `-` (others become `_`), at most 60.
  """
  resolved = str(Path(source).expanduser().resolve())
  base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(resolved).name)[:60] or "root"
  return f"{prefix}_{base}_{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def folder_dataset(
  source_dir: str | os.PathLike,
  data_root: Path,
  options: preparation.PrepareOptions,
  *,
  progress: bool = True,
  source_option: str = "--config.eval.source_dir",
) -> reader.PreparedDataset:
  """Class folders prepared (cached under `data_root`) with a model's preprocessing: all into `test`, one
  class or more.

  Args:
    source_dir: the class folders.
    data_root: the data root; the prepared dataset goes under its `prepared/`.
    options: the model's preprocessing (`bundle.BundleInfo.prepare_options`).
    progress: show progress.
    source_option: the option that named `source_dir`, for error messages.
  """
  return preparation.prepare(
    source_dir, data_root / "prepared", options, progress=progress, min_classes=1, source_option=source_option
  )


def eval_sources(
  config: ml_collections.ConfigDict,
  label_names: Sequence[str],
  options: preparation.PrepareOptions,
  input_shape: Sequence[int],
  trained_on: str,
) -> dict[str, Any]:
  """What `mode=eval` evaluates: report name -> source, labels in the model's order (perturbed when
  `eval.perturb` asks). The class folders `eval.source_dir`, prepared with `options`, else the config's
  splits, named as the split for the dataset the model was trained on (`trained_on`) and with
  `source_name` for another.

  Args:
    config: the run's config (`eval.*` and `data.*`).
    label_names: the model's labels: folders and splits are mapped to their order.
    options: the model's preprocessing, for class folders.
    input_shape: the images the model takes: the config's dataset must hold them.
    trained_on: the path of the prepared dataset the model was trained on ("" when unknown).
  """
  perturbation = Perturbation.from_config(config.eval.perturb, name="eval.perturb")  # checked before any work
  if config.eval.source_dir:
    prepared = folder_dataset(config.eval.source_dir, data_root(config), options, progress=bool(config.progress))
    splits = {source_name("folder", config.eval.source_dir): "test"}
  else:
    prepared = prepare_from_config(config, progress=bool(config.progress))
    if tuple(input_shape) != tuple(prepared.image_shape):
      raise UserError(
        f"the model takes {tuple(input_shape)} inputs but the data set {prepared.path} holds"
        f" {tuple(prepared.image_shape)} images: evaluate with the config it was trained with"
      )
    same = trained_on and Path(trained_on).expanduser().resolve() == Path(prepared.path).resolve()
    splits = {(s if same else source_name(s, prepared.path)): s for s in config.eval.splits}
  suffix = f"_{perturbation.kind}" if perturbation.active else ""
  return {
    name + suffix: augment.perturbed_for_eval(
      relabelled_split(prepared, label_names, split), perturbation, seed=config.seed
    )
    for name, split in splits.items()
  }
