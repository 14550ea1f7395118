"""Perturbations: JPEG, blur, noise and crop against Pillow/SciPy/NumPy references; seeding; augmentation."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from freqforensics import defaults, spectral
from freqforensics.data import augment, pipeline
from freqforensics.data import distortions as P
from freqforensics.errors import UserError


def _image(h: int = 32, w: int = 32, c: int = 3, seed: int = 0) -> np.ndarray:
  """Smooth structure plus pixel noise: both low and high frequencies carry energy."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:h, 0:w]
  base = 110 + 60 * np.sin(x / 3.0)[..., None] * np.cos(y / 5.0)[..., None]
  return np.clip(base + rng.normal(0, 25, (h, w, c)), 0, 255).astype(np.uint8)


def _pillow_jpeg(image: np.ndarray, q: int) -> tuple[np.ndarray, int]:
  buf = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="JPEG", quality=q)
  decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
  return decoded.reshape(image.shape), len(buf.getvalue())


@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_is_pillows_encode_decode_at_exactly_that_quality(channels):
  img = _image(24, 40, channels)
  sizes = []
  for q in (95, 75, 50, 25, 10):
    ref, size = _pillow_jpeg(img, q)
    np.testing.assert_array_equal(P.jpeg(img, q), ref)
    # The configured form applies the quality it was given (the release always saved at 95).
    np.testing.assert_array_equal(P.Perturbation("jpeg", 1.0, jpeg_quality=(q,))(img, np.random.default_rng(0)), ref)
    assert len(P.encode_jpeg(img, q)) == size
    sizes.append(size)
  assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes), sizes  # bytes fall with q


def _high_frequency_energy(image: np.ndarray) -> float:
  c = np.asarray(spectral.dct2(image.astype(np.float64)))
  h, w = image.shape[:2]
  k1, k2 = np.mgrid[0:h, 0:w]
  return float(np.sum(c[(k1 + k2) >= (h + w) // 2] ** 2))


def test_blur_sigma_zero_is_identity_and_more_sigma_removes_more_high_frequencies():
  img = _image(32, 32)
  np.testing.assert_array_equal(P.gaussian_blur(img, 0.0, 9), img)
  energies = [_high_frequency_energy(img)]
  for sigma in (0.5, 1.0, 2.0):
    k = P.blur_kernel_for(sigma)
    out = P.gaussian_blur(img, sigma, k)
    # SciPy's Gaussian filter with the same radius and border rule (reflect without the edge pixel).
    r = (k - 1) // 2
    ref = scipy.ndimage.gaussian_filter(
      img.astype(np.float64), sigma=(sigma, sigma, 0), radius=(r, r, 0), mode="mirror"
    )
    assert np.abs(out.astype(np.float64) - ref).max() <= 0.5 + 1e-9
    energies.append(_high_frequency_energy(out))
  assert energies == sorted(energies, reverse=True) and energies[-1] < 0.05 * energies[0], energies


def test_blur_sigma_follows_the_kernel_or_the_configured_value():
  rng = np.random.default_rng(0)
  auto = {
    (s["kernel_size"], round(s["sigma"], 6)) for s in (P.Perturbation("blur", 1.0).sample(rng)[0] for _ in range(200))
  }
  assert auto == {(3, 0.8), (5, 1.1), (7, 1.4), (9, 1.7)}  # OpenCV's sigma for kernel sizes 3/5/7/9
  fixed = P.Perturbation("blur", 1.0, blur_kernel=(7,), blur_sigma=(2.5,)).sample(rng)[0]
  assert fixed == {"name": "blur", "kernel_size": 7, "sigma": 2.5}  # not the release's constant 4


@pytest.mark.parametrize("std", [5.0, 20.0])
def test_noise_has_the_requested_standard_deviation(std):
  gray = np.full((64, 64, 3), 128, np.uint8)  # far from 0 and 255: nothing is clipped
  diff = P.gaussian_noise(gray, np.random.default_rng(1), std).astype(np.float64) - 128
  expected = math.sqrt(std**2 + 1 / 12)  # rounding to integers adds uniform(-0.5, 0.5) noise
  assert diff.std() == pytest.approx(expected, rel=0.03)
  assert abs(diff.mean()) < 4 * std / math.sqrt(diff.size)


@pytest.mark.parametrize("shape", [(32, 32, 3), (16, 40, 3), (40, 16, 1)])
def test_crop_keeps_the_shape_for_square_and_non_square_images(shape):
  h, w, c = shape
  ramp = np.broadcast_to((np.arange(w) * (255 // (w - 1)))[None, :, None], shape).astype(np.uint8)
  for fraction in (0.05, 0.2):
    out = P.crop_resize(ramp, np.random.default_rng(3), fraction)
    assert out.shape == shape
    # Still a left-to-right ramp: the crop was resized back to (H, W), not transposed.
    assert np.all(np.diff(out[h // 2, :, 0].astype(int)) >= -1) and out[0, -1, 0] > out[0, 0, 0] + 100
    assert np.abs(out.astype(int) - out[:1].astype(int)).max() <= 1  # rows agree
  np.testing.assert_array_equal(P.crop_resize(ramp, np.random.default_rng(0), 0.0), ramp)


@pytest.mark.parametrize("kind", ["jpeg", "blur", "noise", "crop", "combined", "all", "blur_jpeg"])
def test_same_seed_same_image_another_seed_another_image(kind):
  img = _image(24, 24)
  p = P.Perturbation(kind, 1.0)
  a, b = p(img, np.random.default_rng(7)), p(img, np.random.default_rng(7))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, img)
  others = [p(img, np.random.default_rng(s)) for s in (8, 9, 10)]
  assert not all(np.array_equal(a, o) for o in others)


def test_combined_picks_one_of_four_and_all_applies_each_in_turn():
  rng = np.random.default_rng(0)
  picks = [P.Perturbation("combined", 1.0).sample(rng) for _ in range(800)]
  assert all(len(s) == 1 for s in picks)
  counts = {k: sum(s[0]["name"] == k for s in picks) for k in P.SINGLE}
  assert all(150 < n < 250 for n in counts.values()), counts
  assert [s["name"] for s in P.Perturbation("all", 1.0).sample(rng)] == ["crop", "blur", "noise", "jpeg"]
  noise = P.Perturbation("noise", 1.0).sample(rng)[0]["std"]
  assert 5.0 <= noise <= 20.0
  qualities = {P.Perturbation("jpeg", 1.0).sample(rng)[0]["quality"] for _ in range(2000)}
  assert qualities == set(range(10, 75))  # U[10, 75) as in the paper


def test_blur_jpeg_draws_each_step_on_its_own_as_cnndetection():
  rng = np.random.default_rng(0)
  p = P.Perturbation("blur_jpeg", 0.5, blur_kernel=(19,), blur_sigma=(0.0, 3.0), jpeg_quality=(30, 100))
  draws = [tuple(s["name"] for s in p.sample(rng)) for _ in range(4000)]
  share = {k: sum(d == k for d in draws) / 4000 for k in ((), ("blur",), ("jpeg",), ("blur", "jpeg"))}
  assert all(abs(v - 0.25) < 0.03 for v in share.values()), share  # independent halves: a quarter each
  steps = [s for _ in range(500) for s in p.sample(rng)]
  assert all(0 <= s["sigma"] <= 3 and s["kernel_size"] == 19 for s in steps if s["name"] == "blur")
  assert {s["quality"] for s in steps if s["name"] == "jpeg"} <= set(range(30, 101))


def test_bad_perturbation_settings_name_the_option():
  c = defaults.perturbation_config()
  assert P.Perturbation.from_config(c) == P.Perturbation()
  for field, value, message in (
    ("kind", "jpg", "unknown perturbation kind 'jpg'"),
    ("probability", 1.5, "probability 1.5"),
    ("jpeg_quality", (0, 50), "jpeg_quality"),
    ("blur_kernel", (4,), "blur_kernel"),
    ("noise_std", (20.0, 5.0), "noise_std"),
    ("crop_fraction", (1.2,), "crop_fraction"),
  ):
    bad = defaults.perturbation_config()
    bad[field] = value
    with pytest.raises(UserError, match=r"--config\.augment: .*" + message.replace("(", r"\(")):
      P.Perturbation.from_config(bad)


class _Source:
  """In-memory source whose label is the example's index (to find the original of a batch row)."""

  def __init__(self, n: int, size: int = 8):
    self.images = np.random.default_rng(5).integers(0, 256, (n, size, size, 3), dtype=np.uint8)

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": np.int64(i)}

  def read_batch(self, indices):
    indices = np.asarray(indices)
    return {"image": self.images[indices], "label": indices.astype(np.int32)}


def _epoch(source, perturbation, epoch, start_step=0):
  src = augment.augmented(source, perturbation, seed=3, epoch=epoch)
  return list(pipeline.train_batches(src, 20, seed=3, epoch=epoch, start_step=start_step, num_threads=2))


def test_augmentation_perturbs_about_the_requested_fraction_and_resumes_exactly():
  source = _Source(600)
  for probability in (0.3, 0.8):
    batches = _epoch(source, P.Perturbation("combined", probability), epoch=1)
    changed = [not np.array_equal(img, source.images[i]) for b in batches for img, i in zip(b["image"], b["label"])]
    assert len(changed) == 600 and abs(np.mean(changed) - probability) < 0.07, np.mean(changed)
  p = P.Perturbation("all", 0.5)
  full, resumed = _epoch(source, p, epoch=2), _epoch(source, p, epoch=2, start_step=11)
  assert len(resumed) == len(full) - 11
  for a, b in zip(full[11:], resumed):  # a resumed epoch reads the same perturbed images
    np.testing.assert_array_equal(a["image"], b["image"])
  again = _epoch(source, p, epoch=3)
  assert not all(np.array_equal(a["image"], b["image"]) for a, b in zip(full, again))  # a new draw per epoch
  assert augment.augmented(source, P.Perturbation("none"), seed=0, epoch=1) is source
