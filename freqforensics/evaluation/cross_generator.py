"""The cross-generator protocol: a bundle tested on one folder per generator, reported as the field reports it.

`evaluate` runs a detector over `ROOT/<generator>/[<subset>/]{0_real,1_fake}/` (`data.protocol`), one
row per generator and a mean row (`detection.detection_row`), and writes
`WORKDIR/eval_cross_<ROOT name>_<hash>.json`, `.md` and `_roc.png`, one report per ROOT
(`data.loading.source_name`); its table joins the model card. Run by `--config.mode=eval` with
`--config.eval.source_dir=ROOT`; the table's columns: docs/generalization.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from freqforensics import bundle, sharding, steps, text
from freqforensics import workdir as wd
from freqforensics.data import loading, preparation, protocol
from freqforensics.errors import UserError
from freqforensics.evaluation import (
  detection,
  figures,
  loop,
  model_card,
  operating_points,
  outliers,
  placement,
  results,
)
from freqforensics.files import atomic

log = logging.getLogger(__name__)


def report_name(root: str | Path) -> str:
  """The name of ROOT's report, `cross_<ROOT base name>_<hash of its resolved path>` (`loading.source_name`)."""
  return loading.source_name("cross", root)


def report_files(workdir: Path, name: str) -> list[Path]:
  """The files `evaluate` writes for report `name`."""
  return [workdir / f"eval_{name}.json", workdir / f"eval_{name}.md", workdir / f"eval_{name}_roc.png"]


def evaluate(config: ml_collections.ConfigDict, workdir: Path, b: bundle.Bundle) -> dict[str, results.GeneratorReport]:
  """Runs the protocol on `config.eval.source_dir` with the bundle of `workdir`; returns {name: report}."""
  detector = operating_points.Detector.from_info(b.info, config.data.real_class)
  if detector.real is None:
    raise UserError(
      f"this model's classes {list(b.label_names)} name no real class, so it is no detector: pass"
      " --config.data.real_class=NAME (one of them) to test it on generators"
    )
  root = Path(config.eval.source_dir).expanduser()
  generators = protocol.read_layout(root)
  name = report_name(root)
  if sharding.is_main_process():
    wd.claim(workdir, *report_files(workdir, name))
  options = b.info.prepare_options(max_pixels=config.data.max_pixels, num_threads=config.data.num_threads)
  placed = placement.place(b, sharding.make_mesh(steps.num_devices(config)))
  block = b.info.outliers
  spectral = outliers.scores_on(b.outlier_stats, placed.mesh) if block and b.outlier_stats is not None else None

  def outputs_of(batch):
    out = {"logits": placed.logits(batch["image"])}
    return {**out, **spectral(batch["image"])} if spectral else out

  progress = bool(config.progress)
  rows: dict[str, dict[str, Any]] = {}
  curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
  candidates: dict[str, dict[str, Any]] = {}
  for gen, folders in generators.items():
    out_dir = (
      loading.data_root(config) / "prepared" / f"protocol-{gen}-{preparation.fingerprint(folders, options)[:12]}"
    )
    prepared = preparation.prepare_to(folders, out_dir, options, progress=progress)
    source = prepared.source("test")
    if not len(source) or prepared.num_examples.get("test", 0) == 0:
      raise UserError(f"generator {gen} of {root} has no usable images (see {out_dir / 'skipped_files.csv'})")
    threads, desc = config.data.num_threads or 2, f"eval {text.for_terminal(gen)}"
    batches = loop.batches(source, config.eval.batch_size, num_threads=threads, progress=progress, desc=desc)
    got = loop.collect(outputs_of, batches, put=placed.put)
    logits, is_fake = got["logits"], got["label"] == 1  # label 1 is `1_fake`
    counts = {c: int(prepared.metadata["counts"][c]["test"]) for c in (protocol.REAL, protocol.FAKE)}
    if not counts[protocol.REAL] or not counts[protocol.FAKE]:
      raise UserError(
        f"generator {gen} of {root} has no usable {'real' if not counts[protocol.REAL] else 'fake'} images"
      )
    score = detector.score(logits)
    flags = None
    if spectral:
      scores = outliers.all_scores({k: got[k] for k in outliers.SPECTRAL}, logits)
      _, flags = outliers.flags(scores, block)
      candidates[gen] = outliers.flag_rates(scores, ~is_fake, block["thresholds"])
    rows[gen] = detection.detection_row(is_fake, score, detector.threshold_logit, flags)
    curves[gen] = detection.roc(is_fake, score)
    log.info("%s: accuracy %.4f, ROC-AUC %s", text.for_terminal(gen), rows[gen]["accuracy"], rows[gen]["roc_auc"])
  mean = detection.mean_row(rows)
  table = detection.markdown(rows, mean)
  report: dict[str, Any] = {
    "by_generator": rows,
    "mean": mean,
    "subsets": protocol.subsets(root),
    "source_dir": str(root.resolve()),
    "real_class": b.label_names[detector.real],
    "threshold": detector.threshold,
    "policy": detector.policy,
    "temperature": detector.temperature,
    "outlier_score": block["score"] if spectral else None,
    "outlier_fpr": block["fpr"] if spectral else None,
    "outlier_candidates": candidates or None,
    "model": b.info.model,
    "features": b.info.features,
    "bundle": str(workdir / "bundle"),
    "threshold_note": detector.describe(),
  }
  if b.note:
    report["note"] = b.note
  if sharding.is_main_process():
    _write(workdir, name, report, table, curves, b)
  return {name: results.GeneratorReport(report, table)}


def _write(workdir: Path, name: str, report: dict[str, Any], table: str, curves, b: bundle.Bundle) -> None:
  """The report's JSON, markdown and ROC figure (registered), and the table in the bundle's model card."""
  json_path, md_path, roc_path = report_files(workdir, name)
  wd.register(workdir, json_path, md_path, roc_path)
  atomic.write_json(json_path, report)
  md = text.for_markdown  # names from the bundle and the folders; the table is escaped by `detection.markdown`
  header = (
    f"# {md(b.info.model)} on {md(b.info.features)} features: {md(report['source_dir'])}\n\n"
    f"Decision: {md(report['threshold_note'])}."
    + (
      f" Open-set score {md(report['outlier_score'])} at {report['outlier_fpr']:.0%} real FPR."
      if report["outlier_score"]
      else ""
    )
    + "\n\n"
  )
  atomic.write_text(md_path, header + table)
  aucs = {g: r["roc_auc"] for g, r in report["by_generator"].items()}
  figures.roc_png(curves, aucs, roc_path, f"{b.info.model} {b.info.features}: per generator")
  bundle_dir = workdir / "bundle"
  # The card is rewritten only in a bundle a run wrote here (never a user's copy of one).
  if b.info.model_card is not None and wd.record(workdir).owns("bundle/bundle.json"):
    info = model_card.add_cross_generator(b.info, name, report, table)
    atomic.write_text(bundle_dir / bundle.CARD, model_card.render(info, info.model_card))
    atomic.write_json(bundle_dir / "bundle.json", info.to_json())
