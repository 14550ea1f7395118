"""Operating points: the real class, p_fake of binary and multi-class models, and the threshold policies."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from freqforensics import bundle
from freqforensics.errors import UserError
from freqforensics.evaluation import operating_points as op


def test_the_real_class_is_found_by_name_or_given():
  assert op.real_index(("A_real", "B_gan")) == 0
  assert op.real_index(("fake", "Real_photos")) == 1
  assert op.real_index(("A_real", "B_unreal")) is None  # two names contain 'real': ambiguous, no detector
  assert op.real_index(("cats", "dogs")) is None
  assert op.real_index(("cats", "dogs"), "dogs") == 1
  with pytest.raises(UserError, match="data.real_class='birds' is not a class"):
    op.real_index(("cats", "dogs"), "birds")


def test_p_fake_is_one_minus_p_real_at_the_temperature():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 3, (20, 4))
  p = scipy.special.softmax(logits / 2.0, axis=-1)
  for real in (0, 2):
    score = op.fake_log_odds(logits, real, 2.0)
    np.testing.assert_allclose(scipy.special.expit(score), 1 - p[:, real], rtol=1e-10)
  z = rng.normal(0, 3, (20, 1))
  np.testing.assert_allclose(scipy.special.expit(op.fake_log_odds(z, 0)), scipy.special.expit(z[:, 0]))
  np.testing.assert_allclose(scipy.special.expit(op.fake_log_odds(z, 1)), 1 - scipy.special.expit(z[:, 0]))
  # Very sure images keep distinct scores where a float probability rounds to 1.
  assert op.fake_log_odds(np.array([[80.0], [90.0]]), 0).tolist() == [80.0, 90.0]


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2])
def test_fpr_policy_flags_the_stated_share_of_real_validation_images(fpr):
  rng = np.random.default_rng(1)
  reals, fakes = rng.normal(0, 1, 1000), rng.normal(1.5, 1, 400)
  score = np.r_[reals, fakes]
  is_fake = np.r_[np.zeros(1000, bool), np.ones(400, bool)]
  t = op.choose_threshold(op.parse_policy(f"fpr:{fpr}"), score, is_fake)
  assert np.sum(reals > t) == int(fpr * 1000)  # exactly the stated share (no ties among the reals)
  # Half-way to the next real score below it, which would flag one real too many.
  below, above = reals[reals <= t].max(), reals[reals > t].min()
  assert t == pytest.approx((below + above) / 2) and np.sum(reals >= below) == int(fpr * 1000) + 1
  # Lower thresholds than `below` break the budget; within (below, above) the fakes caught differ only by those
  # in between, which the margin gives up.
  grid = np.r_[score - 1e-9, score + 1e-9]
  best = max(np.mean(fakes > c) for c in grid if np.mean(reals > c) <= fpr)
  assert np.mean(fakes > t) == best - np.mean((fakes > below) & (fakes <= t))


def test_policies_on_separable_scores():
  score = np.array([-3.0, -2.0, -1.0, 2.0, 3.0])
  is_fake = np.array([0, 0, 0, 1, 1], bool)
  assert op.choose_threshold(("fpr", 0.4), score, is_fake) == -1.5  # one real of three may be flagged: it is
  assert op.choose_threshold(("fpr", 0.1), score, is_fake) == -0.5  # none may: as far above -1 as -2 is below
  assert op.choose_threshold(("balanced", None), score, is_fake) == 0.5  # half-way across the gap


def test_balanced_and_fixed_policies():
  reals, fakes = np.array([0.0, 1.0, 2.0, 5.0]), np.array([1.5, 3.0, 4.0, 6.0])
  score, is_fake = np.r_[reals, fakes], np.r_[np.zeros(4, bool), np.ones(4, bool)]
  t = op.choose_threshold(op.parse_policy("balanced"), score, is_fake)
  bal = lambda t: (np.mean(fakes > t) + np.mean(reals <= t)) / 2  # noqa: E731
  assert bal(t) == max(bal(c) for c in np.r_[score - 1e-9, score + 1e-9]) == 0.75
  assert op.choose_threshold(op.parse_policy("0.8"), score, is_fake) == pytest.approx(np.log(0.8 / 0.2))
  for bad in ("fpr:0", "fpr:1.5", "often", "1.2", ""):
    with pytest.raises(UserError, match="is not a threshold policy"):
      op.parse_policy(bad)


def _info(**fields) -> bundle.BundleInfo:
  """A binary bundle's description with `fields` (without them: one from before real_label and calibration)."""
  return bundle.BundleInfo("log2", "pixel", (8, 8, 1), 1, ("A_real", "B_gan"), **fields)


def test_fit_stores_what_classify_and_eval_use():
  rng = np.random.default_rng(2)
  labels = np.r_[np.zeros(300, int), np.ones(300, int)]
  logits = (3 * (labels - 0.5) + rng.normal(0, 1.5, 600))[:, None] * 4  # a sure, overlapping binary model
  c = op.fit(logits, labels, ("A_real", "B_gan"), 0, "fpr:0.05")
  assert c["val_fpr"] <= 0.05 and c["nll_after"] < c["nll_before"] and c["temperature"] > 1
  d = op.Detector.from_info(_info(real_label=0, calibration=c))
  assert d.threshold == pytest.approx(c["threshold"]) and d.calibrated
  assert np.mean(d.decide(logits)[labels == 0]) == pytest.approx(c["val_fpr"])
  assert "p_fake >" in d.describe() and "fpr:0.05" in d.describe()
  old = op.Detector.from_info(_info())  # a bundle from before calibration
  assert (old.real, old.threshold, old.temperature, old.calibrated) == (0, 0.5, 1.0, False)


def test_a_threshold_no_policy_chose_is_not_said_to_be_chosen_on_validation():
  # A model trained without a real class: its calibration has a temperature, but no threshold was chosen.
  info = _info(real_label=None, calibration={"temperature": 2.0})
  d = op.Detector.from_info(info, real_class="A_real")
  assert (d.threshold, d.temperature, d.policy) == (0.5, 2.0, "default 0.5")
  assert "chosen on validation" not in d.describe().replace("not chosen on validation", "")
  assert "the default threshold, not chosen on validation" in d.describe()
  old = op.Detector.from_info(_info())
  assert "default threshold" in old.describe() and old.policy == "default 0.5"
