"""Temperature scaling and calibration error: NLL falls on a miscalibrated model; ECE by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from freqforensics.evaluation import calibration


def _overconfident(seed: int, n: int = 600, k: int = 4, scale: float = 6.0):
  """Labels drawn from softmax(z) and logits `scale * z`: a model `scale` times too sure (its true T is `scale`)."""
  rng = np.random.default_rng(seed)
  z = rng.normal(0, 1.5, (n, k))
  p = scipy.special.softmax(z, axis=-1)
  labels = np.array([rng.choice(k, p=row) for row in p])
  return scale * z, labels


def test_temperature_lowers_validation_nll_of_a_miscalibrated_model():
  logits, labels = _overconfident(0)
  t = calibration.fit_temperature(logits, labels)
  assert 4.0 < t < 9.0  # near the 6 the data were made with
  before, after = calibration.nll(logits, labels), calibration.nll(logits, labels, t)
  assert after < 0.7 * before
  # It is the minimum: nearby temperatures do no better.
  assert after <= min(calibration.nll(logits, labels, t * f) for f in (0.9, 0.97, 1.03, 1.1))
  probs = lambda temp: scipy.special.softmax(logits / temp, axis=-1)  # noqa: E731
  assert calibration.ece(probs(t), labels) < 0.5 * calibration.ece(probs(1.0), labels)
  # The argmax never changes.
  np.testing.assert_array_equal(calibration.probabilities(logits, t).argmax(-1), logits.argmax(-1))


def test_one_logit_models_are_calibrated_as_two_labels():
  rng = np.random.default_rng(1)
  z = rng.normal(0, 2, 500)
  labels = (rng.random(500) < scipy.special.expit(z)).astype(int)
  logits = (4 * z)[:, None]
  probs = calibration.probabilities(logits, 2.0)
  np.testing.assert_allclose(probs[:, 1], scipy.special.expit(2 * z), rtol=1e-12)
  t = calibration.fit_temperature(logits, labels)
  assert 2.5 < t < 6.5 and calibration.nll(logits, labels, t) < calibration.nll(logits, labels)


def test_separable_validation_keeps_temperature_one():
  logits = np.array([[5.0, -5.0], [-4.0, 4.0], [6.0, 0.0]])
  assert calibration.fit_temperature(logits, np.array([0, 1, 0])) == 1.0


def test_ece_and_reliability_by_hand():
  # Confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.6 (right): bins (0.8667, 0.9333] and (0.5333, 0.6].
  probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
  labels = np.array([0, 1, 1, 0])
  rows = [r for r in calibration.reliability(probs, labels) if r["count"]]
  assert [(r["count"], r["confidence"], r["accuracy"]) for r in rows] == [
    (2, pytest.approx(0.6), 1.0),
    (2, pytest.approx(0.9), 0.5),
  ]
  assert calibration.ece(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
