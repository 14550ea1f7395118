"""Classifying in memory: probabilities, shapes, crops, folders (the placed model: `test_placement.py`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import good_images
from PIL import Image

from freqforensics.data import images
from freqforensics.evaluation import inference


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
    with pytest.raises(images.ImageDecodeError, match=r"big.png: is 20x24 pixels, crop .none. needs exactly 16x16"):
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
