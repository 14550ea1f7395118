"""Misclassified examples of a prepared split, and the image/spectrum figure the notebooks show."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from conftest import write_class_folders
from PIL import Image

from freqforensics.analysis import gallery, mistakes
from freqforensics.data import preparation
from freqforensics.errors import UserError


def _parity_predict(batch: np.ndarray) -> np.ndarray:
  """A fixed 'model': label = parity of the first pixel's red value, probability 0.9."""
  pred = batch[:, 0, 0, 0].astype(np.int64) % 2
  probs = np.full((len(batch), 2), 0.1, np.float32)
  probs[np.arange(len(batch)), pred] = 0.9
  return probs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("mistakes")
  src = write_class_folders(root / "src", {"A_real": 9, "B_gan": 9}, size=(16, 16), seed=3)
  options = preparation.PrepareOptions(image_size=16, channels=3, split=(3, 1, 5), num_threads=1)
  return src, preparation.prepare_to(src, root / "prepared", options, progress=False).path


def test_misclassified_matches_the_files(prepared):
  src, path = prepared
  # The test split is files 4..8 of each class in sorted order (3 train, 1 val before them), read with PIL.
  want = []
  for label, name in enumerate(("A_real", "B_gan")):
    for f in sorted((src / name).glob("*.png"))[4:9]:
      x = np.asarray(Image.open(f))
      if x[0, 0, 0] % 2 != label:
        want.append((f"{name}/{f.name}", x, label, 1 - label))
  assert 0 < len(want) < 10  # the fixture has both right and wrong examples
  got = mistakes.misclassified(_parity_predict, path, "test", label_names=("A_real", "B_gan"), batch_size=3)
  assert got.num_examples == 10 and len(got.indices) == len(want)
  order = sorted(range(len(want)), key=lambda i: want[i][0])
  got_order = sorted(range(len(got.paths)), key=lambda i: got.paths[i])
  for i, j in zip(order, got_order):
    rel, image, true, pred = want[i]
    assert got.paths[j].endswith(rel)
    np.testing.assert_array_equal(got.images[j], image)
    assert got.true[j] == true and got.predicted[j] == pred
    np.testing.assert_allclose(got.probs[j], [0.1, 0.9] if pred else [0.9, 0.1])
    assert got.titles()[j] == f"{('A_real', 'B_gan')[true]} -> {('A_real', 'B_gan')[pred]} (0.90)"
  limited = mistakes.misclassified(_parity_predict, path, "test", label_names=("A_real", "B_gan"), limit=1)
  assert len(limited.indices) == 1 and limited.images.shape == (1, 16, 16, 3) and limited.num_examples == 10


def test_misclassified_refuses_other_labels_and_splits(prepared):
  _, path = prepared
  with pytest.raises(UserError, match="labels"):
    mistakes.misclassified(_parity_predict, path, "test", label_names=("B_gan", "A_real"))
  with pytest.raises(UserError, match="no split 'tset'"):
    mistakes.misclassified(_parity_predict, path, "tset", label_names=("A_real", "B_gan"))
  none = mistakes.misclassified(
    lambda b: np.tile([[1.0, 0.0]], (len(b), 1)), path, "val", label_names=("A_real", "B_gan")
  )
  assert len(none.indices) == 1 and none.images.shape == (1, 16, 16, 3)  # only the B_gan val image is wrong


def test_log_spectra_and_grid(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
  want = np.log(np.abs(scipy.fft.dctn(x.astype(np.float64), type=2, norm="ortho", axes=(1, 2))) + 1e-12).mean(-1)
  got = gallery.log_spectra(x)
  assert got.shape == (3, 12, 12)
  big = np.abs(want) < 20  # float32 DCT: coefficients near 0 have a large log error
  np.testing.assert_allclose(got[big], want[big], atol=2e-3)
  path = gallery.image_grid(x, ["a", "b", "c"], tmp_path / "sub" / "grid.png", columns=2)
  with Image.open(path) as im:
    im.load()
    assert im.format == "PNG" and im.size[0] > 200
  with pytest.raises(ValueError, match="2 titles for 3 images"):
    gallery.image_grid(x, ["a", "b"], tmp_path / "bad.png")
