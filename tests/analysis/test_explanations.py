"""Weight maps of linear models: the right place, the channel average, a readable PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from freqforensics import models
from freqforensics.analysis import explanations, mean_spectra
from freqforensics.errors import UserError


def test_weight_map_locates_single_weight():
  model = models.create_model("log2", (8, 8, 3), 2)
  kernel = np.zeros((8 * 8 * 3, 2), np.float32)
  row, col, ch = 2, 5, 1
  # Flat index of (row, col, ch) in C order, as the model flattens its input.
  kernel[np.ravel_multi_index((row, col, ch), (8, 8, 3)), 1] = -6.0
  model.dense.kernel[...] = kernel
  wm = explanations.weight_map(model)
  assert wm.shape == (2, 8, 8)
  expected = np.zeros((2, 8, 8))
  expected[1, row, col] = 6.0 / 3  # absolute value, averaged over the 3 channels
  np.testing.assert_allclose(wm, expected)
  np.testing.assert_allclose(explanations.weight_map(model, (8, 8, 3)), expected)


def test_weight_map_non_square_input():
  model = models.create_model("log", (4, 6, 1), 1)
  kernel = np.zeros((24, 1), np.float32)
  kernel[np.ravel_multi_index((3, 1, 0), (4, 6, 1)), 0] = 2.0
  model.dense.kernel[...] = kernel
  wm = explanations.weight_map(model, (4, 6, 1))
  assert wm.shape == (1, 4, 6) and wm[0, 3, 1] == 2.0 and wm.sum() == 2.0


def test_plot_weight_map_png(tmp_path):
  model = models.create_model("log2", (8, 8, 3), 2)
  path = explanations.plot_weight_map(explanations.weight_map(model), ("A_real", "B_gan"), tmp_path / "wm.png")
  with Image.open(path) as im:
    im.load()
    assert im.format == "PNG" and im.size[0] > 100
  # A single sigmoid output is titled by the label it scores.
  assert explanations.panel_titles(("A_real", "B_gan"), 1) == ["B_gan vs A_real"]


def test_non_linear_model_is_refused():
  model = models.create_model("cnn", (8, 8, 3), 2, variant="tiny")
  with pytest.raises(UserError, match="linear model"):
    explanations.weight_map(model)


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  from conftest import tiny_folder_config, write_fingerprinted_folders

  from freqforensics import train

  root = tmp_path_factory.mktemp("explain")
  c = tiny_folder_config(
    write_fingerprinted_folders(root / "src", 10), root / "data", split=(6, 2, 2), batch_size=4, epochs=1
  )
  train.train_and_evaluate(c, root / "wd")
  return root


def test_class_mean_spectra_equal_a_direct_computation(trained_workdir):
  import json

  import scipy.fft
  from PIL import Image

  info = json.loads((trained_workdir / "wd" / "bundle" / "bundle.json").read_text())
  names, means = mean_spectra.class_mean_spectra(info["dataset"])
  assert names == ("A_real", "B_gan") and means.shape == (2, 16, 16, 3)
  for k, name in enumerate(names):  # the train split is the first 6 files of each class, by name
    files = sorted((trained_workdir / "src" / name).glob("*.png"))[:6]
    x = np.stack([np.asarray(Image.open(f), np.float64) for f in files])
    want = np.log(np.abs(scipy.fft.dctn(x, type=2, norm="ortho", axes=(1, 2))) + 1e-12).mean(0)
    big = np.abs(want) < 20  # float32 DCT: coefficients near 0 have a large log error, compare the rest
    np.testing.assert_allclose(means[k][big], want[big], atol=2e-3)


def test_image_vs_classes_figure(trained_workdir, tmp_path):
  from PIL import Image

  image = sorted((trained_workdir / "src" / "B_gan").glob("*.png"))[-1]
  path = explanations.image_vs_classes(image, trained_workdir / "wd", tmp_path / "cmp.png")
  with Image.open(path) as im:
    im.load()
    assert im.size[0] > 300


def test_explain_image_read_natively_draws_the_patch_map(trained_workdir, tmp_path):
  """The command reads --image as classify's flags say: patches at native resolution, a map beside the spectra."""
  import subprocess
  import sys

  from PIL import Image

  tiles = [np.asarray(Image.open(f)) for f in sorted((trained_workdir / "src" / "B_gan").glob("*.png"))[:6]]
  big = np.concatenate([np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:], axis=1)])  # 32x48
  Image.fromarray(big).save(tmp_path / "big.png")
  run = [sys.executable, "-m", "freqforensics.tools.explain", f"--workdir={trained_workdir / 'wd'}"]
  r = subprocess.run(
    [*run, f"--image={tmp_path / 'big.png'}", "--read=native", "--patch_stride=8", f"--out={tmp_path / 'map.png'}"],
    capture_output=True,
    text=True,
  )
  assert r.returncode == 0, r.stderr[-2000:]
  explanations.image_vs_classes(tmp_path / "big.png", trained_workdir / "wd", tmp_path / "resized.png")
  with Image.open(tmp_path / "map.png") as native, Image.open(tmp_path / "resized.png") as resized:
    assert native.size[0] > resized.size[0]  # one panel more: the patch map
  r = subprocess.run([*run, "--read=native", f"--out={tmp_path / 'w.png'}"], capture_output=True, text=True)
  assert r.returncode == 2 and "--read apply to --image only" in r.stderr
