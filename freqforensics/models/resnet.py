"""The paper's `resnet` model: a valid-conv stem, residual blocks with BatchNorm, pooled dense head.

Layers (SPEC.md section 4): conv 32@3x3 valid ReLU -> conv 64@3x3 valid ReLU -> maxpool 3 (stride 3) ->
10 residual blocks at 64 channels -> conv 64@3x3 valid ReLU -> global average pool -> dense 256 ReLU ->
dropout 0.5 -> dense(classes). 817,925 parameters at 128x128x3 and 5 classes: 815,365 trainable and
2,560 BatchNorm running means/variances. A block is conv ReLU -> BN -> conv -> BN -> add input -> ReLU,
the paper's order (ReLU before BN). Keras defaults: glorot-uniform kernels, zero biases, BatchNorm
momentum 0.99 / epsilon 1e-3, `MaxPool2D(3)` = window 3, stride 3, valid. No regulariser.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class Widths:
  stem: int  # first conv; the second stem conv and every block have `channels`
  channels: int
  blocks: int
  dense: int


VARIANTS: dict[str, Widths] = {"paper": Widths(32, 64, 10, 256), "tiny": Widths(4, 8, 2, 16)}
# Side n -> n-2 -> n-4 -> (n-4)//3 -> (n-4)//3 - 2 through the valid convs and the pool: 13 keeps 1 pixel.
MIN_SIZE = 13


def _conv(c_in: int, c_out: int, padding: str, rngs: nnx.Rngs) -> nnx.Conv:
  """A Keras-default 3x3 conv: glorot-uniform kernel, zero bias."""
  return nnx.Conv(
    c_in,
    c_out,
    (3, 3),
    padding=padding,
    kernel_init=nnx.initializers.glorot_uniform(),
    bias_init=nnx.initializers.zeros_init(),
    rngs=rngs,
  )


def _bn(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  # Keras momentum/epsilon; two-pass variance as Keras' moments, not E[x^2] - E[x]^2.
  return nnx.BatchNorm(channels, momentum=0.99, epsilon=1e-3, use_fast_variance=False, rngs=rngs)


def _check_size(h: int, w: int) -> None:
  if min(h, w) < MIN_SIZE:
    raise ValueError(
      f"resnet needs inputs of at least {MIN_SIZE}x{MIN_SIZE} pixels (three valid 3x3 convs and"
      f" a 3x3 max pool); got {h}x{w}"
    )


class ResidualBlock(nnx.Module):
  """conv ReLU -> BN -> conv -> BN -> add input -> ReLU, all "same" at one width."""

  def __init__(self, channels: int, rngs: nnx.Rngs):
    self.conv1 = _conv(channels, channels, "SAME", rngs)
    self.bn1 = _bn(channels, rngs)
    self.conv2 = _conv(channels, channels, "SAME", rngs)
    self.bn2 = _bn(channels, rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    # Batch statistics (and running-average updates) in training, running averages otherwise.
    y = self.bn1(nnx.relu(self.conv1(x)), use_running_average=not train)
    y = self.bn2(self.conv2(y), use_running_average=not train)
    return nnx.relu(y + x)


class ResNetClassifier(nnx.Module):
  """The paper's resnet; any input of at least `MIN_SIZE` pixels a side, `classes == 1` gives one logit."""

  def __init__(self, input_shape: tuple[int, int, int], classes: int, *, variant: str = "paper", rngs: nnx.Rngs):
    h, w, c = input_shape
    _check_size(h, w)
    v = VARIANTS[variant]
    self.stem1 = _conv(c, v.stem, "VALID", rngs)
    self.stem2 = _conv(v.stem, v.channels, "VALID", rngs)
    self.blocks = nnx.List([ResidualBlock(v.channels, rngs) for _ in range(v.blocks)])
    self.head_conv = _conv(v.channels, v.channels, "VALID", rngs)
    self.dense = nnx.Linear(
      v.channels,
      v.dense,
      kernel_init=nnx.initializers.glorot_uniform(),
      bias_init=nnx.initializers.zeros_init(),
      rngs=rngs,
    )
    self.dropout = nnx.Dropout(0.5, rngs=rngs)
    self.out = nnx.Linear(
      v.dense,
      classes,
      kernel_init=nnx.initializers.glorot_uniform(),
      bias_init=nnx.initializers.zeros_init(),
      rngs=rngs,
    )

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    # Global pooling makes the head size-independent, so check the size of each call, not only at build.
    _check_size(x.shape[1], x.shape[2])
    x = nnx.relu(self.stem1(x))
    x = nnx.relu(self.stem2(x))
    x = nnx.max_pool(x, (3, 3), strides=(3, 3), padding="VALID")
    for block in self.blocks:
      x = block(x, train=train)
    x = nnx.relu(self.head_conv(x))
    x = jnp.mean(x, axis=(1, 2))
    x = self.dropout(nnx.relu(self.dense(x)), deterministic=not train)
    return self.out(x)

  def penalty(self) -> jax.Array:
    """No regulariser in the paper's resnet."""
    return jnp.zeros((), self.out.kernel.dtype)
