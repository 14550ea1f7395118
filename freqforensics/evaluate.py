"""Masked evaluation: every example counts exactly once, whatever the batch size.

Batches come padded to a fixed size with a `mask` (see `data.pipeline.eval_batches`). Each step
returns sums (loss, confusion counts) computed on device; the host adds them up and divides once
at the end. With `scores=True` the probabilities of the real rows are kept too, for ROC-AUC and
average precision (`metrics.py`) and the ROC figure. Metrics are keyed by label name, never by
bare index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqforensics import eval_plots, losses, metrics, outputs, sharding


def batch_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array, num_labels: int) -> dict[str, jax.Array]:
  """Masked sums of one batch: loss and the confusion matrix (rows true label, columns predicted)."""
  mask = mask.astype(jnp.float32)
  loss = losses.per_example_loss(logits, labels)
  preds = losses.predictions(logits)
  true_1h = jax.nn.one_hot(labels, num_labels, dtype=jnp.float32) * mask[:, None]
  pred_1h = jax.nn.one_hot(preds, num_labels, dtype=jnp.float32)
  return {"loss": jnp.sum(loss * mask), "confusion": true_1h.T @ pred_1h}


def summarize(sums: dict[str, np.ndarray], label_names: tuple[str, ...]) -> dict[str, Any]:
  """Accuracy, per-class accuracy (recall), mean loss and the confusion matrix, from summed counts."""
  confusion = np.asarray(sums["confusion"]).round().astype(np.int64)
  n = int(confusion.sum())
  per_class_n = confusion.sum(axis=1)
  per_class = {name: (float(confusion[i, i] / per_class_n[i]) if per_class_n[i] else None)
               for i, name in enumerate(label_names)}
  return {
      "num_examples": n,
      "loss": float(sums["loss"]) / n if n else None,
      "accuracy": float(np.trace(confusion)) / n if n else None,
      "per_class_accuracy": per_class,
      "per_class_count": {name: int(per_class_n[i]) for i, name in enumerate(label_names)},
      "per_class": metrics.per_class_report(confusion, label_names),
      "confusion_matrix": confusion.tolist(),
      "label_names": list(label_names),
  }


def evaluate(logits_fn: Callable[[dict[str, Any]], jax.Array], batches: Iterable[dict[str, np.ndarray]],
             label_names: tuple[str, ...], *, put: Callable[[dict[str, np.ndarray]], Any] = lambda b: b,
             progress: Callable[[], None] | None = None, settle: Callable[[Any], Any] = lambda x: x,
             scores: bool = False) -> dict[str, Any]:
  """Runs `logits_fn` over padded, masked batches and summarises; sums stay on device until the end.

  `settle` is applied to the running sums after each batch (`sharding.settle` on CPU meshes). With
  `scores`, the result also holds ranking metrics, and `_probs` / `_labels` (numpy, real rows only)
  for figures; `write_metrics` leaves those two out of the JSON.
  """
  num_labels = len(label_names)
  sums_fn = jax.jit(lambda logits, labels, mask: batch_sums(logits, labels, mask, num_labels))
  probs_fn = jax.jit(losses.probabilities)
  total, kept_probs, kept_labels = None, [], []
  for host_batch in batches:
    batch = put(host_batch)
    logits = logits_fn(batch)
    sums = sums_fn(logits, batch["label"], batch["mask"])
    total = settle(sums if total is None else jax.tree.map(jnp.add, total, sums))
    if scores:
      keep = sharding.gather(batch["mask"]) > 0
      kept_probs.append(sharding.gather(probs_fn(logits))[keep])
      kept_labels.append(sharding.gather(batch["label"])[keep])
    if progress is not None:
      progress()
  if total is None:
    raise ValueError("evaluation got no batches: the split is empty")
  result = summarize(sharding.to_host(total), label_names)
  if scores:
    probs, labels = np.concatenate(kept_probs), np.concatenate(kept_labels)
    result.update(metrics.score_metrics(probs, labels, label_names), _probs=probs, _labels=labels)
  return result


def write_metrics(path: str | os.PathLike, result: dict[str, Any], *, plots: bool = True) -> None:
  """Writes metrics as indented JSON, atomically, and (`plots`) the confusion and ROC PNGs beside it.

  `eval_test.json` gets `eval_test_confusion.png` and `eval_test_roc.png`.
  """
  path = Path(path)
  outputs.write_json(path, {k: v for k, v in result.items() if not k.startswith("_")})
  if not plots:
    return
  names = tuple(result["label_names"])
  title = f"{result.get('model', '')} {result.get('features', '')} {result.get('split', '')}".strip()
  eval_plots.confusion_png(np.asarray(result["confusion_matrix"]), names, path.with_name(path.stem + "_confusion.png"),
                           title)
  if "_probs" in result:
    curves = metrics.roc_curves(result["_probs"], result["_labels"], names)
    if "binary" in result:
      aucs = {names[1]: result["binary"]["roc_auc"]}
    else:
      aucs = {k: v["roc_auc"] for k, v in result["one_vs_rest"]["per_class"].items()}
    eval_plots.roc_png(curves, aucs, path.with_name(path.stem + "_roc.png"), title)


def metric_files(path: str | os.PathLike) -> list[Path]:
  """The files `write_metrics(path, ...)` may write: the JSON and its two figures."""
  path = Path(path)
  return [path, path.with_name(path.stem + "_confusion.png"), path.with_name(path.stem + "_roc.png")]


def format_summary(result: dict[str, Any]) -> str:
  """A short human-readable block: accuracy, then per class recall, precision, F1 and AUC."""
  lines = [f"accuracy {result['accuracy']:.4f} on {result['num_examples']} examples"]
  if "binary" in result:
    b = result["binary"]
    auc = f"{b['roc_auc']:.4f}" if b["roc_auc"] is not None else "n/a"
    ap = f"{b['average_precision']:.4f}" if b["average_precision"] is not None else "n/a"
    lines.append(f"ROC-AUC {auc}, average precision {ap} ({b['positive_label']} positive)")
  ovr = result.get("one_vs_rest", {}).get("per_class", {})
  lines.append(f"  {'label':<24} {'recall':>8} {'precision':>10} {'F1':>8} {'AUC':>8} {'count':>7}")
  for name, r in result["per_class"].items():
    cells = [r["recall"], r["precision"], r["f1"], ovr.get(name, {}).get("roc_auc")]
    text = [f"{c:.4f}" if c is not None else "n/a" for c in cells]
    lines.append(f"  {name:<24} {text[0]:>8} {text[1]:>10} {text[2]:>8} {text[3]:>8} {r['support']:>7}")
  return "\n".join(lines)
