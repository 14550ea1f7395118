"""Masked evaluation: every example counts exactly once, whatever the batch size.

Batches come padded to a fixed size with a `mask` (see `data.pipeline.eval_batches`). Each step
returns sums (loss, confusion counts) computed on device; the host adds them up and divides once
at the end. Metrics are keyed by label name, never by bare index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqforensics import losses, sharding


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
      "confusion_matrix": confusion.tolist(),
      "label_names": list(label_names),
  }


def evaluate(logits_fn: Callable[[dict[str, Any]], jax.Array], batches: Iterable[dict[str, np.ndarray]],
             label_names: tuple[str, ...], *, put: Callable[[dict[str, np.ndarray]], Any] = lambda b: b,
             progress: Callable[[], None] | None = None, settle: Callable[[Any], Any] = lambda x: x
             ) -> dict[str, Any]:
  """Runs `logits_fn` over padded, masked batches and summarises; sums stay on device until the end.

  `settle` is applied to the running sums after each batch (`sharding.settle` on CPU meshes).
  """
  num_labels = len(label_names)
  sums_fn = jax.jit(lambda logits, labels, mask: batch_sums(logits, labels, mask, num_labels))
  total = None
  for batch in batches:
    batch = put(batch)
    sums = sums_fn(logits_fn(batch), batch["label"], batch["mask"])
    total = settle(sums if total is None else jax.tree.map(jnp.add, total, sums))
    if progress is not None:
      progress()
  if total is None:
    raise ValueError("evaluation got no batches: the split is empty")
  return summarize(sharding.to_host(total), label_names)


def write_metrics(path: str | os.PathLike, metrics: dict[str, Any]) -> None:
  """Writes metrics as indented JSON, atomically."""
  path = Path(path)
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(metrics, indent=2) + "\n")
  os.replace(tmp, path)


def format_summary(metrics: dict[str, Any]) -> str:
  """A short human-readable block: accuracy overall and per class, with label names."""
  lines = [f"accuracy {metrics['accuracy']:.4f} on {metrics['num_examples']} examples"]
  for name, acc in metrics["per_class_accuracy"].items():
    count = metrics["per_class_count"][name]
    lines.append(f"  {name:<24} {acc:.4f} ({count})" if acc is not None else f"  {name:<24} n/a (0)")
  return "\n".join(lines)
