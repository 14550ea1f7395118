"""The model bundle: parameters, statistics and labels round-trip with no pickle anywhere."""

from __future__ import annotations

import json
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from freqforensics import bundle, models, spectral, stats
from freqforensics.errors import UserError


@pytest.mark.parametrize("name", ["log2", "resnet"])
def test_bundle_round_trip_gives_the_same_outputs(name, tmp_path):
  model = models.create_model(name, (16, 16, 3), 4, seed=3, variant="tiny")
  x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 16, 16, 3)), jnp.float32)
  if name == "resnet":
    model(x, train=True)  # move the BatchNorm running statistics away from their initial values
  acc = stats.update(stats.init((16, 16, 3)), x)
  stats.save(tmp_path / "stats_dct_log.npz", acc, "dct_log")
  info = {
    "model": name,
    "variant": "tiny",
    "features": "dct_log",
    "input_shape": [16, 16, 3],
    "outputs": 4,
    "label_names": ["A_real", "B", "C", "D"],
  }
  bundle.save(tmp_path / "bundle", model, info, tmp_path / "stats_dct_log.npz")
  with zipfile.ZipFile(tmp_path / "bundle" / "params.npz") as z:  # plain .npy arrays, nothing pickled
    for member in z.namelist():
      np.lib.format.read_array(z.open(member), allow_pickle=False)
  loaded = bundle.load(tmp_path / "bundle")
  assert loaded.label_names == ("A_real", "B", "C", "D")
  np.testing.assert_allclose(loaded.model(x, train=False), model(x, train=False), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(loaded.feature_stats.mean, np.asarray(x, np.float64).mean(0), rtol=1e-5, atol=1e-6)
  assert isinstance(loaded.feature_stats, spectral.FeatureStats)


def test_loading_a_folder_without_a_bundle_or_of_another_model_is_a_clear_error(tmp_path):
  with pytest.raises(UserError, match="holds no model bundle"):
    bundle.load(tmp_path)
  model = models.create_model("log2", (8, 8, 1), 3)
  info = {"model": "log2", "features": "pixel", "input_shape": [8, 8, 1], "outputs": 3, "label_names": ["a", "b", "c"]}
  bundle.save(tmp_path / "b", model, info, None)
  meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
  meta["model"] = "nn"
  (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta))
  with pytest.raises(UserError, match="lacks the array"):
    bundle.load(tmp_path / "b")


def _detector_bundle(tmp_path):
  """A binary pixel bundle with every detector field, as training writes them (values made up)."""
  from freqforensics.evaluation import outliers

  model = models.create_model("log2", (8, 8, 1), 1)
  o = outliers.OutlierStats(
    np.zeros((2, 8, 8, 1), np.float32), np.ones((2, 8, 8, 1), np.float32), 0, np.zeros((3, 64), np.float32)
  )
  info = {
    "model": "log2",
    "features": "pixel",
    "input_shape": [8, 8, 1],
    "outputs": 1,
    "label_names": ["A_real", "B_gan"],
    "real_label": 0,
    "calibration": {"temperature": 1.5, "threshold": 0.6, "threshold_logit": 0.405, "policy": "fpr:0.05"},
    "outliers": {
      "file": "outliers.npz",
      "score": "real_mahalanobis",
      "fpr": 0.05,
      "thresholds": {"real_mahalanobis": 2.0},
    },
    "model_card": {"summary": "log2 on pixel features"},
  }
  bundle.save(tmp_path / "b", model, info, None, outlier_stats=o, card="# card\n")
  return tmp_path / "b"


def test_a_detector_bundle_round_trips_its_new_fields(tmp_path):
  b = bundle.load(_detector_bundle(tmp_path))
  assert b.note is None and b.outlier_stats.real == 0 and b.outlier_stats.components.shape == (3, 64)
  assert (tmp_path / "b" / "MODEL_CARD.md").read_text() == "# card\n"
  assert set(bundle.files(tmp_path / "b", None)) >= {tmp_path / "b" / n for n in ("outliers.npz", "MODEL_CARD.md")}


def test_an_old_bundle_without_the_new_fields_loads_with_a_note(tmp_path):
  from freqforensics.evaluation import operating_points

  path = _detector_bundle(tmp_path)
  info = json.loads((path / "bundle.json").read_text())
  for key in ("real_label", "calibration", "outliers", "model_card"):
    del info[key]
  (path / "bundle.json").write_text(json.dumps(info))
  (path / "outliers.npz").unlink()
  b = bundle.load(path)
  assert b.outlier_stats is None and "written before calibration" in b.note and "p_fake > 0.5" in b.note
  d = operating_points.Detector.from_info(b.info)  # the real class by its name, the old 0.5 threshold
  assert (d.real, d.threshold, d.temperature) == (0, 0.5, 1.0)


@pytest.mark.parametrize(
  "edit,needle",
  [
    (lambda i: i["calibration"].update(temperature=-1), "positive temperature"),
    (lambda i: i["calibration"].update(threshold=2.0), r"threshold in \[0, 1\]"),
    (lambda i: i["calibration"].update(policy="often"), "is not a threshold policy"),
    (lambda i: i.update(real_label=5), "real_label 5"),
    (lambda i: i["outliers"].update(score="vibes"), "outliers must name"),
    (lambda i: i["outliers"].update(file="../x.npz"), "outliers must name"),
    (lambda i: i.update(model_card="nice"), "model_card must be"),
  ],
)
def test_damaged_detector_fields_are_refused_with_one_line(tmp_path, edit, needle):
  path = _detector_bundle(tmp_path)
  info = json.loads((path / "bundle.json").read_text())
  edit(info)
  (path / "bundle.json").write_text(json.dumps(info))
  with pytest.raises(UserError, match=needle) as e:
    bundle.load(path)
  assert "\n" not in str(e.value) and "damaged or edited" in str(e.value)
