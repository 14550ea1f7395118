"""Per-example losses and predictions for one-logit (sigmoid) and multi-logit (softmax) heads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def per_example_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Binary cross-entropy on one logit (classes == 1), softmax cross-entropy otherwise."""
  if logits.shape[-1] == 1:
    return optax.sigmoid_binary_cross_entropy(logits[..., 0], labels.astype(logits.dtype))
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def predictions(logits: jax.Array) -> jax.Array:
  """Predicted label index: `logit > 0` for one logit, argmax otherwise."""
  if logits.shape[-1] == 1:
    return (logits[..., 0] > 0).astype(jnp.int32)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def probabilities(logits: jax.Array) -> jax.Array:
  """Probability of every label, `(B, num_labels)`: `[1 - p, p]` for one logit."""
  if logits.shape[-1] == 1:
    p = jax.nn.sigmoid(logits[..., 0])
    return jnp.stack([1 - p, p], axis=-1)
  return jax.nn.softmax(logits, axis=-1)
