"""The paper's `cnn` model: a small all-"same" conv net with two average pools and a dense head.

Layers (SPEC.md section 4): conv 3@3x3 ReLU -> conv 8@3x3 ReLU -> avgpool 2 -> conv 16@3x3 ReLU ->
avgpool 2 -> conv 32@3x3 ReLU -> flatten -> dense(classes). 169,961 parameters at 128x128x3 and 5
classes. Keras defaults: glorot-uniform kernels (convs included), zero biases, `AveragePooling2D(2)` =
window 2, stride 2, valid. No regulariser, so `penalty()` is zero. The `tiny` variant halves the widths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

# variant -> conv widths; the two pools sit after the second and third conv.
VARIANTS: dict[str, tuple[int, int, int, int]] = {"paper": (3, 8, 16, 32), "tiny": (2, 4, 8, 16)}
# Two valid 2x2 pools floor-halve the size twice: 4 is the smallest side that keeps one pixel.
MIN_SIZE = 4


def _conv(c_in: int, c_out: int, rngs: nnx.Rngs) -> nnx.Conv:
  """A Keras-default 3x3 "same" conv: glorot-uniform kernel, zero bias."""
  return nnx.Conv(
    c_in,
    c_out,
    (3, 3),
    padding="SAME",
    kernel_init=nnx.initializers.glorot_uniform(),
    bias_init=nnx.initializers.zeros_init(),
    rngs=rngs,
  )


def _pool(x: jax.Array) -> jax.Array:
  return nnx.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class CNNClassifier(nnx.Module):
  """Four "same" convs and two average pools, then a dense head; `classes == 1` gives one logit."""

  def __init__(self, input_shape: tuple[int, int, int], classes: int, *, variant: str = "paper", rngs: nnx.Rngs):
    h, w, c = input_shape
    if min(h, w) < MIN_SIZE:
      raise ValueError(f"cnn needs inputs of at least {MIN_SIZE}x{MIN_SIZE} pixels (two 2x2 pools); got {h}x{w}")
    widths = VARIANTS[variant]
    self.input_shape = tuple(input_shape)
    self.conv1 = _conv(c, widths[0], rngs)
    self.conv2 = _conv(widths[0], widths[1], rngs)
    self.conv3 = _conv(widths[1], widths[2], rngs)
    self.conv4 = _conv(widths[2], widths[3], rngs)
    # The dense layer sees the flattened map after two floor-halvings, so its size fixes the input size.
    flat = (h // 2 // 2) * (w // 2 // 2) * widths[3]
    self.dense = nnx.Linear(
      flat, classes, kernel_init=nnx.initializers.glorot_uniform(), bias_init=nnx.initializers.zeros_init(), rngs=rngs
    )

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no dropout or normalisation in this model
    if tuple(x.shape[1:]) != self.input_shape:
      # The flatten -> dense head only fits the size the model was built for; say so, not a matmul error.
      raise ValueError(f"cnn was built for inputs {self.input_shape}, got {tuple(x.shape[1:])}")
    x = nnx.relu(self.conv1(x))
    x = _pool(nnx.relu(self.conv2(x)))
    x = _pool(nnx.relu(self.conv3(x)))
    x = nnx.relu(self.conv4(x))
    return self.dense(x.reshape(x.shape[0], -1))

  def penalty(self) -> jax.Array:
    """No regulariser in the paper's cnn."""
    return jnp.zeros((), self.dense.kernel.dtype)
