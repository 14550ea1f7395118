"""A bundle's model placed on a device mesh: one jitted function from uint8 images to outputs.

Evaluation (`eval_run`) and classification (`classify`) both run a bundle the same way: the model
is split once (the jitted function merges it inside the trace, so NNX's Python overhead is paid
once), its state and the feature statistics are replicated over the mesh, and each device turns
its own slice of the batch into features (`sharding.features_fn`) before the model sees it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from freqforensics import bundle, losses, sharding


@dataclasses.dataclass(frozen=True)
class PlacedModel:
  """A bundle's model and statistics on `mesh`; `logits` / `probabilities` take batch-sharded uint8 images."""

  mesh: jax.sharding.Mesh
  put: Callable[[dict[str, Any]], dict[str, jax.Array]]  # host batch -> arrays sharded over the mesh
  _state: Any
  _stats: Any
  _logits: Callable[..., jax.Array]
  _probabilities: Callable[..., jax.Array]

  def logits(self, images: jax.Array) -> jax.Array:
    """Model outputs `(B, outputs)` of images `(B, H, W, C)` (a global array sharded over the mesh)."""
    return sharding.settle(self.mesh, self._logits(self._state, self._stats, images))

  def probabilities(self, images: jax.Array) -> jax.Array:
    """Probability of every label `(B, len(label_names))` (`losses.probabilities` of the logits)."""
    return sharding.settle(self.mesh, self._probabilities(self._state, self._stats, images))


def place(b: bundle.Bundle, mesh: jax.sharding.Mesh) -> PlacedModel:
  """Puts `b`'s model and statistics on `mesh` (replicated) and compiles nothing yet."""
  graphdef, state = nnx.split(b.model)
  feature_fn = sharding.features_fn(mesh, b.info["features"])

  def logits(state, feature_stats, images):
    return nnx.merge(graphdef, state)(feature_fn(images, feature_stats), train=False)

  rep = sharding.replicated(mesh)
  feature_stats = jax.device_put(b.feature_stats, rep) if b.feature_stats is not None else None
  return PlacedModel(mesh=mesh, put=sharding.make_put(mesh), _state=jax.device_put(state, rep),
                     _stats=feature_stats, _logits=jax.jit(logits),
                     _probabilities=jax.jit(lambda *args: losses.probabilities(logits(*args))))
