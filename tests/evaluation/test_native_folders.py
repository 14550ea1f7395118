"""`mode=eval` on class folders read natively: the metrics are those of classify's per-image scores on the
same files, computed by hand; too-small files are skipped and listed; bad reading options fail at once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_folder_config, write_fingerprinted_folders
from PIL import Image
from sklearn import metrics as skm

from freqforensics import bundle, defaults, models
from freqforensics.errors import UserError
from freqforensics.evaluation import inference, runner

SIDE = 16


@pytest.fixture
def setup(tmp_path):
  """A tiny `log2` detector with random weights that reads by resizing, and class folders of 40x40 and 40x27
  images (larger than its side) with one image too small to read."""
  rng = np.random.default_rng(0)
  model = models.create_model("log2", (SIDE, SIDE, 3), 1, seed=1)
  model.dense.kernel.value = rng.normal(size=model.dense.kernel.value.shape).astype(np.float32) * 0.1
  info = bundle.BundleInfo("log2", "pixel", (SIDE, SIDE, 3), 1, ("A_real", "B_gan"))
  bundle.save(tmp_path / "wd" / "bundle", model, info, None)
  src = write_fingerprinted_folders(tmp_path / "src", 5, size=40)
  for p in sorted(src.glob("*/*.png"))[::3]:
    Image.fromarray(np.asarray(Image.open(p))[:, :27]).save(p)
  Image.new("RGB", (40, 12)).save(src / "B_gan" / "small.png")
  config = tiny_folder_config(src, tmp_path / "data", batch_size=4)
  config.eval.source_dir = str(src)
  return config, tmp_path


def test_native_eval_gives_the_metrics_of_classifys_scores(setup):
  config, root = setup
  config.eval.read, config.eval.aggregate = "native", "max"
  ((name, r),) = runner.evaluate_workdir(config, root / "wd").items()
  clf = inference.load(root / "wd", read="native", aggregate="max")
  got = inference.predict_files(clf, [root / "src"])
  labels = np.array([clf.label_names.index(p.parent.name) for p in got.paths])
  m = r.metrics
  assert m["num_examples"] == len(got.paths) == 10 and m["patches"] == sum(got.patches) > 10
  assert m["accuracy"] == pytest.approx(np.mean(np.argmax(got.probs, -1) == labels))
  assert m["binary"]["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, got.probs[:, 1]))
  assert m["binary"]["average_precision"] == pytest.approx(skm.average_precision_score(labels, got.probs[:, 1]))
  assert m["skipped"] == 1 and "small.png" in m["skipped_files"][0][0]
  assert "below the model's side 16" in m["skipped_files"][0][1]
  saved = json.loads((root / "wd" / f"eval_{name}.json").read_text())
  assert saved["reading"]["read"] == "native" and saved["confusion_matrix"] == m["confusion_matrix"]


def test_a_bundle_that_resizes_is_evaluated_as_before(setup):
  config, root = setup
  ((_, r),) = runner.evaluate_workdir(config, root / "wd").items()
  assert "reading" not in r.metrics and r.metrics["num_examples"] == 10  # prepared: the small image skipped too


@pytest.mark.parametrize(
  "key,value,needle",
  [("read", "crop", "eval.read='crop'"), ("aggregate", "median", "unknown aggregation rule 'median'")],
)
def test_bad_reading_options_fail_at_once(key, value, needle):
  c = defaults.base_config()
  c.eval[key] = value
  with pytest.raises(UserError, match=needle):
    defaults.validate(c)
