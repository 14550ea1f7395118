"""Weight maps of linear models: the right place, the channel average, a readable PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from freqforensics import explain, models
from freqforensics.errors import UserError


def test_weight_map_locates_single_weight():
  model = models.create_model("log2", (8, 8, 3), 2)
  kernel = np.zeros((8 * 8 * 3, 2), np.float32)
  row, col, ch = 2, 5, 1
  # Flat index of (row, col, ch) in C order, as the model flattens its input.
  kernel[np.ravel_multi_index((row, col, ch), (8, 8, 3)), 1] = -6.0
  model.dense.kernel[...] = kernel
  wm = explain.weight_map(model)
  assert wm.shape == (2, 8, 8)
  expected = np.zeros((2, 8, 8))
  expected[1, row, col] = 6.0 / 3  # absolute value, averaged over the 3 channels
  np.testing.assert_allclose(wm, expected)
  np.testing.assert_allclose(explain.weight_map(model, (8, 8, 3)), expected)


def test_weight_map_non_square_input():
  model = models.create_model("log", (4, 6, 1), 1)
  kernel = np.zeros((24, 1), np.float32)
  kernel[np.ravel_multi_index((3, 1, 0), (4, 6, 1)), 0] = 2.0
  model.dense.kernel[...] = kernel
  wm = explain.weight_map(model, (4, 6, 1))
  assert wm.shape == (1, 4, 6) and wm[0, 3, 1] == 2.0 and wm.sum() == 2.0


def test_plot_weight_map_png(tmp_path):
  model = models.create_model("log2", (8, 8, 3), 2)
  path = explain.plot_weight_map(explain.weight_map(model), ("A_real", "B_gan"), tmp_path / "wm.png")
  with Image.open(path) as im:
    im.load()
    assert im.format == "PNG" and im.size[0] > 100
  # A single sigmoid output is titled by the label it scores.
  assert explain.panel_titles(("A_real", "B_gan"), 1) == ["B_gan vs A_real"]


def test_non_linear_model_is_refused():
  model = models.create_model("cnn", (8, 8, 3), 2, variant="tiny")
  with pytest.raises(UserError, match="linear model"):
    explain.weight_map(model)
