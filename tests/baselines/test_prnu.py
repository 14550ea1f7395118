"""PRNU: residual numerics against PyWavelets/SciPy, attribution of fixed multiplicative noise
patterns (and chance without them), train/save/load/test, parallel workers, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pywt
from conftest import tiny_folder_config
from PIL import Image
from scipy import ndimage

from freqforensics.baselines import commands as brun
from freqforensics.baselines import config as bconfig
from freqforensics.baselines import noise_residuals, parallel, prnu, results

SIZE = 32


def write_patterned_folders(root, *, per_class: int, strength: float, classes: int = 3, seed: int = 0):
  """Smooth random scenes times (1 + strength * K_c), K_c a fixed Gaussian pattern per class, plus
  independent read-out noise; strength 0 leaves only the scenes and noise."""
  rng = np.random.default_rng(seed)
  patterns = rng.normal(size=(classes, SIZE, SIZE, 1))
  for c in range(classes):
    d = root / f"{chr(65 + c)}_cam{c}"
    d.mkdir(parents=True)
    for i in range(per_class):
      coarse = rng.uniform(50, 200, size=(4, 4, 3))
      scene = ndimage.zoom(coarse, (SIZE / 4, SIZE / 4, 1), order=1)
      img = scene * (1 + strength * patterns[c]) + rng.normal(0, 0.5, scene.shape)
      Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8)).save(d / f"{i:03d}.png")
  return root


def _config(src, data_dir, **prnu_fields):
  c = tiny_folder_config(src, data_dir, split=(20, 6, 10))
  c.data.image_size = SIZE
  bconfig.add_fields(c, "prnu")
  c.baseline.batch_size, c.baseline.n_jobs, c.baseline.checkpoint_every = 12, 1, 1
  c.baseline.prnu.levels_grid, c.baseline.prnu.sigma_grid = (1, 2), (0.5, 3.0)
  for k, v in prnu_fields.items():
    c.baseline.prnu[k] = v
  return c


def test_residual_of_a_constant_image_is_zero():
  for levels in (1, 2, 3, 4):
    r = noise_residuals.noise_residual(np.full((SIZE, 24, 3), 117, np.uint8), levels, 0.5)
    assert r.shape == (SIZE, 24, 3)
    np.testing.assert_allclose(r, 0.0, atol=1e-9)
  np.testing.assert_allclose(noise_residuals.test_statistic(np.zeros((1, 8, 8, 3))), 0.0)


def test_residual_is_the_image_minus_its_wavelet_wiener_denoised_version():
  """Reference: per image and channel, PyWavelets 2-D transform, the adaptive Wiener filter written
  out with SciPy, denoised approximation kept, reconstruction subtracted from the image."""
  img = np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.float64)
  levels, sigma, windows = 2, 3.0, (3, 5, 7, 9)
  ours = next(noise_residuals.residuals(img, [(levels, sigma)], windows))
  for b in range(2):
    for ch in range(3):
      coeffs = pywt.wavedec2(img[b, :, :, ch], "db4", mode="periodization", level=levels)
      out = [coeffs[0]]
      for bands in coeffs[1:]:
        den = []
        for d in bands:
          v = np.min(
            [np.maximum(ndimage.uniform_filter(d**2, w, mode="reflect") - sigma**2, 0) for w in windows], axis=0
          )
          den.append(d * v / (v + sigma**2))
        out.append(tuple(den))
      ref = img[b, :, :, ch] - pywt.waverec2(out, "db4", mode="periodization")
      np.testing.assert_allclose(ours[b, :, :, ch], ref, atol=1e-9)


def test_zero_mean_lattice_and_correlation():
  x = np.random.default_rng(2).normal(size=(2, 8, 10)) + np.arange(10)[None, None, :] + 5.0
  z = noise_residuals.zero_mean_lattice(x)
  for i in (0, 1):
    for j in (0, 1):
      sub = z[:, i::2, j::2]
      np.testing.assert_allclose(sub.mean(axis=1), 0, atol=1e-12)
      np.testing.assert_allclose(sub.mean(axis=2), 0, atol=1e-12)
  rows = np.ones((1, 8, 10)) * np.arange(8)[None, :, None]  # a pattern constant along rows: removed
  np.testing.assert_allclose(noise_residuals.zero_mean_lattice(rows), 0, atol=1e-12)
  a, k = np.random.default_rng(3).normal(size=(4, 30)), np.random.default_rng(4).normal(size=(3, 30))
  np.testing.assert_allclose(noise_residuals.normalised_correlation(a, k), np.corrcoef(a, k)[:4, 4:], atol=1e-12)


@pytest.fixture(scope="module")
def patterned(tmp_path_factory):
  root = tmp_path_factory.mktemp("prnu")
  return root, write_patterned_folders(root / "with", per_class=36, strength=0.03)


def test_prnu_attributes_fixed_noise_patterns_then_saves_loads_and_tests(patterned, tmp_path):
  root, src = patterned
  c = _config(src, root / "data")
  grid = brun.run(c, tmp_path, "grid_search")
  assert len(grid["rows"]) == 4 and max(r["accuracy"] for r in grid["rows"]) > 0.9
  trained = brun.run(c, tmp_path, "train")
  assert trained["params"] == grid["best"]
  assert trained["test"]["accuracy"] > 0.9 and trained["test"]["num_examples"] == 30
  with np.load(tmp_path / "prnu_model" / "fingerprints.npz", allow_pickle=False) as f:
    assert f["fingerprints"].shape == (3, SIZE, SIZE)
  val = brun.run(c, tmp_path, "test", split="val")  # loaded from the .npz, scored again
  best_row = next(r for r in grid["rows"] if (r["levels"], r["sigma"]) == tuple(grid["best"].values()))
  assert val["accuracy"] == best_row["accuracy"]
  assert json.loads((tmp_path / "prnu.json").read_text())["test"]["val"]["accuracy"] == val["accuracy"]


def test_prnu_falls_to_chance_without_the_patterns(tmp_path):
  src = write_patterned_folders(tmp_path / "without", per_class=36, strength=0.0)
  c = _config(src, tmp_path / "data", levels=1, sigma=3.0)
  trained = brun.run(c, tmp_path / "wd", "train")
  assert trained["test"]["accuracy"] < 0.6  # 3 classes: chance is 1/3 (30 test images)


def test_prnu_workers_give_the_same_fingerprints(patterned, tmp_path):
  root, src = patterned
  c = _config(src, root / "data", levels=2, sigma=3.0)
  one = brun.run(c, tmp_path / "one", "train")["test"]
  c.baseline.n_jobs = 2
  two = brun.run(c, tmp_path / "two", "train")["test"]
  with (
    np.load(tmp_path / "one" / "prnu_model" / "fingerprints.npz") as a,
    np.load(tmp_path / "two" / "prnu_model" / "fingerprints.npz") as b,
  ):
    np.testing.assert_allclose(a["fingerprints"], b["fingerprints"], rtol=1e-12, atol=1e-15)
  assert one["confusion_matrix"] == two["confusion_matrix"]


def test_prnu_grid_search_resumes_after_an_interruption(patterned, tmp_path, monkeypatch):
  root, src = patterned
  c = _config(src, root / "data", levels_grid=(1,), sigma_grid=(3.0,))
  reference = brun.run(c, tmp_path / "uninterrupted", "grid_search")["rows"]
  original = results.Progress.save
  saves = []

  def save_then_die(self, position, arrays):
    original(self, position, arrays)
    saves.append((self.path.name, position))
    if self.path.name == "grid_train.npz":
      raise KeyboardInterrupt  # killed after the first chunk of the fingerprint pass

  monkeypatch.setattr(results.Progress, "save", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    brun.run(c, tmp_path / "wd", "grid_search")
  monkeypatch.setattr(results.Progress, "save", original)
  tasks = []
  ordered_map = parallel.ordered_map

  def spy(fn, task_iter, n_jobs):
    for t in task_iter:
      tasks.append(fn.__name__)
      yield from ordered_map(fn, [t], n_jobs)

  monkeypatch.setattr(prnu.parallel, "ordered_map", spy)
  rows = brun.run(c, tmp_path / "wd", "grid_search")["rows"]
  assert tasks.count("accumulate") == 4  # 60 training images in chunks of 12: the first was kept
  assert [{k: r[k] for k in ("levels", "sigma", "accuracy")} for r in rows] == [
    {k: r[k] for k in ("levels", "sigma", "accuracy")} for r in reference
  ]
