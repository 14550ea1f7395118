"""Tests for the synthetic data set (`freqforensics.generators.synthetic`): small and fast (32x32)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image
from scipy.fft import dctn

from freqforensics import defaults
from freqforensics.data import loading
from freqforensics.errors import UserError
from freqforensics.files import locks
from freqforensics.generators import synthetic, upsamplers

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
  return {str(p.relative_to(out_dir)): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file()}


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
    src = np.stack([synthetic.random_crop(np.random.default_rng([0, k, i]), SIZE) for i in range(N)]).astype(np.float64)
    assert np.abs(fakes.mean((1, 2)) - src.mean((1, 2))).max() < 3.0, cls


def _power(x: np.ndarray) -> np.ndarray:
  """Mean DCT power spectrum (over images and channels), normalised to sum 1."""
  p = np.mean(np.abs(dctn(x.astype(np.float64), type=2, norm="ortho", axes=(1, 2))) ** 2, axis=(0, 3))
  return p / p.sum()


def test_each_generator_leaves_a_spectral_fingerprint(bench):
  spectra = {cls: _power(_load(bench.out_dir, cls)) for cls in bench.classes}
  top = {cls: p[SIZE // 2 :, SIZE // 2 :].sum() for cls, p in spectra.items()}
  nyquist = {cls: p[-1, :].sum() + p[:, -1].sum() for cls, p in spectra.items()}
  # Upsampled from half resolution: the top frequency quadrant holds only replica energy.
  assert top["B_nearest"] < top["A_real"] / 3
  assert top["C_bilinear"] < top["B_nearest"] / 3  # Bilinear replicas are much weaker than nearest.
  # The transposed conv's unequal phase gains put a checkerboard at the Nyquist frequency.
  assert nyquist["D_transposed"] > 3 * nyquist["A_real"]
  assert nyquist["D_transposed"] > 3 * nyquist["B_nearest"]


def test_lowpass_blurs_only_the_generated_images(bench, tmp_path):
  from PIL import ImageFilter

  blurred = synthetic.generate(
    tmp_path / "lp",
    num_per_class=bench.num_per_class,
    image_size=bench.image_size,
    seed=bench.seed,
    progress=False,
    lowpass=1.0,
  )
  for cls in synthetic.CLASSES:
    for name in ("00000.png", "00001.png"):
      plain = Image.open(bench.out_dir / cls / name)
      got = np.asarray(Image.open(blurred.out_dir / cls / name))
      want = np.asarray(plain if cls == synthetic.REAL_CLASS else plain.filter(ImageFilter.GaussianBlur(1.0)))
      np.testing.assert_array_equal(got, want)
  assert json.loads((blurred.out_dir / synthetic.MARKER).read_text())["lowpass"] == 1.0


# The harder-data options (fingerprint, jpeg_quality, lowpass) on a smaller synthetic data set.
OPT_N = 6
OPT_SIZE = 32
# sha256 over the A_real PNG files (sorted) of generate(num_per_class=6, image_size=32, seed=0), computed
# with the code before the options existed (main at 67b0b86). The real class is numpy + Pillow only, so
# the hash is the same on every machine (the fakes go through XLA convolutions: compared below instead).
A_REAL_SHA256 = "008e847fb67a4cb752bff8eb082df83670fe64a41604ee3aa5329dcd557f6451"
# synthetic.json's parameters as that code wrote them (the cache key).
OLD_PARAMS = {
  "format_version": 1,
  "num_per_class": OPT_N,
  "image_size": OPT_SIZE,
  "seed": 0,
  "classes": ["A_real", "B_nearest", "C_bilinear", "D_transposed"],
  "generators": ["B_nearest", "C_bilinear", "D_transposed"],
}


def _generate_options(out_dir: pathlib.Path, **kwargs) -> synthetic.SyntheticReport:
  return synthetic.generate(
    out_dir, **{"num_per_class": OPT_N, "image_size": OPT_SIZE, "seed": 0, "progress": False, **kwargs}
  )


def _load_options(out_dir: pathlib.Path, cls: str) -> np.ndarray:
  return np.stack([np.asarray(Image.open(f)) for f in sorted((out_dir / cls).glob("*.png"))])


def _bytes(out_dir: pathlib.Path, cls: str) -> list[bytes]:
  return [f.read_bytes() for f in sorted((out_dir / cls).glob("*.png"))]


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> synthetic.SyntheticReport:
  return _generate_options(tmp_path_factory.mktemp("plain") / "s")


def _old_fakes(cls: str, k: int) -> np.ndarray:
  """The fakes of class `cls` (index k) as the code before the options made them (kept here verbatim)."""
  mode, weight_seed = upsamplers.GENERATOR_SPECS[cls]
  graphdef, state = nnx.split(upsamplers.Upsampler(mode, rngs=nnx.Rngs(weight_seed)))

  @jax.jit
  def forward(state, crops, noise):
    x = crops.astype(jnp.float32) / 127.5 - 1.0
    b, s, _, c = x.shape
    low = jax.image.resize(x, (b, s // 2, s // 2, c), "linear", antialias=True)
    y = nnx.merge(graphdef, state)(low + noise)
    return jnp.round(jnp.clip((y + 1.0) * 127.5, 0, 255)).astype(jnp.uint8)

  rngs = [np.random.default_rng([0, k, i]) for i in range(OPT_N)]
  crops = np.stack([synthetic.random_crop(r, OPT_SIZE) for r in rngs])
  noise = np.stack([r.normal(0, 0.02, (OPT_SIZE // 2, OPT_SIZE // 2, 3)) for r in rngs]).astype(np.float32)
  return np.asarray(forward(state, crops, noise))


def test_defaults_write_what_the_code_wrote_before_the_options(plain, tmp_path):
  meta = json.loads((plain.out_dir / synthetic.MARKER).read_text())
  assert {k: v for k, v in meta.items() if k != "psnr_db"} == OLD_PARAMS  # no new keys: old caches stay valid
  assert hashlib.sha256(b"".join(_bytes(plain.out_dir, "A_real"))).hexdigest() == A_REAL_SHA256
  for k, cls in enumerate(synthetic.GENERATORS, start=1):
    np.testing.assert_array_equal(_load_options(plain.out_dir, cls), _old_fakes(cls, k), err_msg=cls)
  explicit = _generate_options(tmp_path / "explicit", fingerprint=1.0, jpeg_quality=0)
  for cls in synthetic.CLASSES:
    assert _bytes(explicit.out_dir, cls) == _bytes(plain.out_dir, cls), cls
  assert (explicit.out_dir / synthetic.MARKER).read_text() == (plain.out_dir / synthetic.MARKER).read_text()


def _log_spectrum(x: np.ndarray) -> np.ndarray:
  """Per image, log |DCT-II| (orthonormal) of each channel: (B, H, W, C)."""
  return np.log(np.abs(dctn(x.astype(np.float64), type=2, norm="ortho", axes=(1, 2))) + 1.0)


def test_weaker_fingerprint_changes_only_the_fakes_and_brings_the_generators_closer(plain, tmp_path):
  weak = _generate_options(tmp_path / "weak", fingerprint=0.5)
  assert _bytes(weak.out_dir, "A_real") == _bytes(plain.out_dir, "A_real")
  for cls in synthetic.GENERATORS:
    assert not np.array_equal(_load_options(weak.out_dir, cls), _load_options(plain.out_dir, cls)), cls
  assert json.loads((weak.out_dir / synthetic.MARKER).read_text())["fingerprint"] == 0.5
  # The perturbation is what tells the bilinear and the transposed-conv generator apart (the latter's
  # base kernel is bilinear interpolation). A one-generator synthetic data set uses class index 1 for either,
  # so both upsample the same crops with the same noise: their per-image spectral distance must shrink.
  gap = {}
  for f in (1.0, 0.5):
    c, d = (
      _load_options(_generate_options(tmp_path / f"{g}{f}", fingerprint=f, generators=(g,)).out_dir, g)
      for g in ("C_bilinear", "D_transposed")
    )
    gap[f] = np.abs(_log_spectrum(c) - _log_spectrum(d)).mean()
  assert gap[0.5] < 0.8 * gap[1.0], gap


def _pillow_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG", quality=quality)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_jpeg_quality_round_trips_every_class(plain, tmp_path):
  jpeg = _generate_options(tmp_path / "jpeg", jpeg_quality=60)
  for cls in synthetic.CLASSES:
    got, before = _load_options(jpeg.out_dir, cls), _load_options(plain.out_dir, cls)
    assert got.shape == before.shape and not np.array_equal(got, before), cls  # every class, the real one too
    with Image.open(sorted((jpeg.out_dir / cls).glob("*.png"))[0]) as img:
      assert img.format == "PNG"
    want = np.stack([_pillow_jpeg(im, 60) for im in before])
    np.testing.assert_array_equal(got, want, err_msg=cls)
  meta = json.loads((jpeg.out_dir / synthetic.MARKER).read_text())
  assert meta["jpeg_quality"] == 60 and "fingerprint" not in meta
  assert meta["psnr_db"] == json.loads((plain.out_dir / synthetic.MARKER).read_text())["psnr_db"]  # the generators'


BAD = [
  ({"fingerprint": 0.0}, "fingerprint"),
  ({"fingerprint": -1.0}, "fingerprint"),
  ({"fingerprint": float("nan")}, "fingerprint"),
  ({"jpeg_quality": 101}, "jpeg_quality"),
  ({"jpeg_quality": -5}, "jpeg_quality"),
  ({"lowpass": -1.0}, "lowpass"),
]


@pytest.mark.parametrize("options,needle", BAD + [({"jpeg_quality": 50.5}, "jpeg_quality")])
def test_bad_values_are_one_line_user_errors(tmp_path, options, needle):
  with pytest.raises(UserError) as e:
    _generate_options(tmp_path / "bad", **options)
  assert "\n" not in str(e.value) and needle in str(e.value) and f"--config.data.synthetic.{needle}" in str(e.value)
  assert not (tmp_path / "bad").exists()  # refused before anything is written


@pytest.mark.parametrize("options,needle", BAD)  # a fractional quality cannot even be set in the (typed) config
def test_bad_config_values_are_user_errors_before_any_work(tmp_path, options, needle):
  c = defaults.base_config()
  c.data.data_dir = str(tmp_path / "data")
  c.data.synthetic.update(options)
  with pytest.raises(UserError, match=needle):
    loading.source_dir(c, progress=False)


def test_the_cache_tells_settings_apart(tmp_path):
  c = defaults.shrink_tiny(defaults.base_config())
  c.data.data_dir = str(tmp_path / "data")
  c.data.synthetic.num_per_class, c.data.synthetic.image_size = 4, 16
  dirs = {}
  for fp, q in ((1.0, 0), (0.5, 0), (1.0, 70), (0.5, 70)):
    c.data.synthetic.fingerprint, c.data.synthetic.jpeg_quality = fp, q
    dirs[fp, q] = loading.source_dir(c, progress=False)
  assert len(set(dirs.values())) == 4 and dirs[1.0, 0].name == "n4-s16-seed0"  # the default keeps its old name
  reals = {k: _bytes(d, "A_real") for k, d in dirs.items()}
  assert reals[1.0, 0] == reals[0.5, 0] and reals[1.0, 70] == reals[0.5, 70] != reals[1.0, 0]
  fakes = {k: _bytes(d, "B_nearest") for k, d in dirs.items()}
  assert len({tuple(v) for v in fakes.values()}) == 4  # each setting generated its own fakes
  stale = _generate_options(dirs[0.5, 70], num_per_class=4, image_size=16, fingerprint=0.5, jpeg_quality=70)
  assert stale.reused
  with pytest.raises(UserError, match="jpeg_quality=70 \\(asked 71\\)"):  # never reused for another setting
    _generate_options(dirs[0.5, 70], num_per_class=4, image_size=16, fingerprint=0.5, jpeg_quality=71)


def test_standins_carry_the_options(tmp_path):
  spec = importlib.util.spec_from_file_location(
    "ffhq_log2", pathlib.Path(__file__).resolve().parents[2] / "configs" / "ffhq_log2.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("tiny")
  c.data.data_dir = str(tmp_path / "data")
  c.data.synthetic.num_per_class, c.data.synthetic.image_size = 3, 16
  plain_dir = loading.source_dir(c, progress=False)
  c.data.synthetic.jpeg_quality = 70
  jpeg_dir = loading.source_dir(c, progress=False)
  assert plain_dir != jpeg_dir and jpeg_dir.name.endswith("-jpeg70")
  for folder in ("0_ffhq", "1_stylegan"):
    before, got = _load_options(plain_dir, folder), _load_options(jpeg_dir, folder)
    np.testing.assert_array_equal(got, np.stack([_pillow_jpeg(im, 70) for im in before]), err_msg=folder)


def _hard():
  spec = importlib.util.spec_from_file_location(
    "hard", pathlib.Path(__file__).resolve().parents[2] / "configs" / "hard.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_hard_config_loads_and_its_tiny_form_trains(tmp_path):
  from freqforensics import train

  module = _hard()
  full, tiny = module.get_config(), module.get_config("tiny")
  for c in (full, tiny):
    s = c.data.synthetic
    assert 0 < s.fingerprint < 1 and 1 <= s.jpeg_quality <= 100 and c.data.source == "synthetic"
  assert (full.data.synthetic.num_per_class, full.data.image_size) == (1000, 64)
  tiny.data.data_dir, tiny.progress = str(tmp_path / "data"), False
  metrics = train.train_and_evaluate(tiny, tmp_path / "wd")
  assert metrics["accuracy"] > 0.4  # chance is 0.25; measured 0.71 (real and nearest all right)
  assert json.loads((tmp_path / "wd" / "test_metrics.json").read_text())["accuracy"] == metrics["accuracy"]
  src = loading.source_dir(tiny, progress=False)
  meta = json.loads((src / synthetic.MARKER).read_text())
  assert (meta["fingerprint"], meta["jpeg_quality"]) == (
    tiny.data.synthetic.fingerprint,
    tiny.data.synthetic.jpeg_quality,
  )


def test_a_second_writer_waits_for_the_folder_then_the_data_is_whole(bench, tmp_path):
  """Parallel runs that fill one fresh data cache (a sweep): a process that finds the folder locked waits,
  writing nothing, and once the lock is free ends with the same files as a run alone, no lock file left."""
  out = tmp_path / "shared"
  out.mkdir()
  holder = locks.DirLock(out, synthetic.LOCK).acquire("--out_dir")  # the first writer, still at work
  code = (
    "import sys; from freqforensics.generators import synthetic;"
    f" r = synthetic.generate(sys.argv[1], num_per_class={N}, image_size={SIZE}, seed=0, progress=False);"
    " print('reused' if r.reused else 'written')"
  )
  env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2]), JAX_PLATFORMS="cpu")
  child = subprocess.Popen(
    [sys.executable, "-c", code, str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  try:
    said = child.stderr.readline()  # '' if it ends without waiting
    assert said.startswith(f"waiting for {out}: in use by process {os.getpid()}"), said
    assert child.poll() is None and sorted(p.name for p in out.iterdir()) == [synthetic.LOCK]  # nothing written
  finally:
    holder.release()
  stdout, stderr = child.communicate(timeout=300)
  assert child.returncode == 0 and stdout.strip() == "written", stderr
  assert _files(out) == _files(bench.out_dir)  # the whole data set, and no lock file beside it
