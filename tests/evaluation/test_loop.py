"""Padded evaluation counts every example once: fixed logits give exactly known metrics."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from freqforensics.data import pipeline
from freqforensics.evaluation import loop, metrics

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

  m = loop.evaluate(logits_fn, pipeline.eval_batches(_ListSource(true), 3), LABELS).metrics
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

  m = loop.evaluate(logits_fn, pipeline.eval_batches(_ListSource(true), 3), ("real", "fake")).metrics
  assert m["confusion_matrix"] == [[1, 1], [1, 1]] and m["accuracy"] == 0.5


def test_metrics_equal_scikit_learn_on_fixed_predictions(tmp_path):
  from PIL import Image
  from sklearn import metrics as skm

  rng = np.random.default_rng(0)
  true = rng.integers(0, 3, 50)
  logits = rng.normal(size=(50, 3)) + 2.0 * np.eye(3)[true]

  def logits_fn(batch):
    return jnp.asarray(logits[np.asarray(batch["image"])[:, 0, 0, 0]])

  result = loop.evaluate(logits_fn, pipeline.eval_batches(_ListSource(list(true)), 8), LABELS, scores=True)
  m = result.metrics
  pred = logits.argmax(1)
  p, r, f, s = skm.precision_recall_fscore_support(true, pred, labels=[0, 1, 2], zero_division=0)
  for i, name in enumerate(LABELS):
    assert m["per_class"][name]["precision"] == pytest.approx(p[i])
    assert m["per_class"][name]["recall"] == pytest.approx(r[i])
    assert m["per_class"][name]["f1"] == pytest.approx(f[i])
    assert m["per_class"][name]["support"] == s[i]
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  want = skm.roc_auc_score(true, probs, multi_class="ovr", average=None)
  got = [m["one_vs_rest"]["per_class"][n]["roc_auc"] for n in LABELS]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert m["one_vs_rest"]["macro_roc_auc"] == pytest.approx(skm.roc_auc_score(true, probs, multi_class="ovr"))
  assert m["confusion_matrix"] == skm.confusion_matrix(true, pred).tolist()
  metrics.write_metrics(
    tmp_path / "eval_test.json", dict(m, model="log2", features="dct_log", split="test"), result.scores
  )
  saved = json.loads((tmp_path / "eval_test.json").read_text())
  assert saved["label_names"] == list(LABELS) and "_probs" not in saved
  for png in ("eval_test_confusion.png", "eval_test_roc.png"):
    with Image.open(tmp_path / png) as im:
      im.load()
      assert im.size[0] > 100


def test_binary_ranking_metrics_equal_scikit_learn():
  from sklearn import metrics as skm

  rng = np.random.default_rng(1)
  true = rng.integers(0, 2, 40)
  logit = rng.normal(size=(40, 1)) + (2 * true - 1)[:, None]

  def logits_fn(batch):
    return jnp.asarray(logit[np.asarray(batch["image"])[:, 0, 0, 0]])

  m = loop.evaluate(
    logits_fn, pipeline.eval_batches(_ListSource(list(true)), 16), ("real", "fake"), scores=True
  ).metrics
  p = 1 / (1 + np.exp(-logit[:, 0]))
  assert m["binary"]["roc_auc"] == pytest.approx(skm.roc_auc_score(true, p))
  assert m["binary"]["average_precision"] == pytest.approx(skm.average_precision_score(true, p))
  assert m["binary"]["accuracy_at_0.5"] == pytest.approx(np.mean((p >= 0.5) == (true == 1)))
  assert "ROC-AUC" in metrics.format_summary(m)
