"""Aggregation rules: an image's logits from its patches', per logit; names checked with one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from freqforensics.data import patches
from freqforensics.evaluation import aggregate


def test_rules_per_logit_over_the_patches():
  x = np.array([[1.0, -2.0], [4.0, 0.0], [-3.0, 5.0], [2.0, 1.0]])
  np.testing.assert_allclose(aggregate.logits(x), [1.0, 1.0])
  np.testing.assert_allclose(aggregate.logits(x, "max"), [4.0, 5.0])
  np.testing.assert_allclose(aggregate.logits(x, "topk_mean:2"), [3.0, 3.0])  # (4 + 2) / 2, (5 + 1) / 2
  np.testing.assert_allclose(aggregate.logits(x, "topk_mean:1"), aggregate.logits(x, "max"))
  np.testing.assert_allclose(aggregate.logits(x, "topk_mean:9"), aggregate.logits(x, "mean"))  # all read
  np.testing.assert_allclose(aggregate.logits(x[:1], "max"), x[0])  # one patch: its logits


@pytest.mark.parametrize("rule", ["median", "topk_mean", "topk_mean:0", "topk_mean:-1", "mean:2", "max:", ""])
def test_unknown_rules_are_one_line_errors(rule):
  with pytest.raises(ValueError, match="use mean, max or topk_mean:K") as e:
    aggregate.parse(rule)
  assert "\n" not in str(e.value)


def test_image_outputs_aggregate_logits_by_the_rule_and_scores_by_their_mean():
  read = patches.read(np.zeros((40, 24, 3), np.uint8), 16, max_patches=4)
  n = len(read.grid.corners)
  out = {"logits": np.arange(n, dtype=np.float32)[:, None], "real_mahalanobis": np.arange(n) * 2.0}
  got = aggregate.image_outputs(out, read, "max")
  assert got["logits"].tolist() == [n - 1] and got["real_mahalanobis"] == pytest.approx(n - 1.0)
  assert got["patches"] == n == 4 and got["grid_patches"] == read.grid.total == 6
  assert got["patch_logits"].shape == (n, 1) and got["patch_corners"].tolist() == read.grid.corners.tolist()
