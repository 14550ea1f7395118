"""Padded evaluation counts every example once: fixed logits give exactly known metrics."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from freqforensics import evaluate
from freqforensics.data import pipeline

LABELS = ("A_real", "B_gan", "C_gan")


class _ListSource:
  def __init__(self, labels):
    self.labels = labels

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {"image": np.full((2, 2, 1), i, np.uint8), "label": self.labels[i]}


def test_fixed_logits_give_exact_metrics_with_a_padded_last_batch():
  # 7 examples in batches of 3: the last batch holds 1 real row and 2 padding rows.
  true = [0, 0, 1, 1, 2, 2, 2]
  pred = [0, 1, 1, 1, 2, 0, 2]  # 5 of 7 right; A 1/2, B 2/2, C 2/3
  def logits_fn(batch):
    idx = np.asarray(batch["image"])[:, 0, 0, 0]  # the example index, stored in the image
    return jnp.asarray(np.eye(3)[np.asarray(pred)[idx]] * 10.0)
  m = evaluate.evaluate(logits_fn, pipeline.eval_batches(_ListSource(true), 3), LABELS)
  assert m["num_examples"] == 7
  assert m["accuracy"] == pytest.approx(5 / 7)
  assert m["per_class_accuracy"] == pytest.approx({"A_real": 0.5, "B_gan": 1.0, "C_gan": 2 / 3})
  assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
  assert m["label_names"] == list(LABELS)
  # each wrong example costs the softmax loss of logit 10 vs 0; right ones the loss of 10 vs 10, 0, 0
  right, wrong = -np.log(np.exp(10) / (np.exp(10) + 2)), -np.log(1 / (np.exp(10) + 2))
  assert m["loss"] == pytest.approx((5 * right + 2 * wrong) / 7, rel=1e-5)


@pytest.mark.parametrize("n,batch", [(1, 4), (8, 4), (9, 4), (10, 32)])
def test_eval_batches_cover_each_example_once(n, batch):
  src = _ListSource([0] * n)
  seen = []
  batches = list(pipeline.eval_batches(src, batch))
  assert len(batches) == pipeline.num_eval_steps(n, batch)
  for b in batches:
    assert b["image"].shape[0] == batch and b["mask"].shape == (batch,)
    seen += list(b["image"][b["mask"] > 0, 0, 0, 0])
  assert sorted(seen) == list(range(n))


def test_binary_head_metrics():
  true = [0, 1, 1, 0]
  logits = np.array([[-3.0], [2.0], [-1.0], [0.5]])  # predictions 0, 1, 0, 1
  def logits_fn(batch):
    return jnp.asarray(logits[np.asarray(batch["image"])[:, 0, 0, 0]])
  m = evaluate.evaluate(logits_fn, pipeline.eval_batches(_ListSource(true), 3), ("real", "fake"))
  assert m["confusion_matrix"] == [[1, 1], [1, 1]] and m["accuracy"] == 0.5
