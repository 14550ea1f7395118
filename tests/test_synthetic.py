"""Tests for the synthetic benchmark (`freqforensics.data.synthetic`): small and fast (32x32)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from PIL import Image
from scipy.fft import dctn

from freqforensics.data import synthetic
from freqforensics.errors import UserError

N = 8
SIZE = 32


def _generate(out_dir: pathlib.Path, **kwargs) -> synthetic.SyntheticReport:
  args = dict(num_per_class=N, image_size=SIZE, seed=0, progress=False)
  args.update(kwargs)
  return synthetic.generate(out_dir, **args)


def _load(out_dir: pathlib.Path, cls: str) -> np.ndarray:
  files = sorted((out_dir / cls).glob("*.png"))
  return np.stack([np.asarray(Image.open(f)) for f in files])


def _files(out_dir: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(out_dir)): p.read_bytes()
          for p in sorted(out_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> synthetic.SyntheticReport:
  return _generate(tmp_path_factory.mktemp("bench") / "synth")


def test_layout_and_classes(bench):
  out = bench.out_dir
  folders = sorted(p.name for p in out.iterdir() if p.is_dir())
  assert folders == list(bench.classes) == ["A_real", "B_nearest", "C_bilinear", "D_transposed"]
  assert not bench.reused
  for cls in folders:
    names = sorted(p.name for p in (out / cls).iterdir())
    assert names == [f"{i:05d}.png" for i in range(N)]
    with Image.open(out / cls / names[0]) as img:
      assert (img.format, img.mode, img.size) == ("PNG", "RGB", (SIZE, SIZE))
  meta = json.loads((out / "synthetic.json").read_text())
  assert (meta["num_per_class"], meta["image_size"], meta["seed"]) == (N, SIZE, 0)
  assert meta["classes"] == folders
  assert sorted(meta["psnr_db"]) == folders[1:]


def test_deterministic_and_seed_dependent(bench, tmp_path):
  again = _generate(tmp_path / "again")
  assert _files(again.out_dir) == _files(bench.out_dir)
  other = _generate(tmp_path / "other", seed=1)
  assert not np.array_equal(_load(other.out_dir, "A_real"), _load(bench.out_dir, "A_real"))


def test_reuse_does_not_rewrite(tmp_path):
  first = _generate(tmp_path / "s")
  mtimes = {p: p.stat().st_mtime_ns for p in first.out_dir.rglob("*")}
  second = _generate(tmp_path / "s")
  assert second.reused and second.psnr_db == first.psnr_db
  assert {p: p.stat().st_mtime_ns for p in first.out_dir.rglob("*")} == mtimes


def test_other_parameters_raise_user_error_unless_overwrite(tmp_path):
  out = tmp_path / "s"
  _generate(out)
  (out / "notes.txt").write_text("mine")
  with pytest.raises(UserError, match="overwrite"):
    _generate(out, seed=1)
  report = _generate(out, seed=1, overwrite=True)
  assert not report.reused
  assert json.loads((out / "synthetic.json").read_text())["seed"] == 1
  assert (out / "notes.txt").read_text() == "mine"  # Not ours: overwrite leaves it alone.


def test_interrupted_run_regenerates_but_never_deletes_foreign_files(bench, tmp_path):
  out = tmp_path / "s"
  _generate(out)
  (out / "synthetic.json").unlink()
  (out / "B_nearest" / "00003.png").unlink()
  assert not _generate(out).reused
  assert _files(out) == _files(bench.out_dir)
  (out / "synthetic.json").unlink()
  (out / "A_real" / "holiday.jpg").write_bytes(b"user data")
  with pytest.raises(UserError):
    _generate(out)
  assert (out / "A_real" / "holiday.jpg").read_bytes() == b"user data"


def test_psnr_plausible(bench):
  assert sorted(bench.psnr_db) == ["B_nearest", "C_bilinear", "D_transposed"]
  for cls, psnr in bench.psnr_db.items():
    assert np.isfinite(psnr) and 15.0 < psnr < 50.0, (cls, psnr)


def test_fakes_keep_colour_of_their_source_crop(bench):
  # A fake of image i in class k is made from random_crop(default_rng([seed, k, i])): the upsampler
  # must keep its mean colour (no global shift a pixel model could use).
  for k, cls in enumerate(bench.classes[1:], start=1):
    fakes = _load(bench.out_dir, cls).astype(np.float64)
    src = np.stack([synthetic.random_crop(np.random.default_rng([0, k, i]), SIZE)
                    for i in range(N)]).astype(np.float64)
    assert np.abs(fakes.mean((1, 2)) - src.mean((1, 2))).max() < 3.0, cls


def _power(x: np.ndarray) -> np.ndarray:
  """Mean DCT power spectrum (over images and channels), normalised to sum 1."""
  p = np.mean(np.abs(dctn(x.astype(np.float64), type=2, norm="ortho", axes=(1, 2))) ** 2,
              axis=(0, 3))
  return p / p.sum()


def test_each_generator_leaves_a_spectral_fingerprint(bench):
  spectra = {cls: _power(_load(bench.out_dir, cls)) for cls in bench.classes}
  top = {cls: p[SIZE // 2:, SIZE // 2:].sum() for cls, p in spectra.items()}
  nyquist = {cls: p[-1, :].sum() + p[:, -1].sum() for cls, p in spectra.items()}
  # Upsampled from half resolution: the top frequency quadrant holds only replica energy.
  assert top["B_nearest"] < top["A_real"] / 3
  assert top["C_bilinear"] < top["B_nearest"] / 3  # Bilinear replicas are much weaker than nearest.
  # The transposed conv's unequal phase gains put a checkerboard at the Nyquist frequency.
  assert nyquist["D_transposed"] > 3 * nyquist["A_real"]
  assert nyquist["D_transposed"] > 3 * nyquist["B_nearest"]


def test_lowpass_blurs_only_the_generated_images(bench, tmp_path):
  from PIL import ImageFilter

  blurred = synthetic.generate(tmp_path / "lp", num_per_class=bench.num_per_class, image_size=bench.image_size,
                               seed=bench.seed, progress=False, lowpass=1.0)
  for cls in synthetic.CLASSES:
    for name in ("00000.png", "00001.png"):
      plain = Image.open(bench.out_dir / cls / name)
      got = np.asarray(Image.open(blurred.out_dir / cls / name))
      want = np.asarray(plain if cls == synthetic.REAL_CLASS else plain.filter(ImageFilter.GaussianBlur(1.0)))
      np.testing.assert_array_equal(got, want)
  assert json.loads((blurred.out_dir / synthetic.MARKER).read_text())["lowpass"] == 1.0
