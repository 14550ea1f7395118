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
  assert saved["confusion_matrix"] == after_training["confusion_matrix"] == results["test"].metrics["confusion_matrix"]
  assert saved["loss"] == pytest.approx(after_training["loss"], rel=1e-5)
  assert saved["label_names"] == ["A_real", "B_gan"] and "binary" in saved
  assert (root / "wd" / "eval_val_roc.png").is_file() and (root / "wd" / "eval_test_confusion.png").is_file()


def test_eval_mode_on_class_folders_maps_labels_by_name(trained, tmp_path):
  config, root = trained
  folder = tmp_path / "only_fakes"
  shutil.copytree(root / "src" / "B_gan", folder / "B_gan")
  config = config.copy_and_resolve_references()
  config.eval.source_dir = str(folder)
  ((name, r),) = runner.evaluate_workdir(config, root / "wd").items()
  m = r.metrics
  assert name.startswith("folder_only_fakes_")
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
  evaluated = runner.evaluate_workdir(config, root / "wd")["test"].metrics
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


def _layout(src, root):
  """The protocol layout from the fingerprinted classes: `flat/{0_real,1_fake}` and `nested/<subset>/{0_real,1_fake}`
  (links to the class folders' files, half of them each)."""
  import os

  for gen, subsets in (("flat", [""]), ("nested", ["s1", "s2"])):
    for k, sub in enumerate(subsets):
      for cls, folder in (("0_real", "A_real"), ("1_fake", "B_gan")):
        d = root / gen / sub / cls
        d.mkdir(parents=True)
        files = sorted((src / folder).glob("*.png"))
        part = files[: len(files) // 2] if gen == "flat" else files[len(files) // 2 :][k :: len(subsets)]
        for f in part:
          os.symlink(f, d / f.name)
  return root


def test_the_cross_generator_report_equals_scikit_learn_on_the_models_own_scores(trained, tmp_path):
  import numpy as np
  from sklearn import metrics as skm

  from freqforensics.data import protocol
  from freqforensics.evaluation import inference

  config, root = trained
  layout = _layout(root / "src", tmp_path / "gens")
  c = config.copy_and_resolve_references()
  c.eval.source_dir = str(layout)
  ((name, r),) = runner.evaluate_workdir(c, root / "wd").items()
  report = r.metrics
  assert sorted(report["by_generator"]) == ["flat", "nested"] and report["subsets"]["nested"] == ["s1", "s2"]
  assert name.startswith("cross_gens_")
  saved = json.loads((root / "wd" / f"eval_{name}.json").read_text())
  assert saved["by_generator"] == report["by_generator"] and saved["mean"] == report["mean"]
  assert (root / "wd" / f"eval_{name}.md").read_text().count("| **mean** |") == 1
  assert (root / "wd" / f"eval_{name}_roc.png").stat().st_size > 0
  # The same images scored here, through the classify path, and measured with scikit-learn.
  clf = inference.load(root / "wd")
  d, block = clf.detector, clf.bundle.info.outliers
  for gen, folders in protocol.read_layout(layout).items():
    files = list(folders.files["0_real"]) + list(folders.files["1_fake"])
    is_fake = np.r_[np.zeros(len(folders.files["0_real"]), bool), np.ones(len(folders.files["1_fake"]), bool)]
    out = clf.outputs(np.stack([clf.prepare_file(p) for p in files]))
    score = d.score(out["logits"])
    from freqforensics.evaluation import outliers

    _, flag = outliers.flags(outliers.all_scores({k: out[k] for k in outliers.SPECTRAL}, out["logits"]), block)
    fake = score > d.threshold_logit
    row = report["by_generator"][gen]
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(is_fake, score), abs=1e-12)
    assert row["ap"] == pytest.approx(skm.average_precision_score(is_fake, score), abs=1e-12)
    assert row["real_accuracy"] == pytest.approx(np.mean(~fake[~is_fake]))
    assert row["fake_accuracy"] == pytest.approx(np.mean(fake[is_fake]))
    assert row["detected"] == pytest.approx(np.mean((fake | flag)[is_fake]))
    assert row["real_flagged"] == pytest.approx(np.mean((fake | flag)[~is_fake]))
    assert (row["n_real"], row["n_fake"]) == (int((~is_fake).sum()), int(is_fake.sum()))
  card = json.loads((root / "wd" / "bundle" / "bundle.json").read_text())["model_card"]
  assert card["cross_generator"][name]["mean"] == report["mean"]
  assert "Cross-generator tests" in (root / "wd" / "bundle" / "MODEL_CARD.md").read_text()


def test_training_fits_the_operating_point_on_validation(trained):
  _, root = trained
  info = json.loads((root / "wd" / "bundle" / "bundle.json").read_text())
  c = info["calibration"]
  assert info["real_label"] == 0 and c["policy"] == "fpr:0.05" and c["val_fpr"] <= 0.05 and c["fit_on"] == "val"
  val = json.loads((root / "wd" / "val_metrics.json").read_text())
  assert val["detection"]["real_accuracy"] == pytest.approx(1 - c["val_fpr"])  # the same images, the same rate
  assert len(val["calibration"]["reliability"]["before"]) == 15 and (root / "wd" / "val_reliability.png").is_file()
  test = json.loads((root / "wd" / "test_metrics.json").read_text())
  assert {"tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "eer", "ece", "detected"} <= set(test["detection"])
  assert info["outliers"]["val_real_flagged"][info["outliers"]["score"]] <= 0.05
  card = info["model_card"]
  assert card["real_class"] == "A_real" and card["data"]["formats"] == {"PNG": 32}  # 16 per class, all PNG
  assert card["summary"] in (root / "wd" / "bundle" / "MODEL_CARD.md").read_text()


def test_a_model_without_a_real_class_is_no_detector(trained, tmp_path):
  config, root = trained
  shutil.copytree(root / "wd" / "bundle", tmp_path / "wd" / "bundle")
  info = json.loads((tmp_path / "wd" / "bundle" / "bundle.json").read_text())
  info.update(label_names=["cats", "dogs"], real_label=None)
  del info["outliers"]
  (tmp_path / "wd" / "bundle" / "bundle.json").write_text(json.dumps(info))
  c = config.copy_and_resolve_references()
  c.eval.source_dir = str(_layout(root / "src", tmp_path / "gens"))
  with pytest.raises(UserError, match="name no real class, so it is no detector: pass --config.data.real_class"):
    runner.evaluate_workdir(c, tmp_path / "wd")


def test_reports_of_two_sources_of_one_name_are_kept_apart_and_a_users_file_is_never_replaced(trained, tmp_path):
  import hashlib

  config, root = trained
  wd = tmp_path / "wd"
  shutil.copytree(root / "wd", wd)  # the run's own work dir (its record owns the bundle: the card is updated)
  a = _layout(root / "src", tmp_path / "a" / "test")
  b = _layout(root / "src", tmp_path / "b" / "test")
  evil = "x|y\n<img src=q onerror=alert(1)>$\\foo$"  # would break the table, run HTML, and the figure's mathtext
  (b / "flat").rename(b / evil)
  names = []
  for layout in (a, b, a):  # the same ROOT again replaces its own report, never the other's
    c = config.copy_and_resolve_references()
    c.eval.source_dir = str(layout)
    (name,) = runner.evaluate_workdir(c, wd)
    names.append(name)
  assert names[0] == names[2] != names[1] and all(n.startswith("cross_test_") for n in names)
  reports = sorted(wd.glob("eval_cross_test_*.json"))
  assert len(reports) == 2
  assert sorted(json.loads(p.read_text())["source_dir"] for p in reports) == [str(a.resolve()), str(b.resolve())]
  card = json.loads((wd / "bundle" / "bundle.json").read_text())["model_card"]["cross_generator"]
  assert sorted(n for n in card if n.startswith("cross_test_")) == sorted(names[:2])  # one table per source
  text = (wd / "bundle" / "MODEL_CARD.md").read_text()
  assert text.count("| **mean** |") == len(card) and str(a.resolve()) in text and str(b.resolve()) in text
  for md in (text, (wd / f"eval_{names[1]}.md").read_text()):
    assert "<img" not in md and "&lt;img src=q onerror=alert(1)>" in md
    row = next(line for line in md.splitlines() if "onerror" in line)
    mean = next(line for line in md.splitlines() if line.startswith("| **mean** |"))
    assert row.startswith("| x\\|y\\\\n&lt;img") and row.count(" | ") == mean.count(" | ")  # one cell, one row
  # A user's file of a report's name is refused before any work, and stays as it was.
  folder = tmp_path / "mine_only"
  shutil.copytree(root / "src" / "B_gan", folder / "B_gan")
  mine = wd / f"eval_folder_mine_only_{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]}_roc.png"
  mine.write_bytes(b"my own figure")
  c = config.copy_and_resolve_references()
  c.eval.source_dir = str(folder)
  with pytest.raises(UserError, match=r"_roc.png exists and was not written by freqforensics: it is never replaced"):
    runner.evaluate_workdir(c, wd)
  assert mine.read_bytes() == b"my own figure" and not list(wd.glob("eval_folder_mine_only_*.json"))
  for p in wd.glob("eval_test*"):  # as if this run had never been evaluated on its splits (other tests did)
    p.unlink()
  record = wd / ".freqforensics_outputs.jsonl"
  record.write_text("".join(line for line in record.read_text().splitlines(True) if '"eval_test' not in line))
  (wd / "eval_test.json").write_text("my notes")
  with pytest.raises(UserError, match=r"eval_test.json exists and was not written by freqforensics"):
    runner.evaluate_workdir(config, wd)
  assert (wd / "eval_test.json").read_text() == "my notes"
