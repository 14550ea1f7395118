"""A bundle's model placed on a device mesh: its state and feature statistics replicated once, each
device turning its own slice of a batch into features and logits (`steps.make_logits_fn`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx

from freqforensics import bundle, sharding, steps
from freqforensics.evaluation import batches, outliers
from freqforensics.models import heads


@dataclasses.dataclass(frozen=True)
class PlacedModel:
  """A bundle's model and statistics on `mesh`; `logits` / `probabilities` take batch-sharded uint8 images."""

  mesh: jax.sharding.Mesh
  put: Callable[[dict[str, Any]], dict[str, jax.Array]]  # host batch -> arrays sharded over the mesh
  _state: Any
  _stats: Any
  _logits: Callable[..., jax.Array]
  _probabilities: Callable[..., jax.Array]
  _outliers: Callable[[jax.Array], dict[str, jax.Array]] | None = None

  def outlier_scores(self, images: jax.Array) -> dict[str, jax.Array]:
    """The spectral open-set candidates `{name: (B,)}` (`outliers.spectral_scores`); {} without them."""
    return sharding.settle(self.mesh, self._outliers(images)) if self._outliers is not None else {}

  def logits(self, images: jax.Array) -> jax.Array:
    """Model outputs `(B, outputs)` of images `(B, H, W, C)` (a global array sharded over the mesh)."""
    return sharding.settle(self.mesh, self._logits(self._state, images, self._stats))

  def probabilities(self, images: jax.Array) -> jax.Array:
    """Probability of every label `(B, len(label_names))` (`heads.probabilities` of the logits)."""
    return sharding.settle(self.mesh, self._probabilities(self._state, images, self._stats))

  def outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
    """`logits` `(N, outputs)` and the open-set scores `(N,)` of host uint8 images `(N, H, W, C)`, on the host."""
    n = len(batch)
    images = self.put({"image": batches.padded(batch, n + -n % self.mesh.size)})["image"]  # split over devices
    out = {"logits": self.logits(images), **self.outlier_scores(images)}
    return {k: np.asarray(sharding.gather(v))[:n] for k, v in out.items()}


def place(b: bundle.Bundle, mesh: jax.sharding.Mesh) -> PlacedModel:
  """Puts `b`'s model and statistics on `mesh` (replicated) and compiles nothing yet.

  The logits are `steps.make_logits_fn`'s, the one function training's evaluation uses too.
  """
  graphdef, state = nnx.split(b.model)
  logits = steps.make_logits_fn(graphdef, b.info.features, mesh)
  rep = sharding.replicated(mesh)
  feature_stats = jax.device_put(b.feature_stats, rep) if b.feature_stats is not None else None
  scores = outliers.scores_on(b.outlier_stats, mesh) if b.outlier_stats is not None else None
  return PlacedModel(
    mesh=mesh,
    put=sharding.make_put(mesh),
    _state=jax.device_put(state, rep),
    _stats=feature_stats,
    _logits=logits,
    _probabilities=jax.jit(lambda *args: heads.probabilities(logits(*args))),
    _outliers=scores,
  )
