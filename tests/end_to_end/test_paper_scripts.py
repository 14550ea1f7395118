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


def test_generalization_table(demo, tmp_path):
  out = _script("paper_generalization").main(
    ["--tiny", f"--results={tmp_path}", "--models=log2", "--features=dct_log", "--families=gan_transposed"]
  )
  rows = json.loads((out / "generalization.json").read_text())
  assert [(r["setting"], r["trained_on"], r["augment"]) for r in rows] == [
    ("one", "gan_transposed", "none"),
    ("one", "gan_transposed", "blur_jpeg"),
    ("all_but_one", "all but gan_transposed", "none"),
    ("all_but_one", "all but gan_transposed", "blur_jpeg"),
    ("no_access", "simulated upsamplers", "none"),
    ("no_access", "simulated upsamplers", "blur_jpeg"),
  ]
  families = ["ae_decoder", "ae_decoder_aa", "gan_bilinear", "gan_nearest", "gan_subpixel", "gan_transposed"]
  for fam in families:  # the test split of each class (:tiny: 60 images, 70/10/20), linked, not copied
    for cls in ("0_real", "1_fake"):
      links = sorted((out / "protocol" / fam / cls).iterdir())
      assert len(links) == 12 and all(p.is_symlink() for p in links)
  for r in rows:
    run = out / "runs" / f"{r['setting']}_{r['trained_on'].replace(' ', '_')}_log2_dct_log_{r['augment']}"
    (report_file,) = run.glob("eval_cross_protocol_*.json")  # one report per protocol folder
    report = json.loads(report_file.read_text())
    assert sorted(report["by_generator"]) == families
    held = [report["by_generator"][f]["roc_auc"] for f in r["held_out"]]
    assert r["roc_auc"] == pytest.approx(sum(held) / len(held)) and r["by_family"] == report["by_generator"]
    config = json.loads((run / "config.json").read_text())
    assert config["augment"]["kind"] == r["augment"]
    if r["augment"] == "blur_jpeg":
      assert config["augment"]["blur_sigma"] == [0.0, 3.0] and config["augment"]["jpeg_quality"] == [30, 100]
    labels = json.loads((run / "bundle" / "bundle.json").read_text())["label_names"]
    assert labels[0] == "A_real" and len(labels) == {"one": 2, "all_but_one": 6, "no_access": 4}[r["setting"]]
  assert sorted(rows[0]["held_out"]) == families[:-1] and rows[2]["held_out"] == ["gan_transposed"]
  assert len(rows[4]["held_out"]) == 6  # no access: every trained family is unseen
  candidates = json.loads((out / "outlier_candidates.json").read_text())
  assert {c["candidate"] for c in candidates} == {"real_mahalanobis", "class_mahalanobis", "pca_real", "energy"}
  assert (out / "generalization.png").stat().st_size > 0 and "| one | gan_transposed |" in (
    out / "generalization.md"
  ).read_text()


def test_generalization_refuses_a_mistyped_family(demo, tmp_path):
  """A family name the synthetic data does not have would leave no run to do: one line naming the valid ones, exit 2,
  and no results folder (not an empty table and exit 0)."""
  import os
  import subprocess
  import sys

  from conftest import one_line_error

  r = subprocess.run(
    [
      sys.executable,
      "launch/paper_generalization.py",
      f"--config={demo}",
      "--tiny",
      f"--results={tmp_path / 'results'}",
      "--settings=one",
      "--models=log2",
      "--features=dct_log",
      "--augment=none",
      "--families=transposd",
    ],
    env=dict(os.environ, PYTHONPATH=str(ROOT)),
    capture_output=True,
    text=True,
    timeout=300,
  )
  line = one_line_error(r)
  assert "transposd" in line and "D_transposed" not in line
  # configs/demo.py's synthetic data: the simulated upsamplers, named as the class folders without their letter.
  assert "use any of nearest, bilinear, transposed" in line, line
  assert not (tmp_path / "results").exists()
