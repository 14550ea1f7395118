"""The simulated generators of the synthetic data set: the last stage of a GAN generator, in Flax NNX.

Three upsampling modes, each a network with fixed weight seeds (`GENERATOR_SPECS`), on a 2x
downsampled real crop plus weak texture noise (`synthetic.generate` draws both):

  nearest      nearest-neighbour 2x upsampling + 3x3 conv
  bilinear     bilinear 2x upsampling + 3x3 conv
  transposed   stride-2 4x4 transposed conv (checkerboard)

The convs are identity / bilinear-interpolation kernels plus a fixed zero-sum random perturbation
(scaled by `fingerprint`), so image content and colour stay those of the crop while each upsampler
leaves its own fingerprint in the spectrum.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Std of the fixed kernel perturbation (per tap) and of the GAN "texture" noise added before
# upsampling (in [-1, 1] units): strong enough for distinct fingerprints, weak enough to keep content.
# The transposed conv gets less: each of its 4 output phases sums only 4 taps, so a perturbation
# there changes that phase's gain (the checkerboard) and colour, not just the high frequencies.
_KERNEL_EPS = {"nearest": 0.08, "bilinear": 0.08, "transposed": 0.03}
TEXTURE_STD = 0.02
# Generator classes: (upsampling mode, weight seed). The synthetic data's default uses the first three;
# `E_nearest` is another network of B's architecture with other weights (as two GANs of one family), for
# data sets with four generators (the paper's CelebA/LSUN stand-ins, `standins.py`).
GENERATOR_SPECS = {
  "B_nearest": ("nearest", 101),
  "C_bilinear": ("bilinear", 202),
  "D_transposed": ("transposed", 303),
  "E_nearest": ("nearest", 404),
}


def _perturbed(base: np.ndarray, eps: float):
  """Kernel init: `base` plus a random perturbation with zero sum per (in, out) channel pair.

  Zero sum keeps the DC gain, so mean brightness and colour are those of the source crop and the
  classes differ in their spectra, not in a global shift a pixel model could pick up.
  """

  def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    noise = jax.random.normal(key, shape, dtype)
    noise = noise - noise.mean(axis=(0, 1), keepdims=True)
    return (base + eps * noise).astype(dtype)

  return init


_EYE = np.eye(3, dtype=np.float32)
_DELTA = np.zeros((3, 3, 3, 3), np.float32)
_DELTA[1, 1] = _EYE  # 3x3 identity conv.
_TENT = np.array([1, 3, 3, 1], np.float32) / 4  # 2x bilinear interpolation as a 4-tap filter.
_BILINEAR = np.outer(_TENT, _TENT)[:, :, None, None] * _EYE


class Upsampler(nnx.Module):
  """Last stage of a GAN generator on [-1, 1] images: 2x upsampling, then (B, C) a 3x3 conv."""

  def __init__(self, mode: str, *, rngs: nnx.Rngs, fingerprint: float = 1.0):
    self.mode = mode
    eps = fingerprint * _KERNEL_EPS[mode]  # the same perturbation direction, scaled
    # HIGHEST: on GPUs float32 convs default to TF32, which would change the images per device.
    hp = jax.lax.Precision.HIGHEST
    if mode == "transposed":
      self.up = nnx.ConvTranspose(
        3,
        3,
        (4, 4),
        strides=(2, 2),
        padding="VALID",
        use_bias=False,
        kernel_init=_perturbed(_BILINEAR, eps),
        precision=hp,
        rngs=rngs,
      )
    else:
      self.conv = nnx.Conv(
        3, 3, (3, 3), padding="VALID", use_bias=False, kernel_init=_perturbed(_DELTA, eps), precision=hp, rngs=rngs
      )

  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    # Symmetric padding matches the DCT-II's implicit extension: no border artifacts.
    pad = lambda t: jnp.pad(t, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
    if self.mode == "transposed":
      return self.up(pad(x))[:, 3 : 3 + 2 * h, 3 : 3 + 2 * w]  # This offset aligns with bilinear.
    if self.mode == "nearest":
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    else:
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "linear")
    return self.conv(pad(x))


@functools.cache
def generator_fn(name: str, fingerprint: float = 1.0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """jit-compiled uint8 crops (B,S,S,3) + texture noise (B,S/2,S/2,3) -> uint8 fakes."""
  mode, weight_seed = GENERATOR_SPECS[name]
  model = Upsampler(mode, rngs=nnx.Rngs(weight_seed), fingerprint=fingerprint)
  graphdef, state = nnx.split(model)  # Functional form: plain jax.jit, no nnx.jit overhead.

  @jax.jit
  def forward(state, crops, noise):
    x = crops.astype(jnp.float32) / 127.5 - 1.0
    b, s, _, c = x.shape
    low = jax.image.resize(x, (b, s // 2, s // 2, c), "linear", antialias=True)
    y = nnx.merge(graphdef, state)(low + noise)
    return jnp.round(jnp.clip((y + 1.0) * 127.5, 0, 255)).astype(jnp.uint8)

  return lambda crops, noise: np.asarray(forward(state, crops, noise))


def pad_to(a: np.ndarray, n: int) -> np.ndarray:
  """Zero-pads the batch axis to n: the last batch keeps the shape, one compile per generator."""
  return np.concatenate([a, np.zeros((n - len(a),) + a.shape[1:], a.dtype)])
