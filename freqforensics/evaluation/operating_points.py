"""Operating points: a model used as a real-vs-fake detector, its calibrated p_fake and its decision threshold.

Any bundle with a real class (`real_label`) is a detector: `p_fake = 1 - p(real class)`, decided fake
when `p_fake > threshold`. The temperature and the threshold are fit on validation (`fit`) by the policy
`eval.threshold` (`fpr:0.05`, `balanced` or a number), compared in log-odds; `Detector` applies them.
The policies and when to use each: docs/generalization.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.special

from freqforensics import bundle
from freqforensics.errors import UserError
from freqforensics.evaluation import calibration

POLICY_HELP = (
  "fpr:X (X in (0, 1): at most that share of real validation images flagged), balanced, or a number in (0, 1)"
)


def real_index(label_names: tuple[str, ...] | list[str], real_class: str = "") -> int | None:
  """The label index of the real class: `real_class` if given (it must be a label), else the one label whose
  name contains `real` (any case); None when there is none or several (the model is then no detector)."""
  names = list(label_names)
  if real_class:
    if real_class not in names:
      raise UserError(
        f"data.real_class={real_class!r} is not a class of this model ({', '.join(names)}): name one of them"
      )
    return names.index(real_class)
  found = [i for i, n in enumerate(names) if "real" in n.lower()]
  return found[0] if len(found) == 1 else None


def parse_policy(policy: Any) -> tuple[str, float | None]:
  """`('fpr', x)`, `('balanced', None)` or `('fixed', p)`; `UserError` for anything else."""
  text = str(policy).strip()
  try:
    if text.startswith("fpr:"):
      x = float(text[4:])
      if 0 < x < 1:
        return "fpr", x
    elif text == "balanced":
      return "balanced", None
    else:
      x = float(text)
      if 0 < x < 1:
        return "fixed", x
  except ValueError:
    pass
  raise UserError(f"eval.threshold={policy!r} is not a threshold policy: give {POLICY_HELP}")


def log_odds(p: float) -> float:
  return float(scipy.special.logit(p))


def fake_log_odds(logits: np.ndarray, real: int, temperature: float = 1.0) -> np.ndarray:
  """`log(p_fake / (1 - p_fake))` per image, in float64, of logits `(N, outputs)` at `temperature`."""
  z = np.asarray(logits, np.float64) / float(temperature)
  if z.shape[-1] == 1:  # sigmoid: the logit is the log-odds of label 1
    return z[:, 0] if real == 0 else -z[:, 0]
  others = np.delete(z, real, axis=-1)
  return scipy.special.logsumexp(others, axis=-1) - z[:, real]


def _candidates(scores: np.ndarray) -> np.ndarray:
  """Thresholds half-way between consecutive distinct scores, and one below and one above them all."""
  s = np.unique(np.asarray(scores, np.float64))
  return np.concatenate([[s[0] - 1.0], (s[:-1] + s[1:]) / 2, [s[-1] + 1.0]])


def choose_threshold(policy: tuple[str, float | None], score: np.ndarray, is_fake: np.ndarray) -> float:
  """The log-odds threshold a policy picks on validation scores (decision: `score > threshold`); `fpr` needs
  only the reals, `balanced` both."""
  kind, x = policy
  if kind == "fixed":
    return log_odds(x)
  score, is_fake = np.asarray(score, np.float64), np.asarray(is_fake, bool)
  if not is_fake.any() or is_fake.all():
    raise UserError("the validation split needs real and fake images to choose a threshold (eval.threshold)")
  if kind == "fpr":
    return fpr_threshold(score[~is_fake], x)
  t = _candidates(score)
  reals, fakes = np.sort(score[~is_fake]), np.sort(score[is_fake])
  fpr = 1.0 - np.searchsorted(reals, t, side="right") / len(reals)  # share of reals above each threshold
  tpr = 1.0 - np.searchsorted(fakes, t, side="right") / len(fakes)
  balanced = (tpr + 1.0 - fpr) / 2
  tied = np.flatnonzero(balanced >= balanced.max() - 1e-12)
  return float(t[tied[np.argmin(np.abs(t[tied]))]])  # of equals, the one nearest the model's own p = 0.5


def fpr_threshold(real_scores: np.ndarray, fpr: float) -> float:
  """The threshold that flags (`score > threshold`) at most `fpr` of `real_scores`, as low as that allows:
  half-way between the k-th and the (k+1)-th highest real score, k = floor(fpr x n), so the k reals above
  it are flagged (fewer when scores tie) and no validation image sits on the threshold itself, where the
  last bit of a float computed in another batch would decide. For k = 0, as far above the highest real."""
  d = np.sort(np.asarray(real_scores, np.float64))[::-1]
  k = min(int(np.floor(fpr * len(d) + 1e-9)), len(d) - 1)
  if k > 0:
    return float((d[k - 1] + d[k]) / 2)
  gap = d[0] - d[1] if len(d) > 1 and d[0] > d[1] else max(1e-6, 1e-6 * abs(d[0]))
  return float(d[0] + gap / 2)


def _finite(x: float) -> float:
  return float(np.clip(x, -1e6, 1e6))  # JSON has no infinity; |log-odds| beyond 1e6 never occurs in float64


@dataclasses.dataclass(frozen=True)
class Detector:
  """How a bundle turns logits into calibrated probabilities, `p_fake` and a decision."""

  label_names: tuple[str, ...]
  real: int | None  # label index of the real class; None: not a detector (probabilities only)
  temperature: float = 1.0
  threshold_logit: float = 0.0  # decision: log-odds of p_fake above this (0 = p_fake > 0.5)
  policy: str = "default 0.5"  # the policy that chose the threshold; "default 0.5" when none did
  calibrated: bool = False  # False for bundles without calibration (older, or of a run that has not finished)
  chosen: bool = False  # True when the threshold was chosen on validation (a model trained with a real class)

  @property
  def threshold(self) -> float:
    """The decision threshold as a p_fake."""
    return float(scipy.special.expit(self.threshold_logit))

  @classmethod
  def from_info(cls, info: bundle.BundleInfo, real_class: str = "") -> Detector:
    """From a bundle's description; `real_class` names the real class of a bundle that does not store one."""
    labels = info.label_names
    real = info.real_label
    if real_class or real is bundle.UNSET:
      real = real_index(labels, real_class)
    c = info.calibration
    if not c:
      return cls(labels, real)
    if "threshold_logit" not in c:  # trained without a real class: a temperature, but no threshold was chosen
      return cls(labels, real, c["temperature"], 0.0, "default 0.5", True, False)
    return cls(labels, real, c["temperature"], c["threshold_logit"], c.get("policy", "0.5"), True, True)

  def probabilities(self, logits: np.ndarray) -> np.ndarray:
    """Calibrated probability of every label `(N, num_labels)`."""
    return calibration.probabilities(logits, self.temperature)

  def score(self, logits: np.ndarray) -> np.ndarray:
    """Calibrated log-odds of p_fake per image (the ranking score of the detection metrics)."""
    if self.real is None:
      raise UserError(
        f"this model has no real class among {list(self.label_names)}: pass --config.data.real_class=NAME"
      )
    return fake_log_odds(logits, self.real, self.temperature)

  def p_fake(self, logits: np.ndarray) -> np.ndarray:
    return scipy.special.expit(self.score(logits))

  def decide(self, logits: np.ndarray) -> np.ndarray:
    """True where the image is called fake (`p_fake > threshold`)."""
    return self.score(logits) > self.threshold_logit

  def describe(self) -> str:
    """One line: which threshold and temperature are used, and where they came from."""
    if not self.calibrated:
      return "p_fake > 0.5 (the default threshold: this bundle has no calibration, see its note)"
    if not self.chosen:
      return (
        "p_fake > 0.5 (the default threshold, not chosen on validation: the model was trained without a real"
        f" class), probabilities at temperature {self.temperature:.3g}"
      )
    return (
      f"p_fake > {self.threshold:.4g} (policy {self.policy}, chosen on validation), probabilities at"
      f" temperature {self.temperature:.3g}"
    )


def fit(
  logits: np.ndarray, labels: np.ndarray, label_names: tuple[str, ...], real: int | None, policy: str
) -> dict[str, Any]:
  """The bundle's `calibration` block from validation logits and labels: temperature (NLL), ECE and NLL
  before and after, and (for a detector) the threshold the policy picks on calibrated p_fake, with the
  validation FPR and TPR it gives.

  Args:
    logits: validation logits `(N, outputs)`.
    labels: validation labels `(N,)` in the model's label order.
    label_names: the model's labels.
    real: the real class's index; None for a model that is no detector (no threshold then).
    policy: `eval.threshold`: `fpr:<rate>`, `balanced` or a fixed p_fake.
  """
  logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
  t = calibration.fit_temperature(logits, labels)
  out: dict[str, Any] = {
    "temperature": t,
    "nll_before": calibration.nll(logits, labels),
    "nll_after": calibration.nll(logits, labels, t),
    "ece_before": calibration.ece(calibration.probabilities(logits), labels),
    "ece_after": calibration.ece(calibration.probabilities(logits, t), labels),
    "ece_bins": calibration.ECE_BINS,
    "val_all_right": bool(np.all(calibration.probabilities(logits).argmax(-1) == labels)),  # then T stays 1
    "fit_on": "val",
    "n_val": len(labels),
  }
  if real is None:
    return out
  score = fake_log_odds(logits, real, t)
  is_fake = labels != real
  threshold = choose_threshold(parse_policy(policy), score, is_fake)
  fake = score > threshold
  out.update(
    policy=str(policy),
    threshold_logit=_finite(threshold),
    threshold=float(scipy.special.expit(threshold)),
    val_fpr=float(fake[~is_fake].mean()) if (~is_fake).any() else None,
    val_tpr=float(fake[is_fake].mean()) if is_fake.any() else None,
  )
  return out


def detection_metrics(
  detector: Detector, logits: np.ndarray, labels: np.ndarray, outlier: np.ndarray | None = None
) -> dict[str, Any]:
  """A split's detection block (real vs every other label): `detection.detection_row` at the detector's
  threshold, with the ECE of its calibrated probabilities and the threshold used."""
  from freqforensics.evaluation import detection  # pylint: disable=g-import-not-at-top  (scikit-learn: not for classify)

  is_fake = np.asarray(labels) != detector.real
  row = detection.detection_row(is_fake, detector.score(logits), detector.threshold_logit, outlier)
  row.update(
    threshold=detector.threshold,
    policy=detector.policy,
    temperature=detector.temperature,
    ece=calibration.ece(detector.probabilities(logits), labels),
    ece_uncalibrated=calibration.ece(calibration.probabilities(logits), labels),
    real_class=detector.label_names[detector.real],
  )
  return row
