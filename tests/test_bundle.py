"""The model bundle: parameters, statistics and labels round-trip with no pickle anywhere."""

from __future__ import annotations

import json
import math
import os
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
  bundle.save(tmp_path / "bundle", model, bundle.BundleInfo(**info), tmp_path / "stats_dct_log.npz")
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
  bundle.save(tmp_path / "b", model, bundle.BundleInfo(**info), None)
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
    "calibration": {"temperature": 1.5, "threshold": 0.6, "threshold_logit": math.log(0.6 / 0.4), "policy": "fpr:0.05"},
    "outliers": {
      "file": "outliers.npz",
      "score": "real_mahalanobis",
      "fpr": 0.05,
      "thresholds": {"real_mahalanobis": 2.0},
    },
    "model_card": {
      "summary": "log2 on pixel features",
      "data": {
        "source": "folder",
        "classes": {"A_real": {"train": 4}},
        "image_sizes": {"8x8": 4},
        "formats": {"PNG": 4},
      },
      "label_names": ["A_real", "B_gan"],
      "real_class": "A_real",
      "preprocessing": {"image_size": 8, "channels": 1, "crop": "center", "features": "pixel", "augment": "none"},
      "threshold": {"policy": "fpr:0.05", "threshold": 0.6, "val_fpr": 0.05, "val_tpr": 0.9},
      "calibration": {"temperature": 1.5},
      "outliers": None,
      "metrics": {"val": None, "test": None},
      "cross_generator": {},
      "failure_modes": [],
    },
  }
  bundle.save(tmp_path / "b", model, bundle.BundleInfo(**info), None, outlier_stats=o, card="# card\n")
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
    (lambda i: i.update(model_card="nice"), "model_card is not an object"),
    (lambda i: i["model_card"].pop("data"), "model_card lacks data"),
    (lambda i: i["model_card"]["data"].pop("formats"), "model_card lacks data.formats"),
    (lambda i: i["calibration"].update(threshold_logit=-1e6), "threshold 0.6 and threshold_logit -1000000.0 disagree"),
    (lambda i: i["calibration"].update(threshold=0.5), "threshold 0.5 and threshold_logit 0.405"),
    (lambda i: i.update(dataset=["/elsewhere"]), "is not the path of a prepared dataset"),
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


def test_a_threshold_that_agrees_with_its_logit_up_to_rounding_loads(tmp_path):
  path = _detector_bundle(tmp_path)
  info = json.loads((path / "bundle.json").read_text())
  info["calibration"]["threshold_logit"] = 0.4054651  # log(0.6 / 0.4) to 7 digits
  (path / "bundle.json").write_text(json.dumps(info))
  assert bundle.load(path).info.calibration["threshold"] == 0.6


def _stats_bundle(tmp_path):
  """A log2 bundle on dct_log features with its statistics, as training writes one."""
  model = models.create_model("log2", (8, 8, 1), 1)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 8, 8, 1)), jnp.float32)
  stats.save(tmp_path / "stats_dct_log.npz", stats.update(stats.init((8, 8, 1)), x), "dct_log")
  info = {
    "model": "log2",
    "features": "dct_log",
    "input_shape": [8, 8, 1],
    "outputs": 1,
    "label_names": ["A_real", "B_gan"],
  }
  bundle.save(tmp_path / "b", model, bundle.BundleInfo(**info), tmp_path / "stats_dct_log.npz")
  bundle.load(tmp_path / "b")  # loads as written
  return tmp_path / "b"


def _rewrite(path, **changes):
  with np.load(path) as f:
    arrays = {k: f[k] for k in f.files}
  arrays.update(changes)
  with open(path, "wb") as f:
    np.savez(f, **arrays)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["params", "stats mean", "stats var"])
def test_non_finite_parameters_or_statistics_are_refused(tmp_path, where, bad):
  path = _stats_bundle(tmp_path)
  if where == "params":
    with np.load(path / "params.npz") as f:
      key = next(k for k in f.files if f[k].ndim == 2)  # the dense kernel
      kernel = f[key].copy()
    kernel[3, 0] = bad
    _rewrite(path / "params.npz", **{key: kernel})
  else:
    name = where.split()[1]
    with np.load(path / "stats_dct_log.npz") as f:
      value = f[name].copy()
    value[0, 0, 0] = bad
    _rewrite(path / "stats_dct_log.npz", **{name: value})
  with pytest.raises(UserError, match="non-finite") as e:
    bundle.load(path)
  assert "\n" not in str(e.value) and "damaged or edited" in str(e.value)


def test_outliers_with_a_real_label_of_the_wrong_shape_are_refused(tmp_path):
  path = _detector_bundle(tmp_path)
  _rewrite(path / "outliers.npz", real=np.array([0, 1]))
  with pytest.raises(UserError, match="outliers.npz cannot be used .*not one integer label"):
    bundle.load(path)


@pytest.mark.parametrize("name", ["stats_dct_log.npz", "params.npz", "bundle.json"])
def test_a_link_inside_a_bundle_is_refused_not_followed(tmp_path, name):
  path = _stats_bundle(tmp_path)
  other = tmp_path / "other_run"
  other.mkdir()
  os.replace(path / name, other / name)  # another run's file, the same bytes: only the link is wrong
  os.symlink(other / name, path / name)
  with pytest.raises(UserError, match=f"{name} is a link to .*other_run") as e:
    bundle.load(path)
  assert "\n" not in str(e.value)


def test_the_bundle_of_an_unfinished_run_is_refused_unless_allowed(tmp_path):
  path = _detector_bundle(tmp_path)
  info = json.loads((path / "bundle.json").read_text())
  for key in ("calibration", "outliers", "model_card"):  # what training adds once the run has finished
    del info[key]
  (path / "bundle.json").write_text(json.dumps(info))
  with pytest.raises(UserError, match="has not finished .*--allow_unfinished") as e:
    bundle.load(path)
  assert "\n" not in str(e.value)
  b = bundle.load(path, allow_unfinished=True)
  assert not b.finished and "has not finished" in b.note and "written before calibration" not in b.note


def test_bundle_info_round_trips_bundle_json_key_for_key(tmp_path):
  """`BundleInfo` reads bundle.json and writes it back with the same keys, in the same order, and values."""
  path = _detector_bundle(tmp_path)
  written = json.loads((path / "bundle.json").read_text())
  info = bundle.BundleInfo.from_json(path, written)
  assert list(info.to_json().items()) == list(written.items())
  assert info.real_label == 0 and info.finished and info.feature_shape == info.input_shape


def test_bundle_info_defaults_are_those_of_bundles_from_before_a_field(tmp_path):
  model = models.create_model("log2", (8, 8, 1), 3)
  info = {"model": "log2", "features": "pixel", "input_shape": [8, 8, 1], "outputs": 3, "label_names": ["a", "b", "c"]}
  (tmp_path / "b").mkdir()
  bundle.save(tmp_path / "b", model, bundle.BundleInfo(**info), None)
  written = json.loads((tmp_path / "b" / "bundle.json").read_text())
  assert "real_label" not in written and "calibration" not in written  # a bundle from before them: no such keys
  b = bundle.load(tmp_path / "b")
  i = b.info
  assert (i.image_size, i.channels, i.crop, i.match_format, i.variant) == (8, 1, "center", "", "paper")
  assert i.real_label is bundle.UNSET and i.finished and "written before calibration" in b.note
