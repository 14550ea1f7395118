"""`--config.mode=eval`: a bundle evaluated on prepared splits and on class folders by label name."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import tiny_folder_config, write_fingerprinted_folders
from PIL import Image

from freqforensics import train
from freqforensics.errors import UserError
from freqforensics.evaluation import runner


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("evalrun")
  c = tiny_folder_config(write_fingerprinted_folders(root / "src", 16), root / "data", split=(8, 4, 4))
  train.train_and_evaluate(c, root / "wd")
  return c, root


def test_eval_mode_on_splits_reproduces_the_training_evaluation(trained):
  config, root = trained
  results = runner.evaluate_workdir(config, root / "wd")
  after_training = json.loads((root / "wd" / "test_metrics.json").read_text())
  saved = json.loads((root / "wd" / "eval_test.json").read_text())
  assert saved["confusion_matrix"] == after_training["confusion_matrix"] == results["test"]["confusion_matrix"]
  assert saved["loss"] == pytest.approx(after_training["loss"], rel=1e-5)
  assert saved["label_names"] == ["A_real", "B_gan"] and "binary" in saved
  assert (root / "wd" / "eval_val_roc.png").is_file() and (root / "wd" / "eval_test_confusion.png").is_file()


def test_eval_mode_on_class_folders_maps_labels_by_name(trained, tmp_path):
  config, root = trained
  folder = tmp_path / "only_fakes"
  shutil.copytree(root / "src" / "B_gan", folder / "B_gan")
  config = config.copy_and_resolve_references()
  config.eval.source_dir = str(folder)
  m = runner.evaluate_workdir(config, root / "wd")["folder_only_fakes"]
  assert m["num_examples"] == 16
  assert m["per_class_count"] == {"A_real": 0, "B_gan": 16}  # index 0 of the folder is B_gan: remapped
  (folder / "C_other").mkdir()
  Image.new("RGB", (16, 16)).save(folder / "C_other" / "x.png")
  with pytest.raises(UserError, match=r"class folders \['C_other'\] are not labels of this model"):
    runner.evaluate_workdir(config, root / "wd")


def test_training_and_mode_eval_give_the_same_test_metrics(trained):
  """One evaluation path: training's final test and `mode=eval` on the bundle it wrote agree on every metric."""
  config, root = trained
  after_training = json.loads((root / "wd" / "test_metrics.json").read_text())
  evaluated = runner.evaluate_workdir(config, root / "wd")["test"]
  for key in (
    "num_examples",
    "accuracy",
    "per_class_accuracy",
    "per_class_count",
    "per_class",
    "confusion_matrix",
    "label_names",
  ):
    assert evaluated[key] == after_training[key], key
  assert evaluated["loss"] == pytest.approx(after_training["loss"], rel=1e-6)
  for key in ("roc_auc", "average_precision", "accuracy_at_0.5"):
    assert evaluated["binary"][key] == pytest.approx(after_training["binary"][key], abs=1e-9), key
