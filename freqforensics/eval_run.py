"""`--config.mode=eval`: evaluate a trained model bundle on prepared splits or on any class folders.

  python -m freqforensics.main --config=configs/demo.py --workdir=runs/demo --config.mode=eval
  python -m freqforensics.main --config=configs/folder.py --workdir=runs/demo --config.mode=eval \\
      --config.eval.source_dir=/path/to/class_folders

Uses only the work dir's bundle (parameters, statistics, label names, preprocessing). A folder is
prepared on the fly with the bundle's image size, channels and crop; its class folders must carry
label names the model knows. Writes `WORKDIR/eval_<name>.json` with the confusion and ROC PNGs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from freqforensics import bundle, distributed, evaluate, sharding, steps
from freqforensics.data import dataset, pipeline, prepare
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


def _targets(config: ml_collections.ConfigDict, b: bundle.Bundle) -> dict[str, Any]:
  """name -> source with labels in the model's order."""
  if config.eval.source_dir:
    options = prepare.PrepareOptions(image_size=b.info["image_size"], channels=b.info["channels"],
                                     split=(0.0, 0.0, 1.0), crop=b.info.get("crop", "center"),
                                     max_pixels=config.data.max_pixels, num_threads=config.data.num_threads)
    prepared = prepare.prepare(config.eval.source_dir, dataset.data_root(config) / "prepared", options,
                               progress=bool(config.progress), min_classes=1)
    splits = {"folder_" + Path(config.eval.source_dir).resolve().name: "test"}
  else:
    prepared = dataset.prepare_from_config(config, progress=bool(config.progress))
    if tuple(b.info["input_shape"]) != tuple(prepared.image_shape):
      raise UserError(f"the model takes {tuple(b.info['input_shape'])} inputs but the data set {prepared.path} holds"
                      f" {tuple(prepared.image_shape)} images: evaluate with the config it was trained with")
    splits = {s: s for s in config.eval.splits}
  unknown = [n for n in prepared.label_names if n not in b.label_names]
  if unknown:
    raise UserError(f"class folders {unknown} are not labels of this model ({list(b.label_names)}): evaluate on"
                    " folders named like the training classes")
  table = np.array([b.label_names.index(n) for n in prepared.label_names], np.int32)
  out = {}
  for name, split in splits.items():
    source = prepared.source(split)
    if not len(source):
      raise UserError(f"the {split} split of {prepared.path} is empty: nothing to evaluate")
    out[name] = _Relabelled(source, table)
  return out


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, dict[str, Any]]:
  """Evaluates WORKDIR/bundle on the config's splits (or `eval.source_dir`); returns name -> metrics."""
  workdir = Path(workdir).expanduser()
  b = bundle.load(workdir / "bundle")
  mesh = sharding.make_mesh(steps.num_devices(config))
  put = sharding.make_put(mesh)
  graphdef, state = nnx.split(b.model)
  state = jax.device_put(state, sharding.replicated(mesh))
  feature_fn = sharding.features_fn(mesh, b.info["features"])
  fs = jax.device_put(b.feature_stats, sharding.replicated(mesh)) if b.feature_stats is not None else None

  @jax.jit
  def logits_fn(state, batch, fs):
    return nnx.merge(graphdef, state)(feature_fn(batch["image"], fs), train=False)

  procs = {"process_index": jax.process_index(), "process_count": jax.process_count()}
  results = {}
  for name, source in _targets(config, b).items():
    n = pipeline.num_eval_steps(len(source), config.eval.batch_size, jax.process_count())
    with tqdm(total=n, desc=f"eval {name}", unit="batch", disable=not config.progress) as bar:
      m = evaluate.evaluate(lambda batch: sharding.settle(mesh, logits_fn(state, batch, fs)),
                            pipeline.eval_batches(source, config.eval.batch_size, **procs), b.label_names, put=put,
                            progress=bar.update, settle=lambda x: sharding.settle(mesh, x), scores=True)
    m.update(split=name, model=b.info["model"], features=b.info["features"], bundle=str(workdir / "bundle"))
    if distributed.is_main_process():
      evaluate.write_metrics(workdir / f"eval_{name}.json", m)
    log.info("eval %s: accuracy %.4f on %d examples -> %s", name, m["accuracy"], m["num_examples"],
             workdir / f"eval_{name}.json")
    results[name] = m
  return results
