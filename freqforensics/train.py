"""Training: one top-to-bottom loop over epochs, with early stopping, checkpoints and resume.

`train_and_evaluate(config, workdir)` is what the CLI, tests and notebooks call. It prepares the
data, computes the feature statistics, trains with Adam and early stopping on validation loss,
checkpoints every epoch (and every `train.checkpoint_every_steps` steps), restores the best epoch
and evaluates it on the path `mode=eval` takes (`evaluation.evaluate_run`: the operating point on
validation, test, the model card, the bundle and the reports).

Resume is automatic and exact: a checkpoint holds the model, optimizer, BatchNorm statistics and
RNG state, the data position (epoch and step: each epoch's order is a pure function of the seed and
the epoch) and the early-stopping record, so a killed run started again with the same command ends
with the parameters of an uninterrupted one.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from tqdm.auto import tqdm

from freqforensics import bundle, checkpointing, defaults, models, sharding, spectral, stats, steps
from freqforensics import workdir as wd
from freqforensics.data import augment, loading, pipeline
from freqforensics.data.distortions import Perturbation
from freqforensics.errors import UserError
from freqforensics.evaluation import evaluate_run, operating_points, runner

log = logging.getLogger(__name__)


# The early-stopping record before the first epoch; checkpoints hold it (with the data position) for resume.
FIRST_RECORD: dict[str, Any] = {
  "epoch": 0,  # the last finished epoch
  "step": 0,  # steps done in the epoch after it (a mid-epoch checkpoint), with their loss sums
  "sums": None,
  "best_epoch": 0,
  "best_val_loss": math.inf,
  "bad_epochs": 0,
  "stopped": False,
}


def early_stopping(
  record: dict[str, Any], epoch: int, val_loss: float, *, patience: int, min_delta: float
) -> dict[str, Any]:
  """The early-stopping record after `epoch` with validation loss `val_loss` (Keras semantics).

  An epoch improves when its loss is below the best by more than `min_delta`; training stops
  after `patience` epochs in a row without improvement.

  Args:
    record: the record after the previous epoch (`FIRST_RECORD` before the first).
    epoch: the epoch just finished.
    val_loss: its validation loss.
    patience: epochs without improvement that stop training.
    min_delta: the least decrease that counts as an improvement.
  """
  improved = val_loss < record["best_val_loss"] - min_delta
  bad = 0 if improved else record["bad_epochs"] + 1
  best = (epoch, val_loss) if improved else (record["best_epoch"], record["best_val_loss"])
  return dict(
    FIRST_RECORD, epoch=epoch, best_epoch=best[0], best_val_loss=best[1], bad_epochs=bad, stopped=bad >= patience
  )


def _synced(fn, name: str):
  """Runs `fn` on process 0 first (it writes shared files), then on the others (they reuse them).

  Only for host-side work: `fn` must not run anything collective (a jitted pass over the global mesh,
  a gather), which would wait for processes that wait at the barrier.
  """
  if jax.process_count() == 1:
    return fn()
  if sharding.is_main_process():
    result = fn()
    sharding.barrier(name)
    return result
  sharding.barrier(name)
  return fn()


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, overwrite: bool = False
) -> dict[str, Any]:
  """Trains the config's model, evaluates the best epoch on test; returns the test metrics."""
  started = time.time()
  workdir = Path(workdir).expanduser()
  main = sharding.is_main_process()
  # Everything a user can get wrong is checked before the work dir is touched (`workdir.Run`).
  defaults.validate(config)
  kind = defaults.feature_name(config)  # e.g. "dct_log", "wpt_log-haar-l3"
  augmentation = Perturbation.from_config(config.augment)
  with wd.Run(config, workdir, overwrite, write=main) as run:  # refuses another config; locks the work dir
    return _train(config, run, kind, augmentation, started)


def _train(
  config: ml_collections.ConfigDict, run: wd.Run, kind: str, augmentation: Perturbation, started: float
) -> dict[str, Any]:
  workdir, main = run.path, run.write
  progress = bool(config.progress) and main
  t = config.train
  mesh = sharding.make_mesh(steps.num_devices(config))
  threads = config.data.num_threads or 2

  # --- Data and feature statistics (written by process 0, reused by the others).
  data = _synced(lambda: loading.training_data(config, augmentation, progress=progress), "prepared")
  prepared, labels = data.prepared, data.prepared.label_names
  real = operating_points.real_index(labels, config.data.real_class)  # a mistyped real class: refused now
  log.info("dataset %s: %s, labels %s", prepared.path, prepared.num_examples, dict(enumerate(labels)))
  feature_stats, stats_path = stats.feature_stats(
    prepared,
    kind,
    mesh,
    batch_size=config.eval.batch_size,
    num_threads=threads,
    progress=progress,
    write=main,
    source=data.stats_source,
    tag=data.tag,
  )
  steps_per_epoch = pipeline.num_train_steps(len(data.train), t.batch_size)
  if steps_per_epoch == 0:
    raise UserError(
      f"the training split has {len(data.train)} images, fewer than train.batch_size={t.batch_size}:"
      " lower the batch size or add images"
    )

  # --- Model, optimizer, checkpoints; the run starts (with --overwrite, the earlier run is replaced only now).
  info = _bundle_info(config, prepared, kind, real)
  graphdef, state, model = steps.create_state(config, info.feature_shape, len(labels), steps_per_epoch)
  run.start()
  about = f"model {config.model.name} ({config.model.variant}) on {kind} features"
  log.info(
    "%s, %d device(s) on %d process(es):\n%s", about, mesh.size, jax.process_count(), steps.parameter_overview(model)
  )
  state = jax.device_put(state, sharding.replicated(mesh))
  stats_dev = jax.device_put(feature_stats, sharding.replicated(mesh)) if feature_stats is not None else None
  train_step = steps.make_train_step(graphdef, kind, mesh)
  logits_fn = steps.make_logits_fn(graphdef, kind, mesh)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints")
  metrics_log = wd.MetricsLog(workdir, enabled=main)
  evaluate = functools.partial(
    runner.evaluate_source, mesh=mesh, batch_size=config.eval.batch_size, num_threads=threads, progress=progress
  )
  record = FIRST_RECORD
  if (latest := ckpt.latest_step()) is not None:
    pure, record = ckpt.restore(latest, nnx.to_pure_dict(state))
    state = _into(state, pure)
    log.info(
      "resumed at epoch %d, step %d, from %s", record["epoch"] + (record["step"] > 0), record["step"], ckpt.directory
    )
  # Rows past the restored epoch go before this run appends its own: with no checkpoint (a failure before the
  # first one was saved, such as a full disk at the end of epoch 1) that is every row.
  metrics_log.truncate(record["epoch"])

  def save_bundle(state, info=info, outlier_stats=None, card=None):  # process 0 writes it
    if main:
      wd.register(workdir, *bundle.files(workdir / "bundle", stats_path))
      best_model, _ = nnx.merge(graphdef, state)
      bundle.save(workdir / "bundle", best_model, info, stats_path, outlier_stats=outlier_stats, card=card)

  # --- Epochs, with early stopping on validation loss.
  while not record["stopped"] and record["epoch"] < t.epochs:
    epoch, start_step = record["epoch"] + 1, record["step"]
    epoch_start = time.time()
    step_fn = lambda state, batch: train_step(state, batch, stats_dev)  # noqa: E731
    state, sums = _epoch(config, data, augmentation, step_fn, mesh, ckpt, record, epoch, steps_per_epoch, state)
    train_loss = sums["loss"] / sums["count"]
    if not math.isfinite(train_loss):
      ckpt.close()
      metrics_log.close()
      raise UserError(
        f"training loss became {train_loss} in epoch {epoch}: lower train.learning_rate; the last"
        f" good checkpoint is in {ckpt.directory}"
      )
    val = evaluate(lambda x, state=state: logits_fn(state, x, stats_dev), data.val, labels, name="val", scores=False)
    previous_best = record["best_epoch"]
    record = early_stopping(record, epoch, val.metrics["loss"], patience=t.patience, min_delta=t.min_delta)
    row = _row(epoch, sums, val.metrics, time.time() - epoch_start, (steps_per_epoch - start_step) * t.batch_size)
    # The row first, then the checkpoint: a crash in between leaves a row that resume truncates.
    metrics_log.write(row)
    # Kept: this checkpoint (resume) and the best epoch's, by the record inside it (so also after a restart).
    ckpt.save(epoch * steps_per_epoch, nnx.to_pure_dict(state), record, keep=[record["best_epoch"] * steps_per_epoch])
    if record["best_epoch"] != previous_best:
      save_bundle(state)
    _log_epoch(row, stopped=record["stopped"])

  # --- Restore the best epoch, write its bundle (again: a run killed between a best epoch's checkpoint and its
  # bundle resumes here), then evaluate it: operating point on validation, test, the model card, the reports.
  if t.restore_best and record["best_epoch"] and record["best_epoch"] != record["epoch"]:
    best, _ = ckpt.restore(record["best_epoch"] * steps_per_epoch, nnx.to_pure_dict(state))
    state = _into(state, best)
    log.info("restored the best epoch %d (val loss %.4f)", record["best_epoch"], record["best_val_loss"])
  save_bundle(state)
  ckpt.close()
  metrics_log.close()
  split_results = evaluate_run.evaluate_run(
    config,
    workdir,
    data,
    info,
    lambda images: logits_fn(state, images, stats_dev),
    mesh=mesh,
    save=lambda info, outlier_stats, card: save_bundle(state, info, outlier_stats, card),
    epoch=record["best_epoch"] if t.restore_best else record["epoch"],
    write=main,
  )
  log.info("finished in %.1f s", time.time() - started)
  return (split_results.get("test") or split_results["val"]).metrics


def _epoch(
  config: ml_collections.ConfigDict,
  data: loading.TrainingData,
  augmentation: Perturbation,
  step_fn,
  mesh: jax.sharding.Mesh,
  ckpt: checkpointing.Checkpointer,
  record: dict[str, Any],
  epoch: int,
  steps_per_epoch: int,
  state,
):
  """One epoch from the record's data position (`step_fn(state, batch) -> (state, sums)`, checkpointed every
  `train.checkpoint_every_steps`): returns the state and the epoch's summed loss and counts."""
  t, start_step = config.train, record["step"]
  sums = record["sums"] or {"loss": 0.0, "correct": 0.0, "count": 0.0}
  # Augmentation draws depend on (seed, epoch, example) only: a resumed epoch gets the same images.
  epoch_src = augment.augmented(data.train, augmentation, seed=config.seed, epoch=epoch)
  batches = pipeline.train_batches(
    epoch_src,
    t.batch_size,
    seed=config.seed,
    epoch=epoch,
    start_step=start_step,
    num_threads=config.data.num_threads or 2,
    **sharding.process_share(),
  )
  put, every = sharding.make_put(mesh), t.checkpoint_every_steps
  bar = tqdm(
    total=steps_per_epoch * t.batch_size,
    initial=start_step * t.batch_size,
    unit="img",
    desc=f"epoch {epoch}/{t.epochs}",
    leave=False,
    disable=not (config.progress and sharding.is_main_process()),
    smoothing=0.05,
    mininterval=1.0,
  )
  device_sums = None
  for step, batch in enumerate(batches, start=start_step + 1):
    state, s = sharding.settle(mesh, step_fn(state, put(batch)))
    device_sums = sharding.settle(mesh, s if device_sums is None else jax.tree.map(jnp.add, device_sums, s))
    bar.update(t.batch_size)
    if every and step % every == 0 and step < steps_per_epoch:  # mid-epoch checkpoint with the data position
      ckpt.save(
        (epoch - 1) * steps_per_epoch + step,
        nnx.to_pure_dict(state),
        dict(record, step=step, sums=_add(sums, device_sums)),
        keep=[record["best_epoch"] * steps_per_epoch],
      )
  bar.close()
  return state, _add(sums, device_sums)


def _row(epoch: int, sums: dict[str, float], val: dict[str, Any], seconds: float, images: int) -> dict[str, Any]:
  """The epoch's row of `metrics.jsonl`."""
  return {
    "epoch": epoch,
    "train_loss": sums["loss"] / sums["count"],
    "train_accuracy": sums["correct"] / sums["count"],
    "val_loss": val["loss"],
    "val_accuracy": val["accuracy"],
    "seconds": round(seconds, 3),
    "samples_per_second": round(images / seconds, 1),
  }


def _log_epoch(row: dict[str, Any], *, stopped: bool) -> None:
  log.info(
    "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0f img/s%s",
    row["epoch"],
    row["train_loss"],
    row["train_accuracy"],
    row["val_loss"],
    row["val_accuracy"],
    row["samples_per_second"],
    " (early stop)" if stopped else "",
  )


def _add(sums: dict[str, float], device_sums) -> dict[str, float]:
  if device_sums is None:
    return dict(sums)
  host = sharding.to_host(device_sums)
  return {k: sums[k] + float(host[k]) for k in sums}


def _bundle_info(config: ml_collections.ConfigDict, prepared, kind: str, real: int | None) -> bundle.BundleInfo:
  """The bundle's description before its operating point is fit (`evaluate_run` adds it)."""
  return bundle.BundleInfo(
    model=config.model.name,
    variant=config.model.variant,
    features=kind,
    input_shape=prepared.image_shape,
    feature_shape=spectral.feature_shape(kind, prepared.image_shape),
    outputs=models.num_outputs(len(prepared.label_names)),
    label_names=prepared.label_names,
    image_size=prepared.image_shape[0],
    channels=prepared.image_shape[-1],
    crop=prepared.metadata.get("crop", "center"),
    match_format=prepared.metadata.get("match_format", ""),
    dataset=str(prepared.path),
    augment=config.augment.to_dict(),
    real_label=real,
  )


def _into(state, pure: dict):
  """Puts a restored pure dict into (a copy of) the NNX state structure of `state`."""
  state = jax.tree.map(lambda x: x, state)  # a copy: the original may be donated
  nnx.replace_by_pure_dict(state, pure)
  return state
