"""Calibration: temperature scaling fit on validation, expected calibration error, reliability bins.

A network's softmax (or sigmoid) is often over-confident: "p = 0.97" is then right far less than 97%
of the time. Temperature scaling (Guo et al., 2017) divides the logits by one scalar T > 0 fit on the
validation split by negative log-likelihood; it never changes which class is most probable, only how
sure the model says it is. Expected calibration error (ECE) measures the gap: images are grouped by
their top-label confidence into equal-width bins, and the gap between each bin's mean confidence and
its accuracy is averaged, weighted by the bin's share. Everything here is float64 numpy on the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.special

ECE_BINS = 15  # equal-width confidence bins of the ECE and the reliability diagram (Guo et al.'s choice)
T_RANGE = (0.05, 20.0)  # temperatures searched (log-uniformly) by `fit_temperature`


def log_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """Log-probability of every label `(N, num_labels)` of logits `(N, outputs)` divided by `temperature`;
  one logit (sigmoid) gives the two labels `[log(1 - p), log p]`."""
  z = np.asarray(logits, np.float64) / float(temperature)
  if z.shape[-1] == 1:
    return np.stack([scipy.special.log_expit(-z[:, 0]), scipy.special.log_expit(z[:, 0])], axis=-1)
  return scipy.special.log_softmax(z, axis=-1)


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """Calibrated probability of every label, `(N, num_labels)`, in float64."""
  return np.exp(log_probabilities(logits, temperature))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
  """Mean negative log-likelihood of `labels` under the tempered model."""
  logp = log_probabilities(logits, temperature)
  return float(-np.mean(logp[np.arange(len(logp)), np.asarray(labels, np.int64)]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
  """The temperature in `T_RANGE` that minimises the validation NLL (bounded 1-D search over log T).

  Deterministic: the same logits give the same T. A model already calibrated gets T near 1. When
  every validation image is right, the NLL keeps falling as T goes to 0 and has no minimum to find:
  sharpening then would only make the model surer on images unlike validation, so T stays 1.
  """
  import scipy.optimize  # pylint: disable=g-import-not-at-top  (half a second: only training fits)

  logp = log_probabilities(logits)
  labels = np.asarray(labels, np.int64)
  own = logp[np.arange(len(labels)), labels]
  best_other = np.max(np.where(np.eye(logp.shape[-1], dtype=bool)[labels], -np.inf, logp), axis=-1)
  if np.all(own > best_other):
    return 1.0  # every validation image right: the NLL only falls as T -> 0 (see above)
  lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
  res = scipy.optimize.minimize_scalar(
    lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}
  )
  t = float(np.exp(res.x))
  # The bounded search never evaluates T = 1 itself: keep 1 when it is at least as good.
  return t if nll(logits, labels, t) < nll(logits, labels, 1.0) else 1.0


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
  """Per equal-width confidence bin `(lo, hi]` (the first includes 0): count, mean top-label confidence, accuracy."""
  probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
  conf = probs.max(axis=-1)
  correct = probs.argmax(axis=-1) == labels
  edges = np.linspace(0.0, 1.0, bins + 1)
  which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
  out = []
  for b in range(bins):
    m = which == b
    n = int(m.sum())
    out.append(
      {
        "lo": float(edges[b]),
        "hi": float(edges[b + 1]),
        "count": n,
        "confidence": float(conf[m].mean()) if n else None,
        "accuracy": float(correct[m].mean()) if n else None,
      }
    )
  return out


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
  """Expected calibration error of the top label: sum over bins of |accuracy - confidence| x share."""
  rows = reliability(probs, labels, bins)
  n = sum(r["count"] for r in rows)
  return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows if r["count"]) / n)
