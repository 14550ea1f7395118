"""Training: one top-to-bottom loop over epochs, with early stopping, checkpoints and resume.

`train_and_evaluate(config, workdir)` is what the CLI, tests and notebooks call. It prepares the
data, computes the feature statistics, trains with Adam and early stopping on validation loss,
checkpoints every epoch (and every `train.checkpoint_every_steps` steps), restores the best epoch,
fits the operating point on validation (temperature, decision threshold, the open-set score's
threshold), writes the model bundle with its model card and evaluates on test.

Resume is automatic and exact: a checkpoint holds the model, optimizer, BatchNorm statistics and
RNG state, the data position (epoch and step: each epoch's order is a pure function of the seed and
the epoch) and the early-stopping record, so a killed run started again with the same command ends
with the parameters of an uninterrupted one.
"""

from __future__ import annotations

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
from freqforensics.evaluation import calibration, figures, model_card, operating_points, outliers, runner

log = logging.getLogger(__name__)


def early_stopping(
  record: dict[str, Any], epoch: int, val_loss: float, *, patience: int, min_delta: float
) -> dict[str, Any]:
  """The early-stopping record after `epoch` with validation loss `val_loss` (Keras semantics).

  An epoch improves when its loss is below the best by more than `min_delta`; training stops
  after `patience` epochs in a row without improvement.
  """
  improved = val_loss < record["best_val_loss"] - min_delta
  bad = 0 if improved else record["bad_epochs"] + 1
  return {
    "epoch": epoch,
    "step": 0,
    "sums": None,
    "best_epoch": epoch if improved else record["best_epoch"],
    "best_val_loss": val_loss if improved else record["best_val_loss"],
    "bad_epochs": bad,
    "stopped": bad >= patience,
  }


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
  put = sharding.make_put(mesh)
  procs = sharding.process_share()
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
  feature_shape = spectral.feature_shape(kind, prepared.image_shape)
  graphdef, state, model = steps.create_state(config, feature_shape, len(labels), steps_per_epoch)
  run.start()
  log.info(
    "model %s (%s) on %s features, %d device(s) on %d process(es):\n%s",
    config.model.name,
    config.model.variant,
    kind,
    mesh.size,
    jax.process_count(),
    steps.parameter_overview(model),
  )
  state = jax.device_put(state, sharding.replicated(mesh))
  stats_dev = jax.device_put(feature_stats, sharding.replicated(mesh)) if feature_stats is not None else None
  train_step = steps.make_train_step(graphdef, kind, mesh)
  logits_fn = steps.make_logits_fn(graphdef, kind, mesh)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints")
  metrics_log = wd.MetricsLog(workdir, enabled=main)
  record = {
    "epoch": 0,
    "step": 0,
    "sums": None,
    "best_epoch": 0,
    "best_val_loss": math.inf,
    "bad_epochs": 0,
    "stopped": False,
  }
  if (latest := ckpt.latest_step()) is not None:
    pure, record = ckpt.restore(latest, nnx.to_pure_dict(state))
    state = _into(state, pure)
    log.info(
      "resumed at epoch %d, step %d, from %s", record["epoch"] + (record["step"] > 0), record["step"], ckpt.directory
    )
  # Rows past the restored epoch go before this run appends its own: with no checkpoint (a failure before the
  # first one was saved, such as a full disk at the end of epoch 1) that is every row.
  metrics_log.truncate(record["epoch"])

  def run_eval(state, source, name, scores=False, per_example=None):
    return runner.evaluate_source(
      lambda images: logits_fn(state, images, stats_dev),
      source,
      labels,
      mesh=mesh,
      batch_size=config.eval.batch_size,
      num_threads=threads,
      progress=progress,
      name=name,
      scores=scores,
      per_example=per_example,
    )

  def save_bundle(state, info=None, **files):
    if main:
      best_model, _ = nnx.merge(graphdef, state)
      wd.register(workdir, *bundle.files(workdir / "bundle", stats_path))
      info = info or _bundle_info(config, prepared, labels, kind, real)
      bundle.save(workdir / "bundle", best_model, info, stats_path, **files)

  # --- Epochs, with early stopping on validation loss.
  every = t.checkpoint_every_steps
  while not record["stopped"] and record["epoch"] < t.epochs:
    epoch, start_step = record["epoch"] + 1, record["step"]
    epoch_start = time.time()
    sums = record["sums"] or {"loss": 0.0, "correct": 0.0, "count": 0.0}
    # Augmentation draws depend on (seed, epoch, example) only: a resumed epoch gets the same images.
    epoch_src = augment.augmented(data.train, augmentation, seed=config.seed, epoch=epoch)
    batches = pipeline.train_batches(
      epoch_src, t.batch_size, seed=config.seed, epoch=epoch, start_step=start_step, num_threads=threads, **procs
    )
    bar = tqdm(
      total=steps_per_epoch * t.batch_size,
      initial=start_step * t.batch_size,
      unit="img",
      desc=f"epoch {epoch}/{t.epochs}",
      leave=False,
      disable=not progress,
      smoothing=0.05,
      mininterval=1.0,
    )
    device_sums = None
    for step, batch in enumerate(batches, start=start_step + 1):
      state, s = sharding.settle(mesh, train_step(state, put(batch), stats_dev))
      device_sums = sharding.settle(mesh, s if device_sums is None else jax.tree.map(jnp.add, device_sums, s))
      bar.update(t.batch_size)
      if every and step % every == 0 and step < steps_per_epoch:  # mid-epoch checkpoint with the data position
        partial = _add(sums, device_sums)
        ckpt.save(
          (epoch - 1) * steps_per_epoch + step,
          nnx.to_pure_dict(state),
          dict(record, step=step, sums=partial),
          keep=[record["best_epoch"] * steps_per_epoch],
        )
    bar.close()
    sums = _add(sums, device_sums)
    train_loss = sums["loss"] / sums["count"]
    if not math.isfinite(train_loss):
      ckpt.close()
      metrics_log.close()
      raise UserError(
        f"training loss became {train_loss} in epoch {epoch}: lower train.learning_rate; the last"
        f" good checkpoint is in {ckpt.directory}"
      )
    val = run_eval(state, data.val, "val")
    previous_best = record["best_epoch"]
    record = early_stopping(record, epoch, val["loss"], patience=t.patience, min_delta=t.min_delta)
    row = {
      "epoch": epoch,
      "train_loss": train_loss,
      "train_accuracy": sums["correct"] / sums["count"],
      "val_loss": val["loss"],
      "val_accuracy": val["accuracy"],
      "seconds": round(time.time() - epoch_start, 3),
      "samples_per_second": round((steps_per_epoch - start_step) * t.batch_size / (time.time() - epoch_start), 1),
    }
    # The row first, then the checkpoint: a crash in between leaves a row that resume truncates.
    metrics_log.write(row)
    # Kept: this checkpoint (resume) and the best epoch's, by the record inside it (so also after a restart).
    ckpt.save(epoch * steps_per_epoch, nnx.to_pure_dict(state), record, keep=[record["best_epoch"] * steps_per_epoch])
    if record["best_epoch"] != previous_best:
      save_bundle(state)
    log.info(
      "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0f img/s%s",
      epoch,
      train_loss,
      row["train_accuracy"],
      val["loss"],
      val["accuracy"],
      row["samples_per_second"],
      " (early stop)" if record["stopped"] else "",
    )

  # --- Restore the best epoch, write the bundle, evaluate.
  if t.restore_best and record["best_epoch"] and record["best_epoch"] != record["epoch"]:
    best, _ = ckpt.restore(record["best_epoch"] * steps_per_epoch, nnx.to_pure_dict(state))
    state = _into(state, best)
    log.info("restored the best epoch %d (val loss %.4f)", record["best_epoch"], record["best_val_loss"])
  save_bundle(state)  # again: a run killed between a best epoch's checkpoint and its bundle resumes here
  ckpt.close()
  metrics_log.close()

  # --- Operating point on validation: temperature, decision threshold, the open-set score; then test.
  info = _bundle_info(config, prepared, labels, kind, real)
  ostats, per_example = None, None
  if real is not None:
    # Collective (every process computes its share of the pass; process 0 writes the file).
    ostats = outliers.fit(
      prepared,
      real,
      mesh,
      source=data.stats_source,
      tag=data.tag,
      batch_size=config.eval.batch_size,
      num_threads=threads,
      progress=progress,
      write=main,
    )
    per_example = runner.outlier_fn(ostats, mesh)
  val = run_eval(state, data.val, "val", scores=True, per_example=per_example)
  info["calibration"] = operating_points.fit(val["_logits"], val["_labels"], labels, real, config.eval.threshold)
  if ostats is not None:
    val_scores = outliers.all_scores(val["_per_example"], val["_logits"])
    info["outliers"] = outliers.info(
      ostats, val_scores, val["_labels"] == real, config.eval.outlier_fpr, config.eval.outlier_score
    )
  detector = operating_points.Detector.from_info(info)
  results = {"val": val}
  if len(data.test):
    results["test"] = run_eval(state, data.test, "test", scores=True, per_example=per_example)
  for name, m in results.items():
    runner.add_detection(m, detector, info.get("outliers"))
    m.update(
      epoch=record["best_epoch"] if t.restore_best else record["epoch"],
      split=name,
      model=config.model.name,
      features=kind,
      dataset=str(prepared.path),
    )
  val["calibration"] = dict(info["calibration"], reliability=_reliability(val, info["calibration"]["temperature"]))
  card = model_card.build(info, prepared, source=config.data.source, val=val, test=results.get("test"))
  info["model_card"] = card
  save_bundle(state, info, outlier_stats=ostats, card=model_card.render(info, card))
  if main:
    for name, m in results.items():
      runner.write(workdir, f"{name}_metrics", m)
    figure = workdir / "val_reliability.png"
    wd.register(workdir, figure)
    r = val["calibration"]["reliability"]
    figures.reliability_png(
      {"uncalibrated": r["before"], f"temperature {info['calibration']['temperature']:.3g}": r["after"]},
      {
        "uncalibrated": info["calibration"]["ece_before"],
        f"temperature {info['calibration']['temperature']:.3g}": info["calibration"]["ece_after"],
      },
      figure,
      f"{config.model.name} {kind}: validation reliability",
    )
  log.info("model card: %s", card["summary"])
  log.info("finished in %.1f s", time.time() - started)
  return results.get("test") or results["val"]


def _reliability(m: dict[str, Any], temperature: float) -> dict[str, Any]:
  """Reliability bins of a split's logits before and after temperature scaling."""
  return {
    "before": calibration.reliability(calibration.probabilities(m["_logits"]), m["_labels"]),
    "after": calibration.reliability(calibration.probabilities(m["_logits"], temperature), m["_labels"]),
  }


def _add(sums: dict[str, float], device_sums) -> dict[str, float]:
  if device_sums is None:
    return dict(sums)
  host = sharding.to_host(device_sums)
  return {k: sums[k] + float(host[k]) for k in sums}


def _bundle_info(config: ml_collections.ConfigDict, prepared, labels, kind: str, real: int | None) -> dict[str, Any]:
  # input_shape: the images the bundle takes; feature_shape: what its model takes (they differ for azimuthal).
  # real_label: the real class's index (None: no class is real, the model is no detector).
  return {
    "model": config.model.name,
    "variant": config.model.variant,
    "features": kind,
    "input_shape": list(prepared.image_shape),
    "feature_shape": list(spectral.feature_shape(kind, prepared.image_shape)),
    "outputs": models.num_outputs(len(labels)),
    "label_names": list(labels),
    "image_size": prepared.image_shape[0],
    "channels": prepared.image_shape[-1],
    "crop": prepared.metadata.get("crop", "center"),
    "match_format": prepared.metadata.get("match_format", ""),  # format matching of its data (`format_matching`)
    "dataset": str(prepared.path),
    "augment": config.augment.to_dict(),
    "real_label": real,
  }


def _into(state, pure: dict):
  """Puts a restored pure dict into (a copy of) the NNX state structure of `state`."""
  state = jax.tree.map(lambda x: x, state)  # a copy: the original may be donated
  nnx.replace_by_pure_dict(state, pure)
  return state
