"""explain's patch map: each patch's value is its probability scored alone, overlaps are averaged, the
image's probabilities are classify's aggregate, and a resized image has no map."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from freqforensics import bundle, models
from freqforensics.analysis import patch_maps
from freqforensics.data import patches
from freqforensics.evaluation import aggregate, inference

SIDE = 16


def _bundle(tmp_path, outputs: int) -> None:
  """A tiny pixel-feature `log2` bundle with random weights: a detector (one output) or three classes."""
  rng = np.random.default_rng(outputs)
  model = models.create_model("log2", (SIDE, SIDE, 3), outputs, seed=1)
  model.dense.kernel.value = rng.normal(size=model.dense.kernel.value.shape).astype(np.float32) * 0.1
  labels = ("A_real", "B_gan") if outputs == 1 else tuple(f"c{k}" for k in range(outputs))
  bundle.save(tmp_path / "bundle", model, bundle.BundleInfo("log2", "pixel", (SIDE, SIDE, 3), outputs, labels), None)


def test_coverage_averages_overlapping_patches_and_leaves_gaps_empty():
  got = patch_maps.coverage((4, 6), np.array([[0, 0], [0, 2], [2, 4]]), 2, np.array([1.0, 3.0, 5.0]))
  want = np.full((4, 6), np.nan)
  want[:2, :2], want[:2, 2:4], want[2:, 4:] = 1.0, 3.0, 5.0
  np.testing.assert_array_equal(got, want)
  overlap = patch_maps.coverage((2, 3), np.array([[0, 0], [0, 1]]), 2, np.array([1.0, 2.0]))
  np.testing.assert_array_equal(overlap, [[1.0, 1.5, 2.0], [1.0, 1.5, 2.0]])


@pytest.mark.parametrize("outputs,rule", [(1, "max"), (3, "mean")])
def test_each_patch_value_is_its_probability_scored_alone(tmp_path, outputs, rule):
  _bundle(tmp_path, outputs)
  pixels = np.random.default_rng(3).integers(0, 256, (40, 27, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(tmp_path / "x.png")
  clf = inference.load(tmp_path, read="native", aggregate=rule, patch_stride=8)
  scored = patch_maps.score(clf, tmp_path / "x.png")
  g = patches.grid(40, 27, SIDE, 8)
  np.testing.assert_array_equal(scored.read.grid.corners, g.corners)
  np.testing.assert_array_equal(scored.image, pixels)
  alone = np.stack([clf.outputs(pixels[None, y : y + SIDE, x : x + SIDE])["logits"][0] for y, x in g.corners])
  want = clf.calibrated(aggregate.logits(alone, rule)[None])[0]
  np.testing.assert_allclose(scored.probs, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(scored.probs, inference.predict_files(clf, [tmp_path / "x.png"]).probs[0], atol=1e-6)
  if outputs == 1:
    values, name = clf.detector.p_fake(alone), "p_fake"
  else:
    k = int(np.argmax(want))
    values, name = clf.calibrated(alone)[:, k], f"p(c{k})"
  assert scored.value_name == name
  np.testing.assert_allclose(scored.patch_values, values, rtol=1e-5, atol=1e-6)


def test_a_resized_image_is_scored_as_before_and_has_no_map(tmp_path):
  _bundle(tmp_path, 1)
  Image.fromarray(np.random.default_rng(4).integers(0, 256, (40, 27, 3), dtype=np.uint8)).save(tmp_path / "x.png")
  clf = inference.load(tmp_path)
  scored = patch_maps.score(clf, tmp_path / "x.png")
  assert scored.read is None and scored.patch_values is None and scored.spectrum.shape == (SIDE, SIDE, 3)
  np.testing.assert_allclose(scored.probs, clf.predict(clf.prepare_file(tmp_path / "x.png")[None])[0], atol=1e-6)
