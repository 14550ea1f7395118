"""The masked evaluation loop: every example counts exactly once, whatever the batch size.

Batches come padded to a fixed size with a `mask` (see `data.pipeline.eval_batches`). Each step
returns sums (loss, confusion counts) computed on device; the host adds them up and divides once
at the end. With `scores=True` the probabilities and logits of the real rows are kept too, for
ROC-AUC and average precision (`metrics`), the ROC figure, calibration and the detection metrics, and
so are any per-example values of `per_example` (the open-set scores), apart from the metrics
(`results.Scores`). Metrics are keyed by label name, never by bare index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from freqforensics import sharding
from freqforensics.data import pipeline
from freqforensics.evaluation import metrics, results
from freqforensics.models import heads


def batches(
  source, batch_size: int, *, num_threads: int = 2, progress: bool = False, desc: str = ""
) -> Iterator[dict[str, np.ndarray]]:
  """This process's share of `source` in padded, masked batches (`pipeline.eval_batches`), with a progress
  bar of its steps: what every evaluation pass (metrics, scores, statistics) reads.

  Args:
    source: a split source (`len`, `read_batch`).
    batch_size: the global batch size; the last batch is padded and masked.
    num_threads: threads reading the source.
    progress: show the bar.
    desc: the bar's name.
  """
  steps = pipeline.num_eval_steps(len(source), batch_size, jax.process_count())
  it = pipeline.eval_batches(source, batch_size, num_threads=num_threads, **sharding.process_share())
  yield from tqdm(it, total=steps, desc=desc, unit="batch", disable=not progress, leave=False)


def batch_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array, num_labels: int) -> dict[str, jax.Array]:
  """Masked sums of one batch: loss and the confusion matrix (rows true label, columns predicted)."""
  mask = mask.astype(jnp.float32)
  loss = heads.per_example_loss(logits, labels)
  preds = heads.predictions(logits)
  true_1h = jax.nn.one_hot(labels, num_labels, dtype=jnp.float32) * mask[:, None]
  pred_1h = jax.nn.one_hot(preds, num_labels, dtype=jnp.float32)
  return {"loss": jnp.sum(loss * mask), "confusion": true_1h.T @ pred_1h}


def summarize(sums: dict[str, np.ndarray], label_names: tuple[str, ...]) -> dict[str, Any]:
  """Accuracy, per-class accuracy (recall), mean loss and the confusion matrix, from summed counts."""
  confusion = np.asarray(sums["confusion"]).round().astype(np.int64)
  n = int(confusion.sum())
  per_class_n = confusion.sum(axis=1)
  per_class = {
    name: (float(confusion[i, i] / per_class_n[i]) if per_class_n[i] else None) for i, name in enumerate(label_names)
  }
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


def evaluate(
  logits_fn: Callable[[dict[str, Any]], jax.Array],
  batches: Iterable[dict[str, np.ndarray]],
  label_names: tuple[str, ...],
  *,
  put: Callable[[dict[str, np.ndarray]], Any] = lambda b: b,
  progress: Callable[[], None] | None = None,
  settle: Callable[[Any], Any] = lambda x: x,
  scores: bool = False,
  per_example: Callable[[dict[str, Any], jax.Array], dict[str, jax.Array]] | None = None,
) -> results.SplitResult:
  """Runs `logits_fn` over padded, masked batches and summarises; sums stay on device until the end.

  Args:
    logits_fn: a placed batch -> logits.
    batches: padded, masked host batches (`batches`).
    label_names: the model's labels.
    put: places a host batch on the devices.
    progress: called after each batch.
    settle: applied to the running sums after each batch (`sharding.settle` on CPU meshes).
    scores: also compute the ranking metrics and keep the `Scores` (numpy, real rows only: probabilities,
      labels, logits and `per_example`'s arrays) for figures and calibration.
    per_example: `(batch, logits) -> {name: (B,)}` values to keep (the open-set candidates).
  """
  num_labels = len(label_names)
  sums_fn = jax.jit(lambda logits, labels, mask: batch_sums(logits, labels, mask, num_labels))
  probs_fn = jax.jit(heads.probabilities)
  total, kept_probs, kept_labels, kept_logits, kept_extra = None, [], [], [], []
  for host_batch in batches:
    batch = put(host_batch)
    logits = logits_fn(batch)
    sums = sums_fn(logits, batch["label"], batch["mask"])
    total = settle(sums if total is None else jax.tree.map(jnp.add, total, sums))
    if scores:
      keep = sharding.gather(batch["mask"]) > 0
      kept_probs.append(sharding.gather(probs_fn(logits))[keep])
      kept_labels.append(sharding.gather(batch["label"])[keep])
      kept_logits.append(sharding.gather(logits)[keep])
      if per_example is not None:
        kept_extra.append({k: sharding.gather(v)[keep] for k, v in per_example(batch, logits).items()})
    if progress is not None:
      progress()
  if total is None:
    raise ValueError("evaluation got no batches: the split is empty")
  summary = summarize(sharding.to_host(total), label_names)
  if not scores:
    return results.SplitResult(summary)
  probs, labels = np.concatenate(kept_probs), np.concatenate(kept_labels)
  summary.update(metrics.score_metrics(probs, labels, label_names))
  extra = {k: np.concatenate([e[k] for e in kept_extra]) for k in kept_extra[0]} if kept_extra else {}
  return results.SplitResult(summary, results.Scores(probs, labels, np.concatenate(kept_logits), extra))


def collect(
  fn: Callable[[dict[str, Any]], dict[str, jax.Array]],
  batches: Iterable[dict[str, np.ndarray]],
  *,
  put: Callable[[dict[str, np.ndarray]], Any] = lambda b: b,
  progress: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
  """Per-example outputs `fn(batch)` (arrays `(B, ...)`) and `label` of the real rows of padded, masked
  batches, in order, as numpy: for scores that are not the model's own labels (the cross-generator test)."""
  kept: list[dict[str, np.ndarray]] = []
  for host_batch in batches:
    batch = put(host_batch)
    out = dict(fn(batch), label=batch["label"])
    keep = sharding.gather(batch["mask"]) > 0
    kept.append({k: sharding.gather(v)[keep] for k, v in out.items()})
    if progress is not None:
      progress()
  if not kept:
    raise ValueError("evaluation got no batches: the split is empty")
  return {k: np.concatenate([b[k] for b in kept]) for k in kept[0]}
