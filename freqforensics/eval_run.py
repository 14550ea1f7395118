"""`--config.mode=eval`: evaluate a trained model bundle on prepared splits or on any class folders.

  python -m freqforensics.main --config=configs/demo.py --workdir=runs/demo --config.mode=eval
  python -m freqforensics.main --config=configs/folder.py --workdir=runs/demo --config.mode=eval \\
      --config.eval.source_dir=/path/to/class_folders

Uses only the work dir's bundle (parameters, statistics, label names, preprocessing). A folder is
prepared on the fly with the bundle's image size, channels and crop; its class folders must carry
label names the model knows. Writes `WORKDIR/eval_<name>.json` with the confusion and ROC PNGs.
`--config.eval.perturb.kind=jpeg` (and its strengths, `defaults.perturbation_config`) evaluates
a perturbed copy of each split instead, made on the fly and never written: `eval_<name>_jpeg.json`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from freqforensics import bundle, defaults, distributed, evaluate, inference, outputs, sharding, steps
from freqforensics import workdir as wd
from freqforensics.data import augment, dataset, images, pipeline, prepare
from freqforensics.data.perturb import Perturbation
from freqforensics.errors import UserError

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


def folder_dataset(b: bundle.Bundle, source_dir: str | Path, data_root: Path, *, num_threads: int = 0,
                   progress: bool = True, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                   source_option: str = "--config.eval.source_dir") -> prepare.PreparedDataset:
  """Class folders prepared (all into `test`) with the bundle's image size, channels and crop."""
  options = prepare.PrepareOptions(image_size=b.info["image_size"], channels=b.info["channels"],
                                   split=(0.0, 0.0, 1.0), crop=b.info.get("crop", "center"), max_pixels=max_pixels,
                                   num_threads=num_threads)
  return prepare.prepare(source_dir, data_root / "prepared", options, progress=progress, min_classes=1,
                         source_option=source_option)


def relabelled_split(prepared: prepare.PreparedDataset, b: bundle.Bundle, split: str):
  """A split of `prepared` with labels in the model's order; `UserError` for unknown classes or no data."""
  unknown = [n for n in prepared.label_names if n not in b.label_names]
  if unknown:
    raise UserError(f"class folders {unknown} are not labels of this model ({list(b.label_names)}): evaluate on"
                    " folders named like the training classes")
  table = np.array([b.label_names.index(n) for n in prepared.label_names], np.int32)
  source = prepared.source(split)
  if not len(source):
    raise UserError(f"the {split} split of {prepared.path} is empty: nothing to evaluate")
  return _Relabelled(source, table)


def _targets(config: ml_collections.ConfigDict, b: bundle.Bundle) -> dict[str, Any]:
  """name -> source with labels in the model's order (perturbed when `eval.perturb` asks)."""
  perturbation = Perturbation.from_config(config.eval.perturb, name="eval.perturb")  # checked before any work
  if config.eval.source_dir:
    prepared = folder_dataset(b, config.eval.source_dir, dataset.data_root(config), max_pixels=config.data.max_pixels,
                              num_threads=config.data.num_threads, progress=bool(config.progress))
    splits = {"folder_" + Path(config.eval.source_dir).resolve().name: "test"}
  else:
    prepared = dataset.prepare_from_config(config, progress=bool(config.progress))
    if tuple(b.info["input_shape"]) != tuple(prepared.image_shape):
      raise UserError(f"the model takes {tuple(b.info['input_shape'])} inputs but the data set {prepared.path} holds"
                      f" {tuple(prepared.image_shape)} images: evaluate with the config it was trained with")
    splits = {s: s for s in config.eval.splits}
  suffix = f"_{perturbation.kind}" if perturbation.active else ""
  return {name + suffix: augment.perturbed_for_eval(relabelled_split(prepared, b, split), perturbation,
                                                    seed=config.seed)
          for name, split in splits.items()}


def bundle_evaluator(b: bundle.Bundle, *, num_devices: int, batch_size: int,
                     progress: bool = True) -> Callable[[Any, str], dict[str, Any]]:
  """`(source, name) -> metrics` of the bundle's model on a source whose labels are in the model's order.

  The model and its statistics are placed on a ('data',) mesh of `num_devices` devices once; each
  call runs the masked evaluation loop (every example once) with scores (ROC-AUC, AP).
  """
  placed = inference.place(b, sharding.make_mesh(num_devices))

  procs = {"process_index": jax.process_index(), "process_count": jax.process_count()}

  def run(source, name: str) -> dict[str, Any]:
    n = pipeline.num_eval_steps(len(source), batch_size, jax.process_count())
    with tqdm(total=n, desc=f"eval {name}", unit="batch", disable=not progress, leave=False) as bar:
      return evaluate.evaluate(lambda batch: placed.logits(batch["image"]),
                               pipeline.eval_batches(source, batch_size, **procs), b.label_names, put=placed.put,
                               progress=bar.update, settle=lambda x: sharding.settle(placed.mesh, x), scores=True)

  return run


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, dict[str, Any]]:
  """Evaluates WORKDIR/bundle on the config's splits (or `eval.source_dir`); returns name -> metrics."""
  workdir = Path(workdir).expanduser()
  defaults.validate(config)
  b = bundle.load(workdir / "bundle")
  lock = outputs.DirLock(workdir, wd.LOCK).acquire("--workdir") if distributed.is_main_process() else None
  try:
    return _evaluate(config, workdir, b)
  finally:
    if lock is not None:
      lock.release()


def _evaluate(config: ml_collections.ConfigDict, workdir: Path, b: bundle.Bundle) -> dict[str, dict[str, Any]]:
  run = bundle_evaluator(b, num_devices=steps.num_devices(config), batch_size=config.eval.batch_size,
                         progress=bool(config.progress))
  results = {}
  for name, source in _targets(config, b).items():
    m = run(source, name)
    m.update(split=name, model=b.info["model"], features=b.info["features"], bundle=str(workdir / "bundle"))
    if isinstance(source, augment.PerturbedSource):
      m["perturbation"] = dataclasses.asdict(source.perturbation)
    if distributed.is_main_process():
      wd.register(workdir, *evaluate.metric_files(workdir / f"eval_{name}.json"))
      evaluate.write_metrics(workdir / f"eval_{name}.json", m)
    log.info("eval %s: accuracy %.4f on %d examples -> %s", name, m["accuracy"], m["num_examples"],
             workdir / f"eval_{name}.json")
    results[name] = m
  return results
