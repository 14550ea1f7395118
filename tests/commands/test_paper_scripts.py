"""The paper's experiment scripts (`launch/paper_*.py`), smoke-run with `--tiny`: tables, JSON rows and
figures land in a new results folder each time, and their numbers are the runs' own."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
  spec = importlib.util.spec_from_file_location(name, ROOT / "launch" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture
def demo(monkeypatch):
  monkeypatch.chdir(ROOT)  # the scripts' default --config is relative to the repository root
  return "configs/demo.py"


def test_binary_table(demo, tmp_path):
  # A config override in main's syntax reaches every run of the script and the results' notes.
  out = _script("paper_binary").main(["--tiny", f"--results={tmp_path}", "--config.train.epochs=2"])
  for features in ("pixel", "dct_log"):
    assert json.loads((out / "runs" / features / "config.json").read_text())["train"]["epochs"] == 2
  assert "configs/demo.py:tiny --config.train.epochs=2" in (out / "binary.md").read_text()
  rows = json.loads((out / "binary.json").read_text())
  assert [r["features"] for r in rows] == ["pixel", "dct_log"]
  for r in rows:
    metrics = json.loads((out / "runs" / r["features"] / "test_metrics.json").read_text())
    assert r["accuracy"] == metrics["accuracy"] and r["roc_auc"] == metrics["binary"]["roc_auc"]
    assert metrics["label_names"] == ["A_real", "D_transposed"] and r["parameters"] == 32 * 32 * 3 + 1
  assert "| pixel |" in (out / "binary.md").read_text()
  from freqforensics.tools import scripts

  again = scripts.results_dir(tmp_path, "binary")
  assert again != out and again.parent == out.parent and not any(again.iterdir())  # never the same folder


def test_few_sample_curve(demo, tmp_path):
  out = _script("paper_few_samples").main(
    ["--tiny", f"--results={tmp_path}", "--models=log2", "--fractions=0.25,1", "--seeds=0"]
  )
  rows = json.loads((out / "few_samples.json").read_text())
  assert [(r["features"], r["fraction"]) for r in rows] == [
    ("pixel", 0.25),
    ("pixel", 1.0),
    ("dct_log", 0.25),
    ("dct_log", 1.0),
  ]
  # :tiny has 60 images per class, 70% for training: 42, a quarter of it 10 (rounded).
  assert [r["per_class"] for r in rows] == [10, 42, 10, 42]
  small = json.loads((out / "runs" / "log2_dct_log_0.25_seed0" / "test_metrics.json").read_text())
  assert rows[2]["mean"] == small["accuracy"] and rows[2]["std"] == 0.0
  assert (out / "few_samples.png").stat().st_size > 0


def test_upsampling_ablation(demo, tmp_path):
  out = _script("paper_upsampling").main(["--tiny", f"--results={tmp_path}"])
  rows = json.loads((out / "upsampling.json").read_text())
  assert [r["upsampler"] for r in rows] == ["nearest", "bilinear", "transposed"]
  lowpassed = json.loads((out / "runs" / "lowpass_C_bilinear" / "config.json").read_text())
  assert lowpassed["data"]["synthetic"]["lowpass"] == 1.0 and lowpassed["data"]["classes"] == ["A_real", "C_bilinear"]
  assert (
    rows[1]["lowpass_accuracy"]
    == json.loads((out / "runs" / "lowpass_C_bilinear" / "test_metrics.json").read_text())["accuracy"]
  )
  for name in ("spectra_mean_spectra.png", "lowpass_spectra_mean_spectra.png", "spectra_radial_power.png"):
    assert (out / name).stat().st_size > 0


def test_attribution_table(demo, tmp_path):
  out = _script("paper_attribution").main(["--tiny", f"--results={tmp_path}"])
  rows = json.loads((out / "attribution.json").read_text())
  assert [(r["method"], r["features"]) for r in rows] == [
    ("kNN", "pixels"),
    ("Eigenfaces", "pixels"),
    ("PRNU", "noise residual"),
    ("log2", "pixels"),
    ("log2", "log DCT"),
    ("cnn", "pixels"),
    ("cnn", "log DCT"),
    ("resnet", "log DCT"),
  ]
  knn = json.loads((out / "baselines" / "knn.json").read_text())
  assert rows[0]["accuracy"] == knn["train"]["test"]["accuracy"]
  resnet = json.loads((out / "runs" / "resnet_dct_log" / "test_metrics.json").read_text())
  assert rows[-1]["accuracy"] == resnet["accuracy"] and all(r["parameters"] > 0 for r in rows[3:])
  assert rows[3]["parameters"] == 32 * 32 * 3 * 4 + 4  # log2 on :tiny's 32x32x3 inputs, 4 classes
  assert all(r.get("parameters") is None for r in rows[:3])  # no parameter count for the classic methods


def test_config_overrides_are_parsed_as_main_parses_them(demo):
  from freqforensics.errors import UserError
  from freqforensics.tools import scripts

  c = scripts.load_config(
    "configs/celeba_log2.py:pixel",
    "tiny",
    ["--config.data.split=(5, 3, 2)", "--config.train.epochs=4", "--config.data.prepared_dir=/data/celeba_prepared"],
  )
  assert c.features == "pixel" and c.data.synthetic.layout == "celeba"  # both config arguments applied
  assert tuple(c.data.split) == (5, 3, 2) and c.train.epochs == 4 and c.data.prepared_dir == "/data/celeba_prepared"
  with pytest.raises(UserError, match="train.lerning_rate"):
    scripts.load_config("configs/demo.py", None, ["--config.train.lerning_rate=0.1"])
  with pytest.raises(UserError, match="unknown config argument"):
    scripts.load_config("configs/demo.py", "huge")


def test_a_script_mistake_is_one_line_and_exit_code_2(demo):
  import subprocess
  import sys

  bad_key = subprocess.run(
    [sys.executable, "launch/paper_binary.py", "--tiny", "--config.train.lerning_rate=1"],
    capture_output=True,
    text=True,
    timeout=120,
  )
  bad_flag = subprocess.run(
    [sys.executable, "launch/paper_binary.py", "--tiny", "--fast"], capture_output=True, text=True, timeout=120
  )
  for r in (bad_key, bad_flag):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
  assert bad_key.stderr.strip().count("\n") == 0 and bad_key.stderr.startswith("error: ")
  assert "--config.KEY=VALUE" in bad_flag.stderr
