"""Trained generator families (`generators/families.py`, `launch/train_families.py`) and their place in the synthetic data.

Checked: training is deterministic; the committed weights load and give byte-identical images (against
digests recorded when the weights were committed, and a GAN's forward pass re-done here in numpy);
samples are not collapsed (diversity against real crops, computed here with scipy); families chosen by
name write the right folders and metadata; the default synthetic data does not change.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.distance import pdist

from freqforensics import defaults
from freqforensics.data import loading
from freqforensics.errors import UserError
from freqforensics.generators import families, family_training, synthetic

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAMILIES = ("gan_transposed", "gan_nearest", "gan_bilinear", "gan_subpixel", "ae_decoder", "ae_decoder_aa")
# sha256 of the committed weight files, and of families.sample(family, inputs).tobytes() for the inputs of
# `_inputs` (4 images), recorded when the weights were committed. Sampling runs in float64, so these hold
# on any CPU; new weights (launch/train_families.py) must update both tables.
WEIGHTS_SHA256 = {
  "gan_transposed": "80d4ee37496e18c6c3a114e06541eee94e9f574179359fb4490f1e94586627be",
  "gan_nearest": "050ae9fb178c313ec0ef1fecd9ca1f55ae8efa1984e33d86fa1b5db19c8e2a1b",
  "gan_bilinear": "7fbb7c8282b6ea709a9fa0f107918d9cea3cd80161774505958909b1224ec32d",
  "gan_subpixel": "969e7244e32f4f7242597b7c4cb1bc3fd2578525ebfcece51b46d0e3479811ce",
  "ae_decoder": "ef159e890d1d1e801a51521762d46b10c18a6c7fd10492adcc36ce91fc31e9f9",
  "ae_decoder_aa": "576fc3bbbeaef0bc7f5821bc67e00ef44c87197763fbb75c1b8d84d730dec279",
}
SAMPLES_SHA256 = {
  "gan_transposed": "df3ae0798530b048fff04895b9c588d2a98f9a75de1113cd1f5d98ec04975555",
  "gan_nearest": "b28358b6d65b041563a0c2b0f174a4f35c569baa031cda4804fd5ed157fe1f18",
  "gan_bilinear": "29976e01ef5aa3ad8b62343dcd3b4aebc1f803b2f0998182a68e9fb12a9da179",
  "gan_subpixel": "15e002fd5d8745226bfc982f86695840469fda1ef17bc7a0d0085e52e0ecf327",
  "ae_decoder": "1ee10cf560b47a97ddd836b0c10169d6114dcaebf1f14dfacc9ac714658bc657",
  "ae_decoder_aa": "e89d7a2c9643c15451b79880e1856a545e0f1a180bf6693f4fc1c922fe6f602e",
}
# Diversity margin: a family's mean pairwise distance and per-image std, each over its samples, within this
# factor of the same figure over as many real crops (a collapsed GAN has a far smaller pairwise distance).
MARGIN = 1.35
N_DIVERSITY = 96
BATCH = 16


def _inputs(name: str, n: int, stream: int) -> np.ndarray:
  """GAN latents from `np.random.default_rng([0, stream, i])`, or crops of the synthetic data's half for an autoencoder."""
  rngs = [np.random.default_rng([0, stream, i]) for i in range(n)]
  if name.startswith("gan"):
    return np.stack([r.standard_normal(families.Z_DIM) for r in rngs])
  return np.stack([synthetic.random_crop(r, 64, region="right") for r in rngs])


def test_family_names_and_weights_are_committed():
  assert tuple(families.FAMILIES) == FAMILIES
  total = 0
  for name in FAMILIES:
    path = ROOT / "freqforensics" / "generators" / "weights" / f"{name}.npz"
    data = path.read_bytes()
    total += len(data)
    assert hashlib.sha256(data).hexdigest() == WEIGHTS_SHA256[name] == families.weights_sha256(name), name
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["weights_sha256"] == WEIGHTS_SHA256[name] and card["architecture"] == families.architecture(name)
    assert card["steps"] > 0 and card["wall_time_s"] > 0 and len(card["loss_history"]["step"]) > 1
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
      assert all(npz[k].dtype == np.float32 for k in npz.files)
  assert total < 10e6


@pytest.mark.parametrize("name", FAMILIES)
def test_committed_weights_give_byte_identical_images(name):
  # The digests were taken with batch=4; here the 4 images share a zero-padded batch of 16 (the batch size
  # all tests use, so each family compiles once): an image must not depend on its batch.
  images = families.sample(name, _inputs(name, 4, stream=1), batch=BATCH)
  assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
  assert hashlib.sha256(images.tobytes()).hexdigest() == SAMPLES_SHA256[name]


def _conv_same(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
  """'SAME' 2-D cross-correlation (B, H, W, I) x (kh, kw, I, O), zero padding, in float64."""
  kh, kw = k.shape[:2]
  xp = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
  h, w = x.shape[1:3]
  return sum(xp[:, i : i + h, j : j + w] @ k[i, j] for i in range(kh) for j in range(kw)) + b


def _numpy_gan(path: pathlib.Path, z: np.ndarray, mode: str) -> np.ndarray:
  """The GAN generator's forward pass written out in numpy from the npz (layout of families.GanGenerator)."""
  with np.load(path, allow_pickle=False) as npz:
    p = {k: npz[k].astype(np.float64) for k in npz.files}
  norm = lambda t: t / np.sqrt(np.mean(t * t, axis=-1, keepdims=True) + 1e-8)
  act = lambda t: np.where(t > 0, t, 0.2 * t)
  x = (norm(z) @ p["stem/kernel"] + p["stem/bias"]).reshape(len(z), 4, 4, -1)
  x = act(norm(x))
  for i in range(4):
    k, b = p[f"ups/{i}/conv/kernel"], p[f"ups/{i}/conv/bias"]
    if mode == "nearest":
      y = _conv_same(x.repeat(2, axis=1).repeat(2, axis=2), k, b)
    else:  # sub-pixel: channel (dy * 2 + dx) * C + c of the low-res conv goes to pixel (2y + dy, 2x + dx), channel c
      low = _conv_same(x, k, b)
      n, h, w, c4 = low.shape
      y = low.reshape(n, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c4 // 4)
    x = act(norm(y))
  y = np.tanh(_conv_same(x, p["to_rgb/kernel"], p["to_rgb/bias"]))
  return (y + 1.0) * 127.5


@pytest.mark.parametrize("name,mode", [("gan_nearest", "nearest"), ("gan_subpixel", "subpixel")])
def test_gan_sampling_matches_a_numpy_forward_pass(name, mode):
  z = _inputs(name, 3, stream=2)
  want = _numpy_gan(ROOT / "freqforensics" / "generators" / "weights" / f"{name}.npz", z, mode)
  got = families.sample(name, z, batch=BATCH).astype(np.float64)
  assert np.abs(got - np.clip(want, 0, 255)).max() <= 0.5 + 1e-6  # rounding is the only difference


def test_filtered_upsampling_is_zero_insertion_and_the_low_pass():
  taps = families.lowpass_taps()
  assert len(taps) == 12 and np.allclose(taps, taps[::-1]) and np.isclose(taps[0::2].sum(), 1.0)
  x = np.random.default_rng(0).normal(size=16)
  xp = np.pad(x, 3, mode="symmetric")
  zeros = np.zeros(2 * len(xp))
  zeros[0::2] = xp
  # Output j is centred at input coordinate j/2 - 1/4 (half-pixel, as bilinear); the filter's centre is at 5.5.
  want = np.convolve(zeros, taps)[11 : 11 + 32]
  img = np.broadcast_to(x[None, :, None, None], (1, 16, 5, 1)).astype(np.float32)
  got = np.asarray(families.upsample_filtered(img))[0, :, 2, 0]
  np.testing.assert_allclose(got, want, atol=1e-5)


def _rms_diversity(images: np.ndarray) -> tuple[float, float]:
  flat = images.reshape(len(images), -1).astype(np.float64)
  return float(np.mean(pdist(flat) / np.sqrt(flat.shape[1]))), float(np.mean(flat.std(axis=1)))


@pytest.fixture(scope="module")
def real_diversity() -> tuple[float, float]:
  crops = np.stack(
    [synthetic.random_crop(np.random.default_rng([0, 3, i]), 64, region="right") for i in range(N_DIVERSITY)]
  )
  return _rms_diversity(crops)


@pytest.mark.parametrize("name", FAMILIES)
def test_samples_are_not_collapsed(name, real_diversity):
  images = families.sample(name, _inputs(name, N_DIVERSITY, stream=4), batch=BATCH)
  distance, std = _rms_diversity(images)
  real_distance, real_std = real_diversity
  assert 1 / MARGIN < distance / real_distance < MARGIN, (distance, real_distance)
  assert 1 / MARGIN < std / real_std < MARGIN, (std, real_std)
  figures = families.card(name)["diversity"]  # what the launch script reported holds the same margin
  for key in ("mean_pairwise_distance", "per_image_std"):
    assert 1 / MARGIN < figures["samples"][key] / figures["real_crops"][key] < MARGIN, key


def test_tiny_training_runs_are_deterministic(tmp_path):
  pool = family_training.real_pool(8, seed=0)
  options = family_training.Options(steps=3, batch_size=4, log_every=1)
  runs = [family_training.train_gan("gan_subpixel", pool, options) for _ in range(2)]
  (a, history_a), (b, history_b) = runs
  assert history_a == history_b and len(history_a["d_loss"]) == 3
  pa, pb = families.flat_params(a), families.flat_params(b)
  assert all(np.array_equal(pa[k], pb[k]) for k in pa)
  fresh = families.flat_params(families.build("gan_subpixel"))
  assert any(not np.array_equal(pa[k], fresh[k]) for k in pa)  # the steps changed the weights
  sha = [families.write_npz(tmp_path / f"{i}.npz", p) for i, p in enumerate((pa, pb))]
  assert sha[0] == sha[1] == hashlib.sha256((tmp_path / "0.npz").read_bytes()).hexdigest()


def test_the_antialiased_decoder_trains_on_the_frozen_encoder():
  pool = family_training.real_pool(8, seed=1)
  options = family_training.Options(steps=2, batch_size=4, log_every=1, lr_g=1e-3, b1=0.9, b2=0.999)
  base = families.load_model("ae_decoder", families.weights_path("ae_decoder"))  # as the launch script does
  model, history = family_training.train_autoencoder("ae_decoder_aa", pool, options, encoder_from=base)
  got, want, fresh = (families.flat_params(m) for m in (model, base, families.build("ae_decoder_aa")))
  assert all(np.array_equal(got[k], want[k]) for k in got if k.startswith("encoder/"))
  assert all(not np.array_equal(got[k], fresh[k]) for k in got if k.endswith("kernel") and k.startswith("decoder/"))
  assert len(history["l1"]) == 2


def test_photo_regions_are_disjoint_halves():
  photos = synthetic._photos()
  for region in ("left", "right"):
    for photo, half in zip(photos, synthetic._region_photos(region)):
      a, w = np.asarray(photo), photo.size[0]
      cols = slice(0, w // 2) if region == "left" else slice(w - w // 2, w)
      np.testing.assert_array_equal(np.asarray(half), a[:, cols])
  assert all(w // 2 <= w - w // 2 for w in (p.size[0] for p in photos))  # left ends where right starts, or before


def _pngs(folder: pathlib.Path) -> np.ndarray:
  return np.stack([np.asarray(Image.open(f)) for f in sorted(folder.glob("*.png"))])


def test_families_by_name_write_their_folders_and_metadata(tmp_path):
  generators = ("gan_transposed", "D_transposed", "ae_decoder")
  report = synthetic.generate(
    tmp_path / "b", num_per_class=BATCH, image_size=64, generators=generators, progress=False
  )  # BATCH images: the synthetic data samples in batches of that many
  folders = sorted(p.name for p in report.out_dir.iterdir() if p.is_dir())
  assert folders == ["A_real", "B_gan_transposed", "D_ae_decoder", "D_transposed"]
  meta = json.loads((report.out_dir / synthetic.MARKER).read_text())
  assert meta["generators"] == list(generators) and meta["crop_region"] == "right"
  for folder, name, kind in (("B_gan_transposed", "gan_transposed", "gan"), ("D_ae_decoder", "ae_decoder", "ae")):
    sha = hashlib.sha256((ROOT / "freqforensics" / "generators" / "weights" / f"{name}.npz").read_bytes()).hexdigest()
    assert meta["families"][folder] == {"family": name, "kind": kind, "weights": f"{name}.npz", "sha256": sha}
    assert meta["weights_sha256"][folder] == sha
  assert meta["families"]["D_transposed"] == {"family": "D_transposed", "kind": "simulated"}
  assert set(meta["psnr_db"]) == {"D_ae_decoder", "D_transposed"}  # the classes made from a source crop
  # Real crops from the photos' right halves; the GAN's images from latents drawn per (seed, class, image).
  real = np.stack([synthetic.random_crop(np.random.default_rng([0, 0, i]), 64, region="right") for i in range(4)])
  np.testing.assert_array_equal(_pngs(report.out_dir / "A_real")[:4], real)
  z = np.stack([np.random.default_rng([0, 1, i]).standard_normal(families.Z_DIM) for i in range(4)])
  np.testing.assert_array_equal(
    _pngs(report.out_dir / "B_gan_transposed")[:4], families.sample("gan_transposed", z, batch=BATCH)
  )


def test_config_selects_families_and_the_cache_follows_the_weights(tmp_path, monkeypatch):
  c = defaults.base_config()
  c.data.data_dir = str(tmp_path / "data")
  c.data.synthetic.num_per_class = BATCH
  c.data.synthetic.generators = ("gan_nearest,ae_decoder_aa",)  # what --config...generators=a,b gives
  src = loading.source_dir(c, progress=False)
  assert sorted(p.name for p in src.iterdir() if p.is_dir()) == ["A_real", "B_gan_nearest", "C_ae_decoder_aa"]
  assert src.name.startswith(f"n{BATCH}-s64-seed0-g")
  real = families.weights_sha256
  monkeypatch.setattr(
    families, "weights_sha256", lambda name, d=None: "0" * 64 if name == "gan_nearest" else real(name)
  )
  assert synthetic.generators_suffix(("gan_nearest", "ae_decoder_aa")) != src.name[len(f"n{BATCH}-s64-seed0") :]


@pytest.mark.parametrize(
  "generators,image_size,layout,needle",
  [
    (("gan_nearest", "gan_nearset"), 64, "benchmark", "unknown synthetic generators ['gan_nearset']"),
    (("gan_nearest", "gan_nearest"), 64, "benchmark", "name each generator once"),
    (("gan_nearest",), 32, "benchmark", "image_size=64"),
    (("gan_nearest",), 64, "ffhq", "drop --config.data.synthetic.generators"),
  ],
)
def test_bad_family_choices_are_one_line_user_errors(tmp_path, generators, image_size, layout, needle):
  c = defaults.base_config()
  c.data.data_dir = str(tmp_path / "data")
  c.data.synthetic.num_per_class, c.data.synthetic.image_size = 2, image_size
  c.data.synthetic.generators, c.data.synthetic.layout = generators, layout
  with pytest.raises(UserError) as e:
    loading.source_dir(c, progress=False)
  assert needle in str(e.value) and "\n" not in str(e.value)
  assert "--config.data.synthetic" in str(e.value)


# The default synthetic data's real class and metadata, as tests/test_synthetic_options.py pins them (code of main at
# 67b0b86): the trained families must leave the default untouched (its fakes are compared there).
A_REAL_SHA256 = "008e847fb67a4cb752bff8eb082df83670fe64a41604ee3aa5329dcd557f6451"
OLD_PARAMS = {
  "format_version": 1,
  "num_per_class": 6,
  "image_size": 32,
  "seed": 0,
  "classes": ["A_real", "B_nearest", "C_bilinear", "D_transposed"],
  "generators": ["B_nearest", "C_bilinear", "D_transposed"],
}


def test_the_default_synthetic_data_is_unchanged(tmp_path):
  c = defaults.base_config()
  assert tuple(c.data.synthetic.generators) == synthetic.GENERATORS
  c.data.data_dir = str(tmp_path / "data")
  c.data.synthetic.num_per_class, c.data.synthetic.image_size = 6, 32
  src = loading.source_dir(c, progress=False)
  assert src.name == "n6-s32-seed0"
  meta = json.loads((src / synthetic.MARKER).read_text())
  assert {k: v for k, v in meta.items() if k != "psnr_db"} == OLD_PARAMS
  files = sorted((src / "A_real").glob("*.png"))
  assert hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest() == A_REAL_SHA256
