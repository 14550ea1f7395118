"""`mode=eval` on class folders read natively: every file's patches at native resolution go through the model
on classify's path (`batches.predicted`), its logits are their aggregate, and the metrics come from those
per-image logits by the masked loop's own code (`loop.evaluate`). Files that cannot be read (below the
model's side, undecodable) or that the listing rule leaves out are skipped, counted and listed in the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from freqforensics import bundle, sharding, steps
from freqforensics import workdir as wd
from freqforensics.data import decode, images, loading
from freqforensics.data.distortions import Perturbation
from freqforensics.errors import UserError
from freqforensics.evaluation import batches, inference, loop, metrics, placement, reading, results

log = logging.getLogger(__name__)


def scored(
  clf: inference.Classifier, folders: images.ClassFolders, table: np.ndarray, batch_size: int
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
  """Per-image outputs of every file of `folders` read by `clf` (`logits` aggregated, the open-set scores
  the patches' mean) with its `label` (`table`: class index -> model label), and the files skipped, with why."""
  files = [(f, table[k]) for k, name in enumerate(folders.class_names) for f in folders.files[name]]
  skipped = [(str(p), images.SKIP_REASONS.get(r, r)) for p, r in folders.skipped]
  rows: list[dict[str, np.ndarray]] = []
  labels = iter(label for _, label in files)
  for batch in batches.predicted([f for f, _ in files], clf.decoder(), clf.outputs, batch_size, clf.reading.aggregate):
    for (path, out), label in zip(batch, labels):
      if isinstance(out, decode.Unreadable):
        skipped.append((str(path), out.reason))
      else:
        rows.append(
          {k: np.asarray(v) for k, v in out.items() if not k.startswith(("patch_", "grid_"))} | {"label": label}
        )
  if not rows:
    raise UserError(f"no image of {folders.root} could be read at native resolution ({len(skipped)} skipped)")
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}, skipped


def split_result(out: dict[str, np.ndarray], label_names: tuple[str, ...], batch_size: int) -> results.SplitResult:
  """The metrics of per-image logits `out['logits']` and labels `out['label']` by `loop.evaluate`, in padded,
  masked batches (the same code as every evaluation); the open-set scores are kept per example."""
  n = len(out["label"])
  extra = [k for k in out if k not in ("logits", "label", "patches")]
  host = (
    {k: batches.padded(v[i : i + batch_size], batch_size) for k, v in out.items()}
    | {"mask": batches.padded(np.ones(min(batch_size, n - i), np.float32), batch_size)}
    for i in range(0, n, batch_size)
  )
  return loop.evaluate(
    lambda b: jnp.asarray(b["logits"], jnp.float32),
    host,
    label_names,
    scores=True,
    per_example=(lambda b, _: {k: b[k] for k in extra}) if extra else None,
  )


def evaluate(
  config: ml_collections.ConfigDict, workdir: Path, b: bundle.Bundle, rule: reading.Reading
) -> dict[str, results.Report]:
  """`mode=eval` of bundle `b` on the class folders `config.eval.source_dir`, read natively by `rule`."""
  from freqforensics.evaluation import runner  # pylint: disable=g-import-not-at-top  (runner calls this)

  if jax.process_count() > 1:  # every process scores every file: the loop's gathers would repeat them
    raise UserError(
      "mode=eval reading natively runs in one process: run it without --config.distributed, or add"
      " --config.eval.read=resize"
    )
  if Perturbation.from_config(config.eval.perturb, name="eval.perturb").active:
    raise UserError("eval.perturb applies to resized reading only: drop it, or add --config.eval.read=resize")
  folders = images.list_class_folders(config.eval.source_dir, min_classes=1, option="--config.eval.source_dir")
  table = loading.label_table(folders.class_names, b.label_names)
  name = loading.source_name("folder", config.eval.source_dir)
  if sharding.is_main_process():  # before any evaluation: a user's file of the report's name is refused at once
    wd.claim(workdir, *metrics.metric_files(workdir / f"eval_{name}.json"))
  clf = inference.Classifier(b, placement.place(b, sharding.make_mesh(steps.num_devices(config))), reading=rule)
  out, skipped = scored(clf, folders, table, config.eval.batch_size)
  if skipped:
    reasons = sorted({r.split(" (")[0] for _, r in skipped})
    log.warning("skipped %d file(s) of %s (%s); listed in the report", len(skipped), folders.root, "; ".join(reasons))

  def evaluated(_, __) -> results.SplitResult:
    r = split_result(out, b.label_names, config.eval.batch_size)
    r.metrics.update(
      reading=dict(
        read=rule.read, aggregate=rule.aggregate, patch_stride=rule.patch_stride, max_patches=rule.max_patches
      ),
      patches=int(out["patches"].sum()),
      skipped=len(skipped),
      skipped_files=[list(s) for s in skipped],
    )
    return r

  r = runner.report(b, workdir, evaluated, None, name, real_class=config.data.real_class)
  log.info("eval %s (native): accuracy %.4f on %d images", name, r.metrics["accuracy"], r.metrics["num_examples"])
  return {name: r}
