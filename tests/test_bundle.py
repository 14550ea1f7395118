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
