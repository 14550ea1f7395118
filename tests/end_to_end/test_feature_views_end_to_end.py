"""The FFT, azimuthal and wavelet-packet views end to end: config checks, statistics, training, bundle, inference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
  np_azimuthal,
  np_fft_centred,
  one_line_error,
  pywt_tiled,
  tiny_folder_config,
  write_fingerprinted_folders,
)

from freqforensics import defaults, models, train
from freqforensics.analysis import explanations
from freqforensics.data import reader
from freqforensics.errors import UserError
from freqforensics.evaluation import inference, runner

ROOT = Path(__file__).resolve().parents[2]


def _np_view(images: np.ndarray, name: str) -> np.ndarray:
  """The raw (unstandardised) feature of a uint8 batch, from NumPy / PyWavelets."""
  if name == "fft_log":
    return np.log(np.abs(np_fft_centred(images)) + 1e-12)
  if name == "azimuthal-b8":
    return np.log(np_azimuthal(np.abs(np_fft_centred(images)) ** 2, 8) + 1e-12)
  assert name == "wpt_log-db2-l2"
  planes = [[pywt_tiled(im[:, :, c].astype(np.float64), "db2", 2) for c in range(im.shape[-1])] for im in images]
  return np.log(np.abs(np.stack([np.stack(p, -1) for p in planes])) + 1e-12)


@pytest.mark.parametrize(
  "features,model,name",
  [("fft_log", "log2", "fft_log"), ("azimuthal", "log2", "azimuthal-b8"), ("wpt_log", "log2", "wpt_log-db2-l2")],
)
def test_each_view_trains_and_classifies(features, model, name, tmp_path):
  src = write_fingerprinted_folders(tmp_path / "src", 24)
  c = tiny_folder_config(src, tmp_path / "data")
  c.features, c.model.name = features, model
  c.feature_options.bins, c.feature_options.level, c.feature_options.wavelet = 8, 2, "db2"
  metrics = train.train_and_evaluate(c, tmp_path / "run")
  assert metrics["features"] == name
  info = json.loads((tmp_path / "run" / "bundle" / "bundle.json").read_text())
  assert info["features"] == name and info["input_shape"] == [16, 16, 3]
  assert info["feature_shape"] == ([8, 3] if features == "azimuthal" else [16, 16, 3])

  # The statistics are those of this view over the training split, computed independently.
  prepared = reader.open_prepared(metrics["dataset"])
  images = prepared.source("train").read_batch(np.arange(32))["image"]
  ref = _np_view(images, name)
  with np.load(prepared.path / f"stats_{name}.npz") as f:
    assert str(f["kind"]) == name and float(f["count"]) == 32
    # float32 features: their log turns rounding of near-zero coefficients into larger errors
    np.testing.assert_allclose(f["mean"], ref.mean(axis=0), atol=5e-3 if features == "azimuthal" else 2e-2)
    np.testing.assert_allclose(f["std"], ref.std(axis=0), rtol=0.05, atol=2e-2)
  if features != "azimuthal":  # 2x nearest upsampling is a strong 2-D fingerprint; learnt in 3 epochs
    assert metrics["accuracy"] >= 0.75

  # mode=eval reads the kind from the bundle alone and gives the training run's test result.
  c.mode = "eval"
  again = runner.evaluate_workdir(c, tmp_path / "run")["test"].metrics
  assert again["accuracy"] == metrics["accuracy"] and again["features"] == name
  np.testing.assert_allclose(again["loss"], metrics["loss"], rtol=1e-5)

  probs = inference.load(tmp_path / "run").predict(images[:5])
  assert probs.shape == (5, 2)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
  if features == "azimuthal":  # a profile has no 2-D weight map
    with pytest.raises(UserError, match="weight maps need image-shaped features"):
      explanations.explain_workdir(tmp_path / "run")
  else:
    assert explanations.explain_workdir(tmp_path / "run").is_file()


def test_feature_options_are_checked_with_the_option_named():
  c = defaults.shrink_tiny(defaults.base_config())  # 32x32 images
  cases = [
    ({"features": "wavelets"}, "unknown features 'wavelets'"),
    ({"features": "azimuthal", "bins": 40}, "at most 16 bins.*--config.feature_options.bins=40"),
    ({"features": "wpt_log", "level": 6}, r"2\^6 = 64 packets: .*--config.feature_options.level=6"),
    ({"features": "wpt_log", "wavelet": "bior2.2"}, "not orthogonal"),
    ({"features": "azimuthal", "model": "resnet"}, "model resnet needs image-shaped features"),
  ]
  for change, needle in cases:
    c2 = defaults.shrink_tiny(defaults.base_config())
    c2.features = change["features"]
    c2.feature_options.bins = change.get("bins", c.feature_options.bins)
    c2.feature_options.level = change.get("level", c.feature_options.level)
    c2.feature_options.wavelet = change.get("wavelet", c.feature_options.wavelet)
    c2.model.name = change.get("model", "log2")
    with pytest.raises(UserError, match=needle):
      defaults.feature_name(c2)
  c.features = "wpt_log"
  assert defaults.feature_name(c) == "wpt_log-haar-l3"
  with pytest.raises(ValueError, match="cnn needs image-shaped input"):  # e.g. from a hand-edited bundle
    models.create_model("cnn", (8, 3), 2)


def test_cnn_on_azimuthal_is_one_line_from_the_cli(tmp_path):
  env = dict(os.environ, FREQFORENSICS_DATA=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
  r = subprocess.run(
    [
      sys.executable,
      "-m",
      "freqforensics.main",
      "--config=configs/demo.py:tiny",
      f"--workdir={tmp_path}/wd",
      "--config.features=azimuthal",
      "--config.model.name=cnn",
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  line = one_line_error(r)
  assert "model cnn needs image-shaped features" in line and "--config.model.name=log2" in line
  assert not (tmp_path / "data").exists()  # refused before generating or preparing any data


def test_spectra_command_gives_each_views_mean(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from freqforensics.analysis import mean_spectra  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(3)
  sets = {
    "real": rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8),
    "fake": np.repeat(np.repeat(rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), 2, 1), 2, 2),
  }
  for name, arrays in sets.items():
    (tmp_path / name).mkdir()
    for i, a in enumerate(arrays):
      Image.fromarray(a).save(tmp_path / name / f"{i}.png")
  out, files = mean_spectra.run_spectra(
    [tmp_path / "real", tmp_path / "fake"],
    tmp_path / "out",
    num=10,
    size=16,
    channels=3,
    wavelet="db2",
    level=2,
    bins=8,
  )
  assert out / "views.png" in files
  with np.load(out / "spectra.npz", allow_pickle=False) as r:
    assert list(r["views"]) == ["fft_log", "wpt_log-db2-l2", "azimuthal-b8"]
    for k, arrays in enumerate(sets.values()):
      np.testing.assert_allclose(r["view_fft_log"][k], _np_view(arrays, "fft_log").mean(0), atol=1e-6)
      np.testing.assert_allclose(r["view_azimuthal"][k], _np_view(arrays, "azimuthal-b8").mean(0), atol=1e-8)
      np.testing.assert_allclose(r["view_wpt_log"][k], _np_view(arrays, "wpt_log-db2-l2").mean(0), atol=1e-6)
  with pytest.raises(UserError, match="--level=5"):
    mean_spectra.compute([tmp_path / "real"], num=1, size=16, channels=3, level=5)
  odd = mean_spectra.compute([tmp_path / "real"], num=1, size=15, channels=3)  # no packets of an odd size; defaults
  assert list(odd["views"]) == ["fft_log", "azimuthal-b7"] and "view_wpt_log" not in odd
