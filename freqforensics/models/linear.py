"""The paper's linear models: flatten -> dense(classes), with Keras-style kernel penalties.

`log` has no penalty, `log1` an L1 penalty, `log2` an L2 penalty (the paper's "ridge regression"),
`log3` both. As in Keras, penalties act on the kernel only and are sums, not means:
`l1 * sum(|w|) + l2 * sum(w**2)`, added to the mean cross-entropy of a batch. The kernel is
glorot-uniform initialised, the bias zero (Keras defaults, SPEC.md section 4).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

# name -> (l1, l2) factors in units of the config's `l1` / `l2` values.
PENALTIES: dict[str, tuple[bool, bool]] = {
  "log": (False, False),
  "log1": (True, False),
  "log2": (False, True),
  "log3": (True, True),
}


class LinearClassifier(nnx.Module):
  """Logistic regression on flattened input; `classes == 1` gives one logit (sigmoid)."""

  def __init__(self, input_shape: tuple[int, ...], classes: int, *, l1: float = 0.0, l2: float = 0.0, rngs: nnx.Rngs):
    self.dense = nnx.Linear(
      math.prod(input_shape),
      classes,
      kernel_init=nnx.initializers.glorot_uniform(),
      bias_init=nnx.initializers.zeros_init(),
      rngs=rngs,
    )
    self.l1 = l1
    self.l2 = l2

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no dropout or normalisation in a linear model
    return self.dense(x.reshape(x.shape[0], -1))

  def penalty(self) -> jax.Array:
    """Keras kernel regularisation: `l1 * sum(|w|) + l2 * sum(w**2)`."""
    w = self.dense.kernel[...]
    total = jnp.zeros((), w.dtype)
    if self.l1:
      total += self.l1 * jnp.sum(jnp.abs(w))
    if self.l2:
      total += self.l2 * jnp.sum(w * w)
    return total


def create(
  name: str, input_shape: tuple[int, ...], classes: int, *, l1: float, l2: float, rngs: nnx.Rngs
) -> LinearClassifier:
  """Builds `log`, `log1`, `log2` or `log3` with the config's penalty factors.

  Args:
    name: `log` (no penalty), `log1` (L1), `log2` (L2) or `log3` (both).
    input_shape: one example's feature shape.
    classes: the number of classes; 1 for one sigmoid output.
    l1: the L1 factor, used when the name has it.
    l2: the L2 factor, used when the name has it.
    rngs: the initialisation's random streams.
  """
  use_l1, use_l2 = PENALTIES[name]
  return LinearClassifier(input_shape, classes, l1=l1 if use_l1 else 0.0, l2=l2 if use_l2 else 0.0, rngs=rngs)
