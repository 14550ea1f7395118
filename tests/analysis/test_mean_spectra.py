"""Spectrum statistics: equal to a direct numpy/scipy computation, radial profile, outputs, no overwrite."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from PIL import Image

from freqforensics.analysis import mean_spectra
from freqforensics.errors import UserError

SIZE = 16


def _write(folder, arrays) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for i, a in enumerate(arrays):
    Image.fromarray(a).save(folder / f"img_{i:03d}.png")


@pytest.fixture
def two_sets(tmp_path):
  rng = np.random.default_rng(0)
  real = rng.integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
  # A smoother second set, so that the two spectra really differ.
  fake = np.clip(rng.normal(128, 20, (5, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
  _write(tmp_path / "real", real)
  _write(tmp_path / "fake" / "sub", fake)  # nested: folders are read recursively
  (tmp_path / "real" / "notes.txt").write_text("not an image")
  return tmp_path, real, fake


def _expected(arrays: np.ndarray) -> dict[str, np.ndarray]:
  coeffs = np.stack([scipy.fft.dctn(a.astype(np.float64), type=2, norm="ortho", axes=(0, 1)) for a in arrays])
  logs = np.log(np.abs(coeffs) + 1e-12)
  return {"mean": coeffs.mean(0), "std": coeffs.std(0), "log_mean": logs.mean(0), "log_std": logs.std(0)}


def test_stats_equal_direct_computation(two_sets):
  root, real, fake = two_sets
  # batch_size 4 splits both sets over several batches (and a partial last one).
  out = mean_spectra.compute([root / "real", root / "fake"], num=100, size=SIZE, channels=3, batch_size=4)
  assert list(out["names"]) == ["real", "fake"]
  assert list(out["count"]) == [6, 5]
  for k, arrays in enumerate((real, fake)):
    for key, want in _expected(arrays).items():
      np.testing.assert_allclose(out[key][k], want, rtol=1e-9, atol=1e-8, err_msg=key)
  assert out["radial"].shape == (2, SIZE // 2)


def test_num_takes_first_images(two_sets):
  root, real, _ = two_sets
  out = mean_spectra.compute([root / "real"], num=3, size=SIZE, channels=3, batch_size=2)
  assert int(out["count"][0]) == 3
  np.testing.assert_allclose(out["mean"][0], _expected(real[:3])["mean"], rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("fy,fx", [(0, 5), (3, 4), (6, 0)])
def test_radial_profile_peak_of_sinusoid(tmp_path, fy, fx):
  size = 32
  yy, xx = np.indices((size, size))
  wave = 127.5 + 120 * np.cos(2 * np.pi * (fy * yy + fx * xx) / size)
  _write(tmp_path / "wave", [np.round(wave).astype(np.uint8)])
  out = mean_spectra.compute([tmp_path / "wave"], num=1, size=size, channels=1)
  profile = out["radial"][0]
  # Bin 0 holds the DC term (the mean brightness); the sinusoid is the peak of the rest.
  assert 1 + int(np.argmax(profile[1:])) == int(np.floor(np.hypot(fy, fx)))


def test_outputs_written_and_never_overwritten(two_sets):
  root, _, _ = two_sets
  out_dir = root / "out"
  folders = [root / "real", root / "fake"]
  first, files = mean_spectra.run_spectra(folders, out_dir, num=10, size=SIZE, channels=3, pdf=True)
  assert first == out_dir
  names = {p.name for p in files}
  assert {"spectra.npz", "mean_spectra.png", "differences.png", "radial_power.png", "radial_power.pdf"} <= names
  for p in files:
    if p.suffix == ".png":
      with Image.open(p) as im:
        im.load()
        assert im.size[0] > 50
  with np.load(first / "spectra.npz", allow_pickle=False) as f:
    assert f["mean"].shape == (2, SIZE, SIZE, 3)
  before = {p: p.stat().st_mtime_ns for p in first.iterdir() if p.is_file()}
  second, _ = mean_spectra.run_spectra(folders, out_dir, num=10, size=SIZE, channels=1)
  assert second != first and second.parent == out_dir and second.name.startswith("run_")
  assert (second / "spectra.npz").is_file()
  assert {p: p.stat().st_mtime_ns for p in first.iterdir() if p.is_file()} == before
  third, _ = mean_spectra.run_spectra(folders, out_dir, num=10, size=SIZE, channels=1)
  assert third not in (first, second)


def test_missing_or_empty_folder_is_user_error(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    mean_spectra.compute([tmp_path / "nope"], num=1, size=8, channels=3)
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="no images"):
    mean_spectra.compute([tmp_path / "empty"], num=1, size=8, channels=3)


def test_undecodable_files_are_skipped(two_sets):
  root, real, _ = two_sets
  (root / "real" / "img_000a.png").write_bytes(b"not a png")  # sorts after img_000.png
  out = mean_spectra.compute([root / "real"], num=3, size=SIZE, channels=3)
  assert int(out["count"][0]) == 3 and int(out["skipped"][0]) == 1
  np.testing.assert_allclose(out["mean"][0], _expected(real[:3])["mean"], rtol=1e-9, atol=1e-8)


def test_a_prepared_dataset_is_one_data_set_per_class_read_as_the_models_see_it(two_sets, tmp_path):
  from freqforensics.data import preparation

  root, real, fake = two_sets
  src = tmp_path / "classes"
  _write(src / "A_real", real)
  _write(src / "B_gan", fake)
  ds = preparation.prepare_to(
    src, tmp_path / "prepared", preparation.PrepareOptions(SIZE, 3, (3, 1, 1)), progress=False
  )
  out = mean_spectra.compute([f"{ds.path}:train"], num=100, size=0, channels=3)  # size 0: the dataset's
  assert list(out["names"]) == ["A_real", "B_gan"] and list(out["count"]) == [3, 3] and int(out["size"]) == SIZE
  for k, arrays in enumerate((real[:3], fake[:3])):  # the train split: the first 3 files of each class
    for key, want in _expected(arrays).items():
      np.testing.assert_allclose(out[key][k], want, rtol=1e-9, atol=1e-9)
  val = mean_spectra.compute([f"{ds.path}:val"], num=100, size=0, channels=3)
  np.testing.assert_allclose(val["mean"][1], _expected(fake[3:4])["mean"], atol=1e-9)
  gray = mean_spectra.compute([ds.path], num=2, size=SIZE, channels=1)  # DIR alone: the train split
  lum = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in real[:2]])[..., None]
  np.testing.assert_allclose(gray["mean"][0], _expected(lum)["mean"], atol=1e-9)
  with pytest.raises(UserError, match="pass --size=16"):
    mean_spectra.compute([ds.path], num=2, size=32, channels=3)
