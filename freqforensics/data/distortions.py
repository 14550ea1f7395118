"""Image perturbations that really happen to images: JPEG re-saves, blur, sensor noise, crops.

The paper's robustness experiment (SPEC.md section 3) with the release's defects fixed; the kinds and
their defaults are tabled in docs/robustness.md. Each perturbation maps one uint8 image `(H, W, C)`
(C = 1 or 3) to a new one of the same shape, on the host. `Perturbation` is the configured form
(`config.augment`, `config.eval.perturb`, the perturb command): a kind, a probability and the ranges
strengths are drawn from, the same result for the same `numpy.random.Generator` state.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.ndimage
from PIL import Image

from freqforensics.errors import UserError

SINGLE: tuple[str, ...] = ("jpeg", "blur", "noise", "crop")
# `blur_jpeg`: blur and JPEG, each with the probability on its own (CNNDetection's training augmentation).
KINDS: tuple[str, ...] = ("none",) + SINGLE + ("combined", "all", "blur_jpeg")
# `all` applies every perturbation in this order: geometry first, JPEG last (what a re-upload does),
# so an `all` image written as JPEG is exactly the decoded file.
CHAIN: tuple[str, ...] = ("crop", "blur", "noise", "jpeg")


def _check_image(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"expected a uint8 image (H, W, 1 or 3), got {image.dtype} {image.shape}")
  return image


def _to_pil(image: np.ndarray) -> Image.Image:
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _from_pil(pil: Image.Image, channels: int) -> np.ndarray:
  return np.asarray(pil, np.uint8).reshape(pil.height, pil.width, channels)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
  """The JPEG file Pillow writes for `image` at `quality` (1..100)."""
  image = _check_image(image)
  if not 1 <= int(quality) <= 100:
    raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
  buf = io.BytesIO()
  _to_pil(image).save(buf, format="JPEG", quality=int(quality))
  return buf.getvalue()


def decode(data: bytes, channels: int) -> np.ndarray:
  """Decodes an encoded image (as `encode_jpeg` wrote it) to uint8 `(H, W, channels)`."""
  with Image.open(io.BytesIO(data)) as pil:
    return _from_pil(pil.convert("RGB" if channels == 3 else "L"), channels)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
  """`image` after a JPEG encode and decode at exactly `quality`."""
  return decode(encode_jpeg(image, quality), image.shape[-1])


def opencv_sigma(kernel_size: int) -> float:
  """The sigma OpenCV's `GaussianBlur` uses for a kernel size when sigma is 0 (0.8 for 3 ... 1.7 for 9)."""
  return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


def gaussian_kernel(sigma: float, kernel_size: int) -> np.ndarray:
  """The normalised 1-D Gaussian of `kernel_size` (odd) taps."""
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"the blur kernel size must be odd and positive, got {kernel_size}")
  x = np.arange(kernel_size) - (kernel_size - 1) / 2
  w = np.exp(-0.5 * (x / sigma) ** 2)
  return w / w.sum()


def gaussian_blur(image: np.ndarray, sigma: float, kernel_size: int) -> np.ndarray:
  """A separable Gaussian blur (rows, then columns, each channel on its own); sigma 0 = identity."""
  image = _check_image(image)
  if sigma < 0:
    raise ValueError(f"the blur sigma must be >= 0, got {sigma}")
  if sigma == 0 or kernel_size == 1:
    return image.copy()
  w = gaussian_kernel(sigma, kernel_size)
  x = image.astype(np.float64)
  for axis in (0, 1):  # 'mirror' is d c b | a b c d | c b a: OpenCV's BORDER_REFLECT_101
    x = scipy.ndimage.correlate1d(x, w, axis=axis, mode="mirror")
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
  """`image` plus N(0, std^2) noise per pixel and channel (pixel units), rounded and clipped to 0..255."""
  image = _check_image(image)
  noisy = image.astype(np.float64) + rng.normal(0.0, std, image.shape)
  return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def crop_resize(image: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
  """Removes `fraction` of the height and of the width (a random window), then resizes back (bicubic).

  The output has the input's (H, W) for square and non-square images alike.
  """
  image = _check_image(image)
  if not 0 <= fraction < 1:
    raise ValueError(f"the crop fraction must be in [0, 1), got {fraction}")
  h, w = image.shape[:2]
  ch, cw = max(1, h - round(fraction * h)), max(1, w - round(fraction * w))
  top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
  if (ch, cw) == (h, w):
    return image.copy()
  pil = _to_pil(image).crop((left, top, left + cw, top + ch))
  return _from_pil(pil.resize((w, h), Image.Resampling.BICUBIC), image.shape[-1])  # PIL sizes are (width, height)


# --- The configured form ----------------------------------------------------------------------------


def _floats(value: Any) -> tuple[float, ...]:
  return tuple(float(v) for v in np.atleast_1d(np.asarray(value, np.float64)))


def _check_range(name: str, values: tuple[float, ...], ok, what: str, *, allow_empty: bool = False) -> None:
  """One value, or a (low, high) range with low <= high, of valid values; `UserError` naming the field."""
  sizes = (0, 1, 2) if allow_empty else (1, 2)
  if len(values) not in sizes or not all(ok(v) for v in values) or (len(values) == 2 and values[0] > values[1]):
    raise UserError(f"perturbation {name}={values} is not valid: give one value or a (low, high) range of {what}")


@dataclasses.dataclass(frozen=True)
class Perturbation:
  """A kind, the probability of perturbing an image, and the ranges strengths are drawn from.

  Ranges: one value is fixed, two values `(lo, hi)` are drawn uniformly (JPEG quality: the integers
  lo..hi). `blur_kernel` lists kernel sizes drawn with equal chance; `blur_sigma` empty means
  OpenCV's sigma for the kernel size. Defaults are the paper's (noise std U[5, 20], kernel 3/5/7/9,
  quality U[10, 75), crop 5-20% of each side, probability 0.5).
  """

  kind: str = "none"
  probability: float = 0.5
  jpeg_quality: tuple[float, ...] = (10, 74)
  blur_kernel: tuple[float, ...] = (3, 5, 7, 9)
  blur_sigma: tuple[float, ...] = ()
  noise_std: tuple[float, ...] = (5.0, 20.0)
  crop_fraction: tuple[float, ...] = (0.05, 0.20)

  def __post_init__(self):
    if self.kind not in KINDS:
      raise UserError(f"unknown perturbation kind {self.kind!r}: use one of {', '.join(KINDS)}")
    if not 0 <= self.probability <= 1:
      raise UserError(f"perturbation probability {self.probability} is not in [0, 1]")
    for name in ("jpeg_quality", "blur_kernel", "blur_sigma", "noise_std", "crop_fraction"):
      object.__setattr__(self, name, _floats(getattr(self, name)))
    _check_range("jpeg_quality", self.jpeg_quality, lambda v: v == int(v) and 1 <= v <= 100, "integers in 1..100")
    _check_range(
      "blur_sigma",
      self.blur_sigma,
      lambda v: v >= 0,
      "sigmas >= 0 (or () for OpenCV's sigma of the kernel size)",
      allow_empty=True,
    )
    _check_range("noise_std", self.noise_std, lambda v: v >= 0, "standard deviations >= 0")
    _check_range("crop_fraction", self.crop_fraction, lambda v: 0 <= v < 1, "fractions in [0, 1)")
    if not self.blur_kernel or not all(v == int(v) and v >= 1 and v % 2 == 1 for v in self.blur_kernel):
      raise UserError(f"perturbation blur_kernel={self.blur_kernel} is not valid: give a list of odd kernel sizes")

  @classmethod
  def from_config(cls, c, *, name: str = "augment") -> Perturbation:
    """From a config block (`config.augment`, `config.eval.perturb`); errors name `--config.<name>`."""
    try:
      return cls(**{field.name: getattr(c, field.name) for field in dataclasses.fields(cls)})
    except UserError as e:
      raise UserError(f"--config.{name}: {e}") from None

  @property
  def active(self) -> bool:
    return self.kind != "none" and self.probability > 0

  def sample(self, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The perturbations (name and strength) to apply to one image; empty when it stays clean."""
    if not self.active:
      return []
    if self.kind == "blur_jpeg":  # each step drawn on its own, blur before JPEG
      return [self._draw(name, rng) for name in ("blur", "jpeg") if rng.random() < self.probability]
    if rng.random() >= self.probability:
      return []
    if self.kind == "all":
      names = CHAIN
    elif self.kind == "combined":
      names = (SINGLE[int(rng.integers(len(SINGLE)))],)
    else:
      names = (self.kind,)
    return [self._draw(name, rng) for name in names]

  def _draw(self, name: str, rng: np.random.Generator) -> dict[str, Any]:
    def uniform(r: tuple[float, ...]) -> float:
      return r[0] if len(r) == 1 else float(rng.uniform(r[0], r[1]))

    if name == "jpeg":
      q = self.jpeg_quality
      return {"name": "jpeg", "quality": int(q[0]) if len(q) == 1 else int(rng.integers(q[0], q[1], endpoint=True))}
    if name == "blur":
      k = int(self.blur_kernel[int(rng.integers(len(self.blur_kernel)))])
      sigma = uniform(self.blur_sigma) if self.blur_sigma else opencv_sigma(k)
      return {"name": "blur", "kernel_size": k, "sigma": sigma}
    if name == "noise":
      return {"name": "noise", "std": uniform(self.noise_std)}
    return {"name": "crop", "fraction": uniform(self.crop_fraction)}

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One image, perturbed (or not, with probability 1 - p) with draws from `rng`."""
    return apply(image, self.sample(rng), rng)[0]


def apply(
  image: np.ndarray, steps: Sequence[dict[str, Any]], rng: np.random.Generator
) -> tuple[np.ndarray, bytes | None]:
  """Applies sampled `steps` in order; returns the image and, when the last step is JPEG, its file bytes."""
  image = _check_image(image).copy()
  data = None
  for step in steps:
    name, data = step["name"], None
    if name == "jpeg":
      data = encode_jpeg(image, step["quality"])
      image = decode(data, image.shape[-1])
    elif name == "blur":
      image = gaussian_blur(image, step["sigma"], step["kernel_size"])
    elif name == "noise":
      image = gaussian_noise(image, rng, step["std"])
    elif name == "crop":
      image = crop_resize(image, rng, step["fraction"])
    else:
      raise ValueError(f"unknown perturbation step {name!r}")
  return image, data


def blur_kernel_for(sigma: float) -> int:
  """A kernel size that holds +-3 sigma of a Gaussian (odd): for sweeps over sigma."""
  return 2 * math.ceil(3 * sigma) + 1
