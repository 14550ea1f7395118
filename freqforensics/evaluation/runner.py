"""The evaluation runner: training's validation and final test, and `--config.mode=eval`, on one path.

`evaluate_source` runs a model's logits over a source with the masked loop (every example once) and
`write` keeps the metrics in a work dir, so training and `mode=eval` give the same numbers for the same
bundle and split. `evaluate_workdir` is `mode=eval`: the work dir's bundle on the config's splits or
on `eval.source_dir` (`data.loading.eval_sources`; a cross-generator layout goes to `cross_generator`, and
folders read natively, `eval.read`, to `native_folders`),
one report per source (`eval_<name>.json`, never over an earlier report or a user's file). The command,
the reports and their names: docs/classify.md.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections

from freqforensics import bundle, defaults, sharding, steps
from freqforensics import workdir as wd
from freqforensics.data import augment, loading, protocol
from freqforensics.evaluation import loop, metrics, operating_points, outliers, placement, reading, results
from freqforensics.files import locks

log = logging.getLogger(__name__)


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
) -> results.SplitResult:
  """Metrics of `logits` on `source` with the masked loop: every example counts once, on any number of
  devices and hosts (each process reads its share).

  Args:
    logits: images sharded over `mesh` -> logits.
    source: a split source whose labels are in the model's order.
    label_names: the model's labels.
    mesh: the ('data',) mesh the images are sharded over.
    batch_size: the global batch size (the last batch is padded and masked).
    num_threads: threads reading the source.
    progress: show a progress bar.
    name: the bar's name.
    scores: add the ranking metrics and keep the `Scores` (logits, labels, probabilities).
    per_example: `(batch, logits) -> {name: (B,)}` values kept in the scores (`outlier_fn`).
  """
  settle = functools.partial(sharding.settle, mesh)
  return loop.evaluate(
    lambda batch: settle(logits(batch["image"])),
    loop.batches(source, batch_size, num_threads=num_threads, progress=progress, desc=f"eval {name}"),
    label_names,
    put=sharding.make_put(mesh),
    settle=settle,
    scores=scores,
    per_example=per_example,
  )


def outlier_fn(ostats: outliers.OutlierStats, mesh: jax.sharding.Mesh):
  """`(batch, logits) -> {candidate: (B,)}` of the spectral open-set candidates, for `evaluate_source`."""
  scores = outliers.scores_on(ostats, mesh)
  return lambda batch, logits: scores(batch["image"])


def add_detection(r: results.SplitResult, detector: operating_points.Detector, block: dict[str, Any] | None) -> None:
  """Adds a detector's `detection` block to a split's metrics (from its scores) and, with an open-set block,
  every candidate's flag rates (`outlier_candidates`). No-op for a model with no real class."""
  if detector.real is None or r.scores is None:
    return
  m, s = r.metrics, r.scores
  flags = None
  if block and s.per_example:
    scores = outliers.all_scores(s.per_example, s.logits)
    _, flags = outliers.flags(scores, block)
    m["outlier_candidates"] = outliers.flag_rates(scores, s.labels == detector.real, block["thresholds"])
  m["detection"] = operating_points.detection_metrics(detector, s.logits, s.labels, flags)
  if block:
    m["detection"]["outlier_score"] = block["score"]


def write(workdir: Path, name: str, r: results.SplitResult) -> Path:
  """Writes `WORKDIR/<name>.json` (and its figures), registered as the work dir's own; returns the path."""
  path = workdir / f"{name}.json"
  wd.register(workdir, *metrics.metric_files(path))
  metrics.write_metrics(path, r.metrics, r.scores)
  return path


def bundle_evaluator(
  b: bundle.Bundle, *, num_devices: int, batch_size: int, progress: bool = True
) -> Callable[[Any, str], results.SplitResult]:
  """`(source, name) -> SplitResult` of the bundle's model on a source whose labels are in the model's order.

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


def report(
  b: bundle.Bundle,
  workdir: Path,
  evaluate: Callable[[Any, str], results.SplitResult],
  source,
  name: str,
  *,
  real_class: str = "",
) -> results.SplitResult:
  """The report `mode=eval` writes for one source, `WORKDIR/eval_<name>.json` (main process): metrics, the
  detection block at the bundle's operating point, the bundle's note and what was evaluated.

  Args:
    b: the bundle evaluated.
    workdir: where the report goes (its files must be the work dir's own: `workdir.claim` first).
    evaluate: `(source, name) -> SplitResult` with scores (`bundle_evaluator`).
    source: labels in the model's order (`data.loading.relabelled_split`), perturbed or not.
    name: the report's name: `eval_<name>.json`, and its `split`.
    real_class: the real class of a bundle that stores none (`--config.data.real_class`).
  """
  r = evaluate(source, name)
  add_detection(r, operating_points.Detector.from_info(b.info, real_class), b.info.outliers)
  if b.note:
    r.metrics["note"] = b.note
  r.metrics.update(split=name, model=b.info.model, features=b.info.features, bundle=str(workdir / "bundle"))
  if isinstance(source, augment.PerturbedSource):
    r.metrics["perturbation"] = dataclasses.asdict(source.perturbation)
  if sharding.is_main_process():
    write(workdir, f"eval_{name}", r)
  return r


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, results.Report]:
  """Evaluates WORKDIR/bundle on the config's splits (or `eval.source_dir`); returns name -> report."""
  workdir = Path(workdir).expanduser().absolute()  # the reports name the bundle by its absolute path
  defaults.validate(config)
  b = bundle.load(workdir / "bundle")
  lock = locks.DirLock(workdir, wd.LOCK).acquire("--workdir") if sharding.is_main_process() else None
  try:
    return _evaluate(config, workdir, b)
  finally:
    if lock is not None:
      lock.release()


def _evaluate(config: ml_collections.ConfigDict, workdir: Path, b: bundle.Bundle) -> dict[str, results.Report]:
  if b.note:
    log.warning("%s: %s", workdir / "bundle", b.note)
  if config.eval.source_dir and protocol.is_layout(config.eval.source_dir):
    from freqforensics.evaluation import cross_generator  # pylint: disable=g-import-not-at-top

    return cross_generator.evaluate(config, workdir, b)
  rule = reading.of(b.info, config.eval.read or None, config.eval.aggregate or None)
  if config.eval.source_dir and rule.native:
    from freqforensics.evaluation import native_folders  # pylint: disable=g-import-not-at-top

    return native_folders.evaluate(config, workdir, b, rule)
  run = bundle_evaluator(
    b, num_devices=steps.num_devices(config), batch_size=config.eval.batch_size, progress=bool(config.progress)
  )
  options = b.info.prepare_options(max_pixels=config.data.max_pixels, num_threads=config.data.num_threads)
  targets = loading.eval_sources(config, b.label_names, options, b.info.input_shape, b.info.dataset)
  if sharding.is_main_process():  # before any evaluation: a user's file of a report's name is refused at once
    wd.claim(workdir, *(p for name in targets for p in metrics.metric_files(workdir / f"eval_{name}.json")))
  out: dict[str, results.Report] = {}
  for name, source in targets.items():
    r = out[name] = report(b, workdir, run, source, name, real_class=config.data.real_class)
    log.info(
      "eval %s: accuracy %.4f on %d examples -> %s",
      name,
      r.metrics["accuracy"],
      r.metrics["num_examples"],
      workdir / f"eval_{name}.json",
    )
  return out
