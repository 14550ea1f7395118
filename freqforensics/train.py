"""Training: a pure, jitted step on a ('data',) device mesh, driven by one top-to-bottom loop.

`train_and_evaluate(config, workdir)` is what the CLI, tests and notebooks call. It prepares the
data, computes the feature statistics, trains with Adam and early stopping on validation loss,
checkpoints every epoch (resume is automatic), restores the best epoch and evaluates on test.
The step takes the model and optimizer state as one pytree (split once from NNX, merged inside
the step) and a batch sharded over all devices, so the same code runs on 1 or N devices.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from tqdm.auto import tqdm

from freqforensics import checkpointing, evaluate, losses, models, sharding
from freqforensics.data import dataset, pipeline
from freqforensics.errors import UserError

log = logging.getLogger(__name__)

# Files a run writes in its work dir; `--overwrite` removes exactly these, nothing else.
RUN_FILES: tuple[str, ...] = ("config.json", "checkpoints", "metrics.jsonl", "tensorboard", "model.json",
                              "test_metrics.json", "val_metrics.json")
# Config fields that do not change results: a resumed run may differ in these.
_RUNTIME_KEYS: tuple[str, ...] = ("data.num_threads", "data.data_dir", "progress")


# ----------------------------------------------------------------------------------------------
# Devices and state.
# ----------------------------------------------------------------------------------------------
def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with the config's learning rate, betas and epsilon (Keras defaults: eps 1e-7)."""
  t = config.train
  return optax.adam(t.learning_rate, b1=t.b1, b2=t.b2, eps=t.eps)


def create_state(config: ml_collections.ConfigDict, input_shape: tuple[int, ...], num_labels: int):
  """Initialises model and optimizer; returns (graphdef, state pytree, model)."""
  m = config.model
  model = models.create_model(m.name, input_shape, models.num_outputs(num_labels), l1=m.l1, l2=m.l2,
                              seed=config.seed)
  optimizer = nnx.Optimizer(model, make_optimizer(config), wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))
  return graphdef, state, model


def make_train_step(graphdef, kind: str, mesh: jax.sharding.Mesh):
  """The jitted step `(state, batch, stats) -> (state, sums)`; state is donated, batch sharded.

  Features are computed per device (no communication); the model and its gradients run under
  automatic sharding, which all-reduces the gradients of the replicated parameters.
  """
  feature_fn = sharding.features_fn(mesh, kind)

  def train_step(state, batch, feature_stats):
    model, optimizer = nnx.merge(graphdef, state)
    x = feature_fn(batch["image"], feature_stats)

    def loss_fn(model):
      logits = model(x, train=True)
      loss = jnp.mean(losses.per_example_loss(logits, batch["label"]))
      return loss + model.penalty(), (loss, logits)

    (_, (loss, logits)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    correct = jnp.sum(losses.predictions(logits) == batch["label"])
    n = batch["label"].shape[0]
    sums = {"loss": loss * n, "correct": correct.astype(jnp.float32), "count": jnp.float32(n)}
    return nnx.state((model, optimizer)), sums

  rep = sharding.replicated(mesh)
  return jax.jit(train_step, donate_argnums=0, out_shardings=(rep, rep))


def make_logits_fn(graphdef, kind: str, mesh: jax.sharding.Mesh):
  """A jitted `(state, batch, stats) -> logits` in inference mode."""
  feature_fn = sharding.features_fn(mesh, kind)

  @jax.jit
  def logits_fn(state, batch, feature_stats):
    model, _ = nnx.merge(graphdef, state)
    return model(feature_fn(batch["image"], feature_stats), train=False)

  return logits_fn


def _num_devices(config: ml_collections.ConfigDict) -> int:
  """The mesh size: `num_devices`, or (0) the most devices that both batch sizes divide over."""
  sizes = (config.train.batch_size, config.eval.batch_size)
  if config.num_devices:
    if config.num_devices > jax.device_count() or any(b % config.num_devices for b in sizes):
      raise UserError(f"num_devices={config.num_devices} does not fit: {jax.device_count()} device(s) exist and"
                      f" train.batch_size ({sizes[0]}) and eval.batch_size ({sizes[1]}) must be multiples of it")
    return config.num_devices
  n = jax.device_count()
  while any(b % n for b in sizes):
    n -= 1
  if n < jax.device_count():
    log.warning("using %d of %d devices: the batch sizes %s do not split over all", n, jax.device_count(), sizes)
  return n


# ----------------------------------------------------------------------------------------------
# Work dir bookkeeping.
# ----------------------------------------------------------------------------------------------
def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
  return out


def check_workdir(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool) -> None:
  """Creates the work dir; refuses one holding a run of another config unless `overwrite`."""
  if overwrite:
    for name in RUN_FILES:
      p = workdir / name
      if p.is_dir():
        shutil.rmtree(p)
      elif p.exists():
        p.unlink()
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / "config.json"
  current = json.loads(config.to_json())
  if path.exists():
    old = _flatten(json.loads(path.read_text()))
    new = _flatten(current)
    diff = sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and not any(k == r or k.startswith(r + ".") for r in _RUNTIME_KEYS))
    if diff:
      shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:3])
      raise UserError(
          f"work dir {workdir} holds a run of another config ({shown}{', ...' if len(diff) > 3 else ''}):"
          " use a new --workdir, or pass --overwrite to replace that run")
  elif any((workdir / name).exists() for name in RUN_FILES):
    raise UserError(f"work dir {workdir} holds run files but no config.json: use a new --workdir or --overwrite")
  path.write_text(json.dumps(current, indent=2) + "\n")


def _append_metrics(workdir: Path, row: dict[str, Any]) -> None:
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")


def _truncate_metrics(workdir: Path, last_epoch: int) -> None:
  """Drops rows of epochs after the restored checkpoint (written before an interruption)."""
  path = workdir / "metrics.jsonl"
  if path.exists():
    rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= last_epoch]
    path.write_text("".join(r + "\n" for r in rows))


# ----------------------------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------------------------
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       overwrite: bool = False) -> dict[str, Any]:
  """Trains the config's model, evaluates the best epoch on test; returns the test metrics."""
  workdir = Path(workdir).expanduser()
  check_workdir(config, workdir, overwrite)
  progress = bool(config.progress)
  t = config.train
  kind = config.features
  mesh = sharding.make_mesh(_num_devices(config))
  put = sharding.make_put(mesh)

  # --- Data and feature statistics.
  prepared = dataset.prepare_from_config(config, progress=progress)
  labels = prepared.label_names
  log.info("dataset %s: %s, labels %s", prepared.path, prepared.num_examples, dict(enumerate(labels)))
  feature_stats = dataset.feature_stats(prepared, kind, mesh, batch_size=config.eval.batch_size,
                                        num_threads=config.data.num_threads or 2, progress=progress)
  if feature_stats is not None:
    shutil.copyfile(prepared.path / f"stats_{kind}.npz", workdir / f"stats_{kind}.npz")
  train_src, val_src, test_src = (prepared.source(s) for s in ("train", "val", "test"))
  if len(train_src) < t.batch_size:
    raise UserError(f"the training split has {len(train_src)} images, fewer than train.batch_size={t.batch_size}:"
                    " lower the batch size or add images")
  if not len(val_src):
    raise UserError("the validation split is empty: early stopping needs one; give data.split a val part")

  # --- Model, optimizer, checkpoints.
  graphdef, state, model = create_state(config, prepared.image_shape, len(labels))
  num_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  log.info("model %s on %s features: %d parameters, %d device(s)", config.model.name, kind, num_params, mesh.size)
  state = jax.device_put(state, sharding.replicated(mesh))
  stats_dev = jax.device_put(feature_stats, sharding.replicated(mesh)) if feature_stats is not None else None
  train_step = make_train_step(graphdef, kind, mesh)
  logits_fn = make_logits_fn(graphdef, kind, mesh)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints")
  record = {"epoch": 0, "best_epoch": 0, "best_val_loss": math.inf, "bad_epochs": 0, "stopped": False}
  if (latest := ckpt.latest_step()) is not None:
    pure, record = ckpt.restore(latest, nnx.to_pure_dict(state))
    state = _into(state, pure)
    _truncate_metrics(workdir, record["epoch"])
    log.info("resumed from epoch %d in %s", record["epoch"], ckpt.directory)

  with open(workdir / "model.json", "w") as f:
    json.dump({"model": config.model.name, "features": kind, "image_shape": list(prepared.image_shape),
               "label_names": list(labels), "num_params": int(num_params),
               "stats": f"stats_{kind}.npz" if feature_stats is not None else None,
               "dataset": str(prepared.path)}, f, indent=2)
  writer = _metric_writer(workdir)

  def run_eval(state, source, name):
    steps = pipeline.num_eval_steps(len(source), config.eval.batch_size)
    bar = tqdm(total=steps, desc=f"eval {name}", unit="batch", leave=False, disable=not progress)
    m = evaluate.evaluate(lambda b: logits_fn(state, b, stats_dev),
                          pipeline.eval_batches(source, config.eval.batch_size, num_threads=2), labels,
                          put=put, progress=bar.update)
    bar.close()
    return m

  # --- Epochs, with early stopping on validation loss.
  steps_per_epoch = pipeline.num_train_steps(len(train_src), t.batch_size)
  while not record["stopped"] and record["epoch"] < t.epochs:
    epoch = record["epoch"] + 1
    start = time.time()
    sums = None
    batches = pipeline.train_batches(train_src, t.batch_size, seed=config.seed, epoch=epoch,
                                     num_threads=config.data.num_threads or 2)
    for batch in tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{t.epochs}", unit="step",
                      leave=False, disable=not progress, mininterval=1.0):
      state, s = train_step(state, put(batch), stats_dev)
      sums = s if sums is None else jax.tree.map(jnp.add, sums, s)
    sums = jax.tree.map(float, sums)
    train_loss = sums["loss"] / sums["count"]
    if not math.isfinite(train_loss):
      ckpt.close()
      writer.close()
      raise UserError(f"training loss became {train_loss} in epoch {epoch}: lower train.learning_rate; the last"
                      f" good checkpoint (epoch {record['epoch']}) is in {ckpt.directory}")
    val = run_eval(state, val_src, "val")
    improved = val["loss"] < record["best_val_loss"] - t.min_delta
    record = {"epoch": epoch, "best_epoch": epoch if improved else record["best_epoch"],
              "best_val_loss": val["loss"] if improved else record["best_val_loss"],
              "bad_epochs": 0 if improved else record["bad_epochs"] + 1}
    record["stopped"] = record["bad_epochs"] >= t.patience
    row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": sums["correct"] / sums["count"],
           "val_loss": val["loss"], "val_accuracy": val["accuracy"], "seconds": round(time.time() - start, 3)}
    # The row first, then the checkpoint: a crash in between leaves a row that resume truncates.
    _append_metrics(workdir, row)
    ckpt.save(epoch, nnx.to_pure_dict(state), record, val["loss"])
    for k, v in row.items():
      if k != "epoch":
        writer.add_scalar(k, v, epoch)
    writer.flush()
    log.info("epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f%s", epoch, train_loss,
             row["train_accuracy"], val["loss"], val["accuracy"], " (early stop)" if record["stopped"] else "")

  # --- Restore the best epoch and evaluate it.
  if t.restore_best and record["best_epoch"] and record["best_epoch"] != record["epoch"]:
    best, _ = ckpt.restore(record["best_epoch"], nnx.to_pure_dict(state))
    state = _into(state, best)
    log.info("restored the best epoch %d (val loss %.4f)", record["best_epoch"], record["best_val_loss"])
  ckpt.close()
  writer.close()
  results = {}
  for name, source in (("val", val_src), ("test", test_src)):
    if len(source):
      m = run_eval(state, source, name)
      m.update(epoch=record["best_epoch"] if t.restore_best else record["epoch"], split=name,
               model=config.model.name, features=kind, dataset=str(prepared.path))
      evaluate.write_metrics(workdir / f"{name}_metrics.json", m)
      results[name] = m
  return results.get("test") or results["val"]


def _into(state, pure: dict):
  """Puts a restored pure dict into (a copy of) the NNX state structure of `state`."""
  state = jax.tree.map(lambda x: x, state)  # a copy: the original may be donated
  nnx.replace_by_pure_dict(state, pure)
  return state


def _metric_writer(workdir: Path):
  """TensorBoard event files beside metrics.jsonl."""
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

  return SummaryWriter(str(workdir / "tensorboard"))
