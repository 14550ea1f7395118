"""Detection metrics against scikit-learn and hand arithmetic on fixed scores: per generator, mean row, markdown."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from freqforensics.evaluation import detection


def _scores(seed: int, n_real: int, n_fake: int, shift: float):
  rng = np.random.default_rng(seed)
  score = np.r_[rng.normal(0, 1, n_real), rng.normal(shift, 1, n_fake)].round(2)  # rounded: ties on purpose
  return np.r_[np.zeros(n_real, bool), np.ones(n_fake, bool)], score


def _reference(is_fake, score, threshold, outlier):
  """The row recomputed from scikit-learn's ROC points and plain numpy."""
  fpr, tpr, _ = skm.roc_curve(is_fake, score, drop_intermediate=False)
  fake = score > threshold
  either = fake | outlier
  return {
    "accuracy": np.mean(fake == is_fake),
    "real_accuracy": np.mean(~fake[~is_fake]),
    "fake_accuracy": np.mean(fake[is_fake]),
    "ap": skm.average_precision_score(is_fake, score),
    "roc_auc": skm.roc_auc_score(is_fake, score),
    "tpr_at_fpr_0.01": max(t for f, t in zip(fpr, tpr) if f <= 0.01),
    "tpr_at_fpr_0.05": max(t for f, t in zip(fpr, tpr) if f <= 0.05),
    "eer": min(max(f, 1 - t) for f, t in zip(fpr, tpr)),
    "detected": np.mean(either[is_fake]),
    "real_flagged": np.mean(either[~is_fake]),
    "n_real": int((~is_fake).sum()),
    "n_fake": int(is_fake.sum()),
  }


@pytest.mark.parametrize("seed,shift", [(0, 1.0), (1, 2.5), (2, -0.5)])
def test_generator_row_equals_scikit_learn_on_fixed_scores(seed, shift):
  is_fake, score = _scores(seed, 150, 90, shift)
  outlier = np.random.default_rng(seed + 10).random(len(score)) < 0.1
  row = detection.detection_row(is_fake, score, 0.7, outlier)
  want = _reference(is_fake, score, 0.7, outlier)
  assert set(row) == set(want)
  for key, value in want.items():
    assert row[key] == pytest.approx(value, abs=1e-12), key


def test_tpr_and_eer_by_hand():
  # Reals 0.1 0.2 0.3 0.4, fakes 0.35 0.5 0.6 0.7: thresholds above 0.4 catch 3 of 4 fakes with no real flagged.
  is_fake = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
  score = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.5, 0.6, 0.7])
  assert detection.tpr_at_fpr(is_fake, score, 0.01) == 0.75
  assert detection.tpr_at_fpr(is_fake, score, 0.25) == 1.0  # one real of four above 0.35 - eps is allowed
  assert detection.eer(is_fake, score) == 0.25  # max(FPR, FNR) = max(0, 1/4) or max(1/4, 0)
  assert detection.tpr_at_fpr(np.zeros(4, bool), score[:4], 0.05) is None  # no fakes: undefined


def test_mean_row_and_markdown():
  rows = {
    "gan_a": detection.detection_row(*_scores(3, 40, 40, 3.0), 0.0),
    "gan_b": detection.detection_row(*_scores(4, 30, 50, 0.5), 0.0),
  }
  mean = detection.mean_row(rows)
  for key in ("accuracy", "ap", "roc_auc", "tpr_at_fpr_0.05", "eer"):
    assert mean[key] == pytest.approx((rows["gan_a"][key] + rows["gan_b"][key]) / 2)
  assert (mean["n_real"], mean["n_fake"]) == (70, 90)
  assert mean["detected"] is None  # no open-set flags were given
  table = detection.markdown(rows, mean)
  lines = table.strip().splitlines()
  assert lines[0].startswith("| generator | acc |") and "detected" not in lines[0]  # absent everywhere: left out
  assert lines[2].startswith("| gan_a | ") and lines[-1].startswith("| **mean** | ")
  assert f"{mean['roc_auc']:.4f}" in lines[-1]
