"""The evaluation runner: training's validation and final test, and `--config.mode=eval`, on one path.

`evaluate_source` runs a model's logits over a source with the masked loop (every example once),
and `write` keeps the metrics in a work dir; training's final test and `mode=eval` both use them,
so the two give the same numbers for the same bundle and split.

`--config.mode=eval` evaluates a trained model bundle on prepared splits or on any class folders:

  python -m freqforensics.main --config=configs/demo.py --workdir=runs/demo --config.mode=eval
  python -m freqforensics.main --config=configs/folder.py --workdir=runs/demo --config.mode=eval \\
      --config.eval.source_dir=/path/to/class_folders

Uses only the work dir's bundle (parameters, statistics, label names, preprocessing). A folder is
prepared on the fly with the bundle's image size, channels and crop; its class folders must carry
label names the model knows. Writes `WORKDIR/eval_<name>.json` with the confusion and ROC PNGs, where
`<name>` is one per source (`source_name`): the split (`test`) for the dataset the bundle was trained
on, else the folder's base name and a short hash of its resolved path (`folder_test_1a2b3c4d`), so a
second source never replaces the first's report, and a file the project did not write is never
replaced at all (`workdir.claim`, checked before any work).
A folder in the cross-generator layout, `ROOT/<generator>/[<subset>/]{0_real,1_fake}/`, is found
automatically and evaluated per generator instead (`cross_generator`). Detectors (bundles with a real
class) also get the `detection` block: metrics at the bundle's threshold and the open-set rates.
`--config.eval.perturb.kind=jpeg` (and its strengths, `defaults.perturbation_config`) evaluates
a perturbed copy of each split instead, made on the fly and never written: `eval_<name>_jpeg.json`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from freqforensics import bundle, defaults, sharding, steps
from freqforensics import workdir as wd
from freqforensics.data import augment, images, loading, pipeline, preparation, protocol, reader
from freqforensics.data.distortions import Perturbation
from freqforensics.errors import UserError
from freqforensics.evaluation import loop, metrics, operating_points, outliers, placement
from freqforensics.files import locks

log = logging.getLogger(__name__)


class _Relabelled:
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


def folder_dataset(
  b: bundle.Bundle,
  source_dir: str | Path,
  data_root: Path,
  *,
  num_threads: int = 0,
  progress: bool = True,
  max_pixels: int = images.DEFAULT_MAX_PIXELS,
  source_option: str = "--config.eval.source_dir",
) -> reader.PreparedDataset:
  """Class folders prepared (all into `test`) with the bundle's image size, channels and crop."""
  options = preparation.PrepareOptions(
    image_size=b.info["image_size"],
    channels=b.info["channels"],
    split=(0.0, 0.0, 1.0),
    crop=b.info.get("crop", "center"),
    max_pixels=max_pixels,
    num_threads=num_threads,
  )
  return preparation.prepare(
    source_dir, data_root / "prepared", options, progress=progress, min_classes=1, source_option=source_option
  )


def relabelled_split(prepared: reader.PreparedDataset, b: bundle.Bundle, split: str):
  """A split of `prepared` with labels in the model's order; `UserError` for unknown classes or no data."""
  unknown = [n for n in prepared.label_names if n not in b.label_names]
  if unknown:
    raise UserError(
      f"class folders {unknown} are not labels of this model ({list(b.label_names)}): evaluate on"
      " folders named like the training classes"
    )
  table = np.array([b.label_names.index(n) for n in prepared.label_names], np.int32)
  source = prepared.source(split)
  if not len(source):
    raise UserError(f"the {split} split of {prepared.path} is empty: nothing to evaluate")
  return _Relabelled(source, table)


def source_name(prefix: str, source: str | Path) -> str:
  """`<prefix>_<base name>_<8 hex digits of the resolved path's SHA-256>`: one report name per source.

  Two folders of one base name (`a/test`, `b/test`) get two names; the same folder again gets its own
  name back. The base name keeps only letters, digits, `.`, `_`, `-` (others become `_`), at most 60.
  """
  resolved = str(Path(source).expanduser().resolve())
  base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(resolved).name)[:60] or "root"
  return f"{prefix}_{base}_{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def _split_name(split: str, prepared: reader.PreparedDataset, b: bundle.Bundle) -> str:
  """`split` for the dataset the bundle was trained on; for another dataset, `source_name` of it."""
  trained_on = b.info.get("dataset")
  if isinstance(trained_on, str) and Path(trained_on).expanduser().resolve() == Path(prepared.path).resolve():
    return split
  return source_name(split, prepared.path)


def _targets(config: ml_collections.ConfigDict, b: bundle.Bundle) -> dict[str, Any]:
  """name -> source with labels in the model's order (perturbed when `eval.perturb` asks)."""
  perturbation = Perturbation.from_config(config.eval.perturb, name="eval.perturb")  # checked before any work
  if config.eval.source_dir:
    prepared = folder_dataset(
      b,
      config.eval.source_dir,
      loading.data_root(config),
      max_pixels=config.data.max_pixels,
      num_threads=config.data.num_threads,
      progress=bool(config.progress),
    )
    splits = {source_name("folder", config.eval.source_dir): "test"}
  else:
    prepared = loading.prepare_from_config(config, progress=bool(config.progress))
    if tuple(b.info["input_shape"]) != tuple(prepared.image_shape):
      raise UserError(
        f"the model takes {tuple(b.info['input_shape'])} inputs but the data set {prepared.path} holds"
        f" {tuple(prepared.image_shape)} images: evaluate with the config it was trained with"
      )
    splits = {_split_name(s, prepared, b): s for s in config.eval.splits}
  suffix = f"_{perturbation.kind}" if perturbation.active else ""
  return {
    name + suffix: augment.perturbed_for_eval(relabelled_split(prepared, b, split), perturbation, seed=config.seed)
    for name, split in splits.items()
  }


def evaluate_source(
  logits: Callable[[jax.Array], jax.Array],
  source,
  label_names: tuple[str, ...],
  *,
  mesh: jax.sharding.Mesh,
  batch_size: int,
  num_threads: int = 2,
  progress: bool = False,
  name: str = "",
  scores: bool = True,
  per_example: Callable[[dict[str, Any], jax.Array], dict[str, jax.Array]] | None = None,
) -> dict[str, Any]:
  """Metrics of `logits` (images sharded over `mesh` -> logits) on `source` (labels in the model's order).

  The masked evaluation loop over padded batches: every example counts once, on any number of
  devices and hosts (each process reads its share). `scores` adds the ranking metrics, the logits and
  `per_example`'s values (`outlier_fn`).
  """
  procs = sharding.process_share()
  n = pipeline.num_eval_steps(len(source), batch_size, jax.process_count())
  settle = functools.partial(sharding.settle, mesh)
  with tqdm(total=n, desc=f"eval {name}", unit="batch", disable=not progress, leave=False) as bar:
    return loop.evaluate(
      lambda batch: settle(logits(batch["image"])),
      pipeline.eval_batches(source, batch_size, num_threads=num_threads, **procs),
      label_names,
      put=sharding.make_put(mesh),
      progress=bar.update,
      settle=settle,
      scores=scores,
      per_example=per_example,
    )


def outlier_fn(ostats: outliers.OutlierStats, mesh: jax.sharding.Mesh):
  """`(batch, logits) -> {candidate: (B,)}` of the spectral open-set candidates, for `evaluate_source`."""
  scores = outliers.scores_on(ostats, mesh)
  return lambda batch, logits: scores(batch["image"])


def add_detection(m: dict[str, Any], detector: operating_points.Detector, block: dict[str, Any] | None) -> None:
  """Adds a detector's `detection` block to split metrics `m` (kept logits, labels in the model's order) and,
  with an open-set block, every candidate's flag rates (`outlier_candidates`). No-op for a model with no
  real class."""
  if detector.real is None or "_logits" not in m:
    return
  flags = None
  if block and "_per_example" in m:
    scores = outliers.all_scores(m["_per_example"], m["_logits"])
    _, flags = outliers.flags(scores, block)
    is_real = m["_labels"] == detector.real
    m["outlier_candidates"] = {
      k: {
        "real_flagged": float(np.mean(v[is_real] > block["thresholds"][k])) if is_real.any() else None,
        "fake_flagged": float(np.mean(v[~is_real] > block["thresholds"][k])) if (~is_real).any() else None,
      }
      for k, v in scores.items()
      if k in block["thresholds"]
    }
  m["detection"] = operating_points.detection_metrics(detector, m["_logits"], m["_labels"], flags)
  if block:
    m["detection"]["outlier_score"] = block["score"]


def write(workdir: Path, name: str, m: dict[str, Any]) -> Path:
  """Writes `WORKDIR/<name>.json` (and its figures), registered as the work dir's own; returns the path."""
  path = workdir / f"{name}.json"
  wd.register(workdir, *metrics.metric_files(path))
  metrics.write_metrics(path, m)
  return path


def bundle_evaluator(
  b: bundle.Bundle, *, num_devices: int, batch_size: int, progress: bool = True
) -> Callable[[Any, str], dict[str, Any]]:
  """`(source, name) -> metrics` of the bundle's model on a source whose labels are in the model's order.

  The model and its statistics are placed on a ('data',) mesh of `num_devices` devices once
  (`placement.place`); each call is `evaluate_source` with scores (ROC-AUC, AP).
  """
  placed = placement.place(b, sharding.make_mesh(num_devices))
  per_example = outlier_fn(b.outlier_stats, placed.mesh) if b.outlier_stats is not None else None
  return lambda source, name: evaluate_source(
    placed.logits,
    source,
    b.label_names,
    mesh=placed.mesh,
    batch_size=batch_size,
    progress=progress,
    name=name,
    per_example=per_example,
  )


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, dict[str, Any]]:
  """Evaluates WORKDIR/bundle on the config's splits (or `eval.source_dir`); returns name -> metrics."""
  workdir = Path(workdir).expanduser().absolute()  # the reports name the bundle by its absolute path
  defaults.validate(config)
  b = bundle.load(workdir / "bundle")
  lock = locks.DirLock(workdir, wd.LOCK).acquire("--workdir") if sharding.is_main_process() else None
  try:
    return _evaluate(config, workdir, b)
  finally:
    if lock is not None:
      lock.release()


def _evaluate(config: ml_collections.ConfigDict, workdir: Path, b: bundle.Bundle) -> dict[str, dict[str, Any]]:
  if b.note:
    log.warning("%s: %s", workdir / "bundle", b.note)
  if config.eval.source_dir and protocol.is_layout(config.eval.source_dir):
    from freqforensics.evaluation import cross_generator  # pylint: disable=g-import-not-at-top

    return cross_generator.evaluate(config, workdir, b)
  run = bundle_evaluator(
    b, num_devices=steps.num_devices(config), batch_size=config.eval.batch_size, progress=bool(config.progress)
  )
  detector = operating_points.Detector.from_info(b.info, config.data.real_class)
  results = {}
  targets = _targets(config, b)
  if sharding.is_main_process():  # before any evaluation: a user's file of a report's name is refused at once
    wd.claim(workdir, *(p for name in targets for p in metrics.metric_files(workdir / f"eval_{name}.json")))
  for name, source in targets.items():
    m = run(source, name)
    add_detection(m, detector, b.info.get("outliers"))
    if b.note:
      m["note"] = b.note
    m.update(split=name, model=b.info["model"], features=b.info["features"], bundle=str(workdir / "bundle"))
    if isinstance(source, augment.PerturbedSource):
      m["perturbation"] = dataclasses.asdict(source.perturbation)
    if sharding.is_main_process():
      write(workdir, f"eval_{name}", m)
    log.info(
      "eval %s: accuracy %.4f on %d examples -> %s",
      name,
      m["accuracy"],
      m["num_examples"],
      workdir / f"eval_{name}.json",
    )
    results[name] = m
  return results
