"""An image's score from its patches' (`data.patches`): the aggregation rules, on the host (numpy).

Rules act on each logit separately, over the patches: `mean` (the default), `max`, and `topk_mean:K` (the
mean of the K largest; all patches when fewer were read). A one-logit detector's logit is the fake
logit, so `max` and `topk_mean` score an image by its most fake-looking patches; for a multi-class model
each class's logit is aggregated on its own. The spectral open-set scores are the patches' mean under
every rule (they describe the image's spectrum, not a decision); the open-set candidates computed from
logits then use the aggregated logit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from freqforensics.data import patches as patches_lib

RULES = ("mean", "max", "topk_mean:K")
DEFAULT = "mean"


def parse(rule: str) -> tuple[str, int]:
  """`(name, K)` of an aggregation rule (K is 0 but for `topk_mean:K`); ValueError (one line) if unknown."""
  name, colon, k = str(rule).partition(":")
  if name in ("mean", "max") and not colon:
    return name, 0
  if name == "topk_mean" and k.isdigit() and int(k) > 0:
    return name, int(k)
  raise ValueError(f"unknown aggregation rule {rule!r}: use mean, max or topk_mean:K (K a positive integer)")


def logits(patch_logits: np.ndarray, rule: str = DEFAULT) -> np.ndarray:
  """The image's logits `(outputs,)` from its patches' `(P, outputs)` by `rule` (per logit, over patches)."""
  name, k = parse(rule)
  x = np.asarray(patch_logits)
  if name == "mean":
    return x.mean(axis=0)
  if name == "max":
    return x.max(axis=0)
  return np.sort(x, axis=0)[-min(k, len(x)) :].mean(axis=0)


def image_outputs(patch_outputs: dict[str, np.ndarray], read: patches_lib.Patches, rule: str) -> dict[str, Any]:
  """One image's outputs from its patches': `logits` by `rule`, the spectral scores (every other output) by
  their mean, `patches` (the number read), `grid_patches` (of the full grid), `patch_logits`, `patch_corners`."""
  out: dict[str, Any] = {k: np.asarray(v).mean(axis=0) for k, v in patch_outputs.items() if k != "logits"}
  out["logits"] = logits(patch_outputs["logits"], rule)
  out["patches"] = len(read.grid.corners)
  out["grid_patches"] = read.grid.total
  out["patch_logits"] = np.asarray(patch_outputs["logits"])
  out["patch_corners"] = read.grid.corners
  return out
