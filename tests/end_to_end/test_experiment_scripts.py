"""The experiment scripts in the shared style (`launch/robustness.py`, `compare_features.py`, `baselines_table.py`,
`families_accuracy.py`, `families_figures.py`),
smoke-run with `--tiny`: a table, JSON rows and figures land in a new results folder, the numbers are the runs'
own, a config override reaches every run, `--resume` reads finished work back, and a mistake is one line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
  spec = importlib.util.spec_from_file_location(name, ROOT / "launch" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _json(path: Path):
  return json.loads(path.read_text())


@pytest.fixture
def demo(monkeypatch):
  monkeypatch.chdir(ROOT)  # the scripts' default --config is relative to the repository root


def test_robustness_table_and_resume(demo, tmp_path):
  args = ["--tiny", "--models=log2", "--config.train.epochs=2"]
  out = _script("robustness").main([*args, f"--results={tmp_path}"])
  assert out.parent == tmp_path / "robustness" and (out / "robustness.png").stat().st_size > 0
  md = (out / "robustness.md").read_text()
  assert "configs/demo.py:tiny --config.train.epochs=2" in md
  rows = _json(out / "robustness.json")
  assert [r["run"] for r in rows] == ["log2 clean", "log2 augmented"]
  for row, name, augment in zip(rows, ("log2_clean", "log2_augmented"), ("none", "combined")):
    config = _json(out / "runs" / name / "config.json")
    assert (config["train"]["epochs"], config["model"]["name"], config["augment"]["kind"]) == (2, "log2", augment)
    report = _json(out / "runs" / name / "robustness_test" / "robustness.json")
    clean = report["clean"]["accuracy"]
    assert row["clean"] == clean == _json(out / "runs" / name / "test_metrics.json")["accuracy"]
    # --tiny: the mildest and the strongest strength of each perturbation
    assert report["settings"]["sweeps"] == {"jpeg": [90, 10], "blur": [0.5, 3], "noise": [2, 30], "crop": [0.05, 0.3]}
    for kind, points in report["results"].items():
      assert row[kind] == pytest.approx((2 * clean - points[0]["accuracy"] - points[1]["accuracy"]) / 2)
    assert f"| {row['run']} | {clean:.3f} | {row['jpeg']:.3f} |" in md
  # --resume: the same folder, its runs and reports read back, nothing trained or evaluated again
  metrics, report = (out / "runs" / "log2_clean" / p for p in ("metrics.jsonl", "robustness_test/robustness.json"))
  before = metrics.stat().st_mtime_ns, report.read_text()
  assert _script("robustness").main([*args, f"--resume={out}"]) == out
  assert (metrics.stat().st_mtime_ns, report.read_text()) == before
  assert [r["clean"] for r in _json(out / "robustness.json")] == [r["clean"] for r in rows]
  assert [p.name for p in (tmp_path / "robustness").iterdir()] == [out.name]


def test_feature_views_table(demo, tmp_path):
  out = _script("compare_features").main(
    ["--tiny", f"--results={tmp_path}", "--features=dct_log,azimuthal", "--per_class=8,full", "--config.train.epochs=2"]
  )
  assert out.parent == tmp_path / "feature_views" and (out / "feature_views.png").stat().st_size > 0
  rows = _json(out / "feature_views.json")
  assert [(r["features"], r["model"], r["name"]) for r in rows] == [
    ("dct_log", "log2", "dct_log"),
    ("azimuthal", "log2", "azimuthal-b16"),
  ]
  md = (out / "feature_views.md").read_text()
  assert "configs/demo.py:tiny --config.train.epochs=2" in md
  for row in rows:
    few, full = (out / "runs" / f"{row['features']}_log2_n{n}" for n in ("8", "full"))
    assert _json(few / "config.json")["data"]["split"][0] == 8
    assert _json(few / "config.json")["train"]["epochs"] == _json(full / "config.json")["train"]["epochs"] == 2
    assert row["n8"] == _json(few / "test_metrics.json")["accuracy"]
    assert row["nfull"] == _json(full / "test_metrics.json")["accuracy"]
    # the few-sample run is tested on as many images as the full one
    assert _json(few / "test_metrics.json")["num_examples"] == _json(full / "test_metrics.json")["num_examples"]
    assert f"| {row['name']} | log2 | {row['shape']} | {row['n8']:.3f} | {row['nfull']:.3f} |" in md
  assert rows[0]["shape"] == "32x32x3" and rows[1]["shape"] == "16x3"  # :tiny images are 32x32, 16 radial bins


def test_baselines_table_and_resume(demo, tmp_path):
  # An override of the data reaches every command: the classic baselines and log2 read one prepared dataset.
  args = ["--tiny", "--config.data.synthetic.num_per_class=40", "--n_jobs=1"]
  out = _script("baselines_table").main([*args, f"--results={tmp_path}"])
  assert out.parent == tmp_path / "baselines"
  rows = _json(out / "baselines.json")
  assert [(r["method"], r["input"]) for r in rows] == [
    ("kNN", "pixels"),
    ("Eigenfaces", "pixels"),
    ("PRNU", "pixels (noise residual)"),
    ("ridge (log2)", "pixels"),
    ("ridge (log2)", "log DCT"),
  ]
  log2 = {f: _json(out / "runs" / f"log2_{f}" / "test_metrics.json") for f in ("pixel", "dct_log")}
  assert rows[3]["test"] == log2["pixel"]["accuracy"] and rows[4]["test"] == log2["dct_log"]["accuracy"]
  for f in ("pixel", "dct_log"):
    config = _json(out / "runs" / f"log2_{f}" / "config.json")
    assert config["data"]["synthetic"]["num_per_class"] == 40 and config["features"] == f
  dataset = log2["pixel"]["dataset"]
  for row, name in zip(rows, ("knn", "eigenfaces", "prnu")):
    saved = _json(out / "baselines" / f"{name}.json")
    assert row["test"] == saved["train"]["test"]["accuracy"] and row["points"] == len(saved["grid_search"]["rows"])
    assert saved["settings"]["prepared"] == dataset
    assert saved["train"]["test"]["num_examples"] == log2["pixel"]["num_examples"]
    assert row["seconds"] > 0 and row["rss"] > 0
  assert _json(out / "baselines" / "eigenfaces.json")["settings"]["pca_subset"] == 200  # --tiny: at most 200
  md = (out / "baselines.md").read_text()
  assert "configs/demo.py:tiny --config.data.synthetic.num_per_class=40" in md
  assert f"| kNN | pixels | {rows[0]['points']} | {rows[0]['best']} | {rows[0]['test']:.3f} |" in md
  # --resume: every command finished, so none runs again (no wall time, no RSS) and the numbers are the same
  assert _script("baselines_table").main([*args, f"--resume={out}"]) == out
  again = _json(out / "baselines.json")
  assert [r["test"] for r in again] == [r["test"] for r in rows]
  assert all(r["seconds"] is None and r["rss"] is None for r in again)


@pytest.mark.parametrize("name", ["robustness", "compare_features", "baselines_table"])
def test_a_mistake_is_one_line_and_exit_code_2(demo, tmp_path, name):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  run = lambda *a: subprocess.run(
    [sys.executable, f"launch/{name}.py", "--tiny", f"--results={tmp_path}", *a],
    capture_output=True,
    text=True,
    timeout=120,
    env=env,
  )
  bad_key, old_flag = run("--config.train.lerning_rate=1"), run("--out=runs/x")
  for r in (bad_key, old_flag):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
  assert bad_key.stderr.startswith("error: ") and bad_key.stderr.strip().count("\n") == 0, bad_key.stderr
  assert "train.lerning_rate" in bad_key.stderr
  assert "unrecognized arguments: --out=runs/x" in old_flag.stderr  # --out is gone: --results, --resume
  assert not any(tmp_path.iterdir())  # nothing was made before the mistake was found


def test_resume_takes_an_earlier_results_folder_of_the_same_script(tmp_path):
  import argparse

  from freqforensics.errors import UserError
  from freqforensics.tools import scripts

  args = lambda resume: argparse.Namespace(results=str(tmp_path), resume=resume)
  earlier = scripts.output_dir(args(""), "robustness")
  assert earlier.parent == tmp_path / "robustness" and scripts.output_dir(args(str(earlier)), "robustness") == earlier
  with pytest.raises(UserError, match="not a results folder of this script"):
    scripts.output_dir(args(str(earlier)), "baselines")
  with pytest.raises(UserError, match="is not a folder"):
    scripts.output_dir(args(str(tmp_path / "nowhere")), "robustness")
  # main's --config for a script's config: the file's own argument and tiny joined as load_config joins them
  spec = lambda config, tiny: scripts.config_spec(argparse.Namespace(config=config, tiny=tiny))
  assert spec("configs/celeba_log2.py:pixel", True) == "configs/celeba_log2.py:pixel,tiny"
  assert (spec("configs/demo.py", True), spec("configs/demo.py", False)) == ("configs/demo.py:tiny", "configs/demo.py")


def test_generator_families_accuracy_and_figures(demo, tmp_path):
  """`launch/families_accuracy.py` and `families_figures.py` on the trained families' tiny synthetic data set."""
  out = _script("families_accuracy").main(["--tiny", "--binary=0", "--models=log2", f"--results={tmp_path}"])
  assert out.parent == tmp_path / "families_accuracy"
  rows = _json(out / "families_accuracy.json")
  assert [(r["model"], r["features"]) for r in rows] == [("log2", "pixels"), ("log2", "log DCT")]
  for r, features in zip(rows, ("pixel", "dct_log")):
    metrics = _json(out / "runs" / f"log2_{features}_all" / "test_metrics.json")
    assert r["accuracy"] == metrics["accuracy"] and len(metrics["label_names"]) == 7
  assert "configs/families.py:tiny" in (out / "families_accuracy.md").read_text()
  figures = _script("families_figures").main(["--tiny", "--columns=3", f"--results={tmp_path}"])
  assert figures.parent == tmp_path / "families_figures"
  from PIL import Image

  for name in ("families_samples.png", "families_spectra.png"):
    with Image.open(figures / name) as im:
      assert im.width > 100 and im.height > 100


def test_a_reused_run_reports_the_wall_time_of_the_call_that_trained_it(demo, tmp_path):
  from freqforensics.tools import scripts

  config = scripts.load_config("configs/demo.py", "tiny", ["--config.train.epochs=1"])
  first = scripts.run(config, tmp_path / "run")
  assert first["seconds"] > 0.5  # it trained: data, compilation, an epoch, the test
  assert _json(tmp_path / "run" / scripts.RUN_SECONDS) == {"seconds": first["seconds"]}
  again = scripts.run(config, tmp_path / "run")
  assert again["seconds"] == first["seconds"] and again["accuracy"] == first["accuracy"]
