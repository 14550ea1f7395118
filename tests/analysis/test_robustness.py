"""The robustness report (perturbation sweeps) and training with augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_folder_config, write_fingerprinted_folders

from freqforensics import bundle, train
from freqforensics.analysis import robustness
from freqforensics.data import loading, reader
from freqforensics.errors import UserError
from freqforensics.evaluation import runner


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny model trained with augmentation (every image perturbed by one of the four)."""
  root = tmp_path_factory.mktemp("robust")
  c = tiny_folder_config(write_fingerprinted_folders(root / "src", 16), root / "data", split=(8, 4, 4), epochs=2)
  c.augment.kind, c.augment.probability = "combined", 1.0
  train.train_and_evaluate(c, root / "wd")
  return c, root


def test_training_with_augmentation_records_it_and_rejects_bad_settings(trained, tmp_path):
  config, root = trained
  assert bundle.load(root / "wd" / "bundle").info.augment["kind"] == "combined"
  bad = config.copy_and_resolve_references()
  bad.augment.jpeg_quality = (0, 50)
  with pytest.raises(UserError, match=r"--config\.augment: perturbation jpeg_quality"):
    train.train_and_evaluate(bad, tmp_path / "wd")
  assert not (tmp_path / "wd" / "checkpoints").exists()  # refused before any work


def _sources(root: Path):
  b = bundle.load(root / "wd" / "bundle")
  source = loading.relabelled_split(reader.open_prepared(b.info.dataset), b.label_names, "test")
  return b, source


def test_report_matches_the_evaluations_and_resumes(trained, tmp_path):
  config, root = trained
  b, source = _sources(root)
  evaluate = runner.bundle_evaluator(b, num_devices=4, batch_size=8, progress=False)
  calls = []

  def counted(src, name):
    calls.append(name)
    return evaluate(src, name)

  sweeps = {"jpeg": [90, 10], "noise": [40.0]}
  report = robustness.run_report(counted, source, tmp_path / "r", {"model": "tiny"}, sweeps=sweeps, progress=False)
  assert len(calls) == 4
  saved = json.loads((tmp_path / "r" / "robustness.json").read_text())
  assert saved == json.loads(json.dumps(report)) and (tmp_path / "r" / "robustness.png").is_file()
  test_metrics = json.loads((root / "wd" / "test_metrics.json").read_text())
  assert saved["clean"]["accuracy"] == test_metrics["accuracy"] and saved["clean"]["num_examples"] == 8
  assert [r["strength"] for r in saved["results"]["jpeg"]] == [90, 10] and "blur" not in saved["results"]
  # The JPEG q=10 point is what eval mode gives on a perturbed copy of the test split.
  c = config.copy_and_resolve_references()
  c.eval.splits, c.eval.perturb.kind, c.eval.perturb.jpeg_quality = ("test",), "jpeg", (10, 10)
  m = runner.evaluate_workdir(c, root / "wd")["test_jpeg"].metrics
  assert m["accuracy"] == saved["results"]["jpeg"][1]["accuracy"] and m["num_examples"] == 8
  written = json.loads((root / "wd" / "eval_test_jpeg.json").read_text())
  assert written["perturbation"]["kind"] == "jpeg" and written["perturbation"]["jpeg_quality"] == [10, 10]
  # Resume: an interrupted report (last point missing) evaluates only that point.
  saved["results"]["noise"] = []
  (tmp_path / "r" / "robustness.json").write_text(json.dumps(saved))
  calls.clear()
  again = robustness.run_report(counted, source, tmp_path / "r", {"model": "tiny"}, sweeps=sweeps, progress=False)
  assert calls == ["noise 40"] and again["results"]["noise"] == report["results"]["noise"]
  with pytest.raises(UserError, match="holds a report of other settings"):
    robustness.run_report(counted, source, tmp_path / "r", {"model": "tiny"}, sweeps={"jpeg": [50]}, progress=False)
