"""The paper's `nn` model: flatten -> dense 128 ReLU -> dense(classes), L2 on the hidden kernel.

As in Keras, the penalty is a sum, not a mean (`l2 * sum(w**2)`), and acts on the hidden layer's kernel
only (SPEC.md section 4); the output layer is unregularised. Kernels are glorot-uniform, biases zero.
The `tiny` variant keeps the layer list with 16 hidden units, for fast tests.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

# variant -> hidden units.
VARIANTS: dict[str, int] = {"paper": 128, "tiny": 16}


def _dense(n_in: int, n_out: int, rngs: nnx.Rngs) -> nnx.Linear:
  """A Keras-default dense layer: glorot-uniform kernel, zero bias."""
  return nnx.Linear(
    n_in, n_out, kernel_init=nnx.initializers.glorot_uniform(), bias_init=nnx.initializers.zeros_init(), rngs=rngs
  )


class MLPClassifier(nnx.Module):
  """One hidden ReLU layer on flattened input; `classes == 1` gives one logit (sigmoid)."""

  def __init__(
    self, input_shape: tuple[int, int, int], classes: int, *, l2: float = 0.0, variant: str = "paper", rngs: nnx.Rngs
  ):
    if variant not in VARIANTS:
      raise ValueError(f"unknown variant {variant!r} for nn; expected one of {tuple(VARIANTS)}")
    hidden = VARIANTS[variant]
    self.hidden = _dense(math.prod(input_shape), hidden, rngs)
    self.out = _dense(hidden, classes, rngs)
    self.l2 = l2

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no dropout or normalisation in this model
    return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))

  def penalty(self) -> jax.Array:
    """Keras L2 kernel regulariser on the hidden layer: `l2 * sum(w**2)`."""
    w = self.hidden.kernel[...]
    return self.l2 * jnp.sum(w * w)
