"""The evaluation at the end of a training run, on the path `mode=eval` takes (`runner`).

`evaluate_run` fits the operating point on validation (temperature, decision threshold, the open-set
score's statistics and threshold), evaluates validation and test, builds the model card, writes the
bundle with them and the reports (`val_metrics.json`, `test_metrics.json`, `val_reliability.png`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections

from freqforensics import bundle
from freqforensics import workdir as wd
from freqforensics.data import loading
from freqforensics.evaluation import calibration, figures, model_card, operating_points, outliers, results, runner

log = logging.getLogger(__name__)

# (info, outlier_stats, card markdown) -> None: writes the bundle with its final description and files.
SaveBundle = Callable[[bundle.BundleInfo, "outliers.OutlierStats | None", str], None]


def evaluate_run(
  config: ml_collections.ConfigDict,
  workdir: Path,
  data: loading.TrainingData,
  info: bundle.BundleInfo,
  logits: Callable[[jax.Array], jax.Array],
  *,
  mesh: jax.sharding.Mesh,
  save: SaveBundle,
  epoch: int,
  write: bool,
) -> dict[str, results.SplitResult]:
  """Fits the operating point on validation, evaluates val and test, writes the bundle and the reports.

  Collective: every process runs it (each reads its share); `write` is for process 0 only.

  Args:
    config: the run's config (`eval.*`, `data.*`, `model.name`, `progress`).
    workdir: the run's work dir: the reports go there.
    data: the run's data (`loading.training_data`).
    info: the bundle's description without calibration (`real_label` set).
    logits: images sharded over `mesh` -> logits of the trained model.
    mesh: the ('data',) mesh.
    save: writes the bundle with its final description, outlier statistics and card.
    epoch: the epoch whose parameters are evaluated (written in the reports).
    write: this process writes the files (process 0).

  Returns:
    split name (`val`, and `test` when it has images) -> metrics with scores.
  """
  progress, threads, real = bool(config.progress) and write, config.data.num_threads or 2, info.real_label
  ostats = None
  if real is not None:  # collective: every process computes its share; process 0 writes the file
    ostats = outliers.fit(
      data.prepared,
      real,
      mesh,
      source=data.stats_source,
      tag=data.tag,
      batch_size=config.eval.batch_size,
      num_threads=threads,
      progress=progress,
      write=write,
    )
  per_example = runner.outlier_fn(ostats, mesh) if ostats is not None else None

  def evaluate(source, name: str) -> results.SplitResult:
    return runner.evaluate_source(
      logits,
      source,
      info.label_names,
      mesh=mesh,
      batch_size=config.eval.batch_size,
      num_threads=threads,
      progress=progress,
      name=name,
      per_example=per_example,
    )

  split_results = {"val": evaluate(data.val, "val")}
  info = fit_operating_point(info, split_results["val"].scores, ostats, config.eval)
  if len(data.test):
    split_results["test"] = evaluate(data.test, "test")
  detector = operating_points.Detector.from_info(info)
  for name, r in split_results.items():
    runner.add_detection(r, detector, info.outliers)
    r.metrics.update(epoch=epoch, split=name, model=config.model.name, features=info.features, dataset=info.dataset)
  val, test = split_results["val"], split_results.get("test")
  val.metrics["calibration"] = dict(
    info.calibration, reliability=reliability(val.scores, info.calibration["temperature"])
  )
  card = model_card.build(
    info, data.prepared, source=config.data.source, val=val.metrics, test=test.metrics if test else None
  )
  info = dataclasses.replace(info, model_card=card)
  save(info, ostats, model_card.render(info, card))
  if write:
    for name, r in split_results.items():
      runner.write(workdir, f"{name}_metrics", r)
    _reliability_png(workdir / "val_reliability.png", info, val.metrics["calibration"]["reliability"])
  log.info("model card: %s", card["summary"])
  return split_results


def fit_operating_point(
  info: bundle.BundleInfo, val: results.Scores, ostats: outliers.OutlierStats | None, eval_config: Any
) -> bundle.BundleInfo:
  """`info` with the `calibration` (and, with outlier statistics, `outliers`) block fit on validation scores."""
  info = dataclasses.replace(
    info,
    calibration=operating_points.fit(val.logits, val.labels, info.label_names, info.real_label, eval_config.threshold),
  )
  if ostats is None:
    return info
  scores = outliers.all_scores(val.per_example, val.logits)
  block = outliers.info(
    ostats, scores, val.labels == info.real_label, eval_config.outlier_fpr, eval_config.outlier_score
  )
  return dataclasses.replace(info, outliers=block)


def reliability(scores: results.Scores, temperature: float) -> dict[str, Any]:
  """Reliability bins of a split's logits before and after temperature scaling."""
  return {
    "before": calibration.reliability(calibration.probabilities(scores.logits), scores.labels),
    "after": calibration.reliability(calibration.probabilities(scores.logits, temperature), scores.labels),
  }


def _reliability_png(path: Path, info: bundle.BundleInfo, bins: dict[str, Any]) -> None:
  """The validation reliability figure before and after temperature scaling (registered in the work dir)."""
  wd.register(path.parent, path)
  c = info.calibration
  after = f"temperature {c['temperature']:.3g}"
  figures.reliability_png(
    {"uncalibrated": bins["before"], after: bins["after"]},
    {"uncalibrated": c["ece_before"], after: c["ece_after"]},
    path,
    f"{info.model} {info.features}: validation reliability",
  )
