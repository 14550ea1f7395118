"""Running a bundle on images: a placed bundle equals the model applied by hand to SciPy features;
classifying files in memory (probabilities, shapes, crops, folders)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.fft
import scipy.special
from conftest import good_images
from PIL import Image

from freqforensics import bundle, models, sharding, stats
from freqforensics.evaluation import inference


def _bundle(tmp_path, features: str, outputs: int, rng) -> bundle.Bundle:
  shape = (16, 16, 3)
  model = models.create_model("log2", shape, outputs, seed=1)
  model.dense.kernel.value = rng.normal(size=model.dense.kernel.value.shape).astype(np.float32) * 0.1
  model.dense.bias.value = rng.normal(size=outputs).astype(np.float32)
  stats_file = None
  if features == "dct_log":
    train = rng.integers(0, 256, size=(40,) + shape).astype(np.float64)
    acc = stats.update(stats.init(shape), np.log(np.abs(scipy.fft.dctn(train, norm="ortho", axes=(1, 2))) + 1e-12))
    stats_file = tmp_path / "stats_dct_log.npz"
    stats.save(stats_file, acc, "dct_log")
  info = {
    "model": "log2",
    "features": features,
    "input_shape": list(shape),
    "outputs": outputs,
    "label_names": ["A_real", "B_gan"] if outputs == 1 else [f"c{k}" for k in range(outputs)],
  }
  bundle.save(tmp_path / "bundle", model, bundle.BundleInfo(**info), stats_file)
  return bundle.load(tmp_path / "bundle")


@pytest.mark.parametrize("features,outputs", [("dct_log", 3), ("pixel", 1)])
def test_placed_model_equals_the_model_applied_by_hand(tmp_path, features, outputs):
  rng = np.random.default_rng(0)
  b = _bundle(tmp_path, features, outputs, rng)
  images = rng.integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
  if features == "dct_log":  # the paper's feature, from SciPy and the saved statistics
    f = np.log(np.abs(scipy.fft.dctn(images.astype(np.float64), norm="ortho", axes=(1, 2))) + 1e-12)
    f = (f - b.feature_stats.mean) / b.feature_stats.std
  else:
    f = images / 127.5 - 1.0
  kernel, bias = np.asarray(b.model.dense.kernel.value, np.float64), np.asarray(b.model.dense.bias.value, np.float64)
  expected = f.reshape(len(f), -1) @ kernel + bias

  placed = inference.place(b, sharding.make_mesh())
  assert placed.mesh.size == jax.device_count() > 1  # the batch really is split over devices
  x = placed.put({"image": images})["image"]
  np.testing.assert_allclose(np.asarray(placed.logits(x)), expected, rtol=2e-4, atol=2e-4)
  probs = np.asarray(placed.probabilities(x))
  if outputs == 1:
    p = scipy.special.expit(expected[:, 0])
    np.testing.assert_allclose(probs, np.stack([1 - p, p], axis=-1), rtol=1e-4, atol=1e-5)
  else:
    np.testing.assert_allclose(probs, scipy.special.softmax(expected, axis=-1), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def workdir(classify_run) -> Path:
  return classify_run


@pytest.fixture(scope="module")
def clf(workdir) -> inference.Classifier:
  return inference.load(workdir)


def test_predict_gives_probabilities_and_checks_the_shape(clf):
  assert clf.label_names == ("A_real", "B_gan")
  x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
  p = clf.predict(x)
  assert p.shape == (5, 2)
  np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
  with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\)"):
    clf.predict(np.zeros((2, 8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    clf.predict(x.astype(np.float32))


def test_prepare_file_without_crop_refuses_another_size(clf, tmp_path):
  Image.new("RGB", (20, 24)).save(tmp_path / "big.png")
  Image.new("RGB", (16, 16)).save(tmp_path / "ok.png")
  clf.bundle.info = dataclasses.replace(clf.bundle.info, crop="none")
  try:
    assert clf.prepare_file(tmp_path / "ok.png").shape == (16, 16, 3)
    with pytest.raises(
      inference.images.ImageDecodeError, match=r"big.png: is 20x24 pixels, crop .none. needs exactly 16x16"
    ):
      clf.prepare_file(tmp_path / "big.png")
  finally:
    clf.bundle.info = dataclasses.replace(clf.bundle.info, crop="center")
  assert clf.prepare_file(tmp_path / "big.png").shape == (16, 16, 3)


def test_predict_files_in_memory(clf, tmp_path):
  folder = tmp_path / "in"
  good = good_images(folder)
  (folder / "broken.png").write_bytes(np.random.default_rng(1).bytes(200))
  (folder / "notes.txt").write_text("not an image")
  got = inference.predict_files(clf, [folder], batch_size=2)  # several batches, the last one short
  assert got.paths == good and [p for p, _ in got.failed] == [folder / "broken.png"]
  assert got.ignored == [folder / "notes.txt"]
  want = clf.predict(np.stack([clf.prepare_file(p) for p in good]))
  np.testing.assert_allclose(got.probs, want, atol=1e-6)
  names = [clf.label_names[k] for k in np.argmax(want, axis=1)]
  assert got.predicted == names
  assert dict(got.counts()) == {n: names.count(n) for n in set(names)}
