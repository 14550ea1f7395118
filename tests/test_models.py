"""Linear models: the paper's parameter count, Keras penalty semantics, sigmoid/softmax heads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from freqforensics import models
from freqforensics.models import heads


def _count(model) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name", ["log", "log1", "log2", "log3"])
def test_linear_parameter_count_matches_paper(name):
  assert _count(models.create_model(name, (128, 128, 3), 5)) == 245_765


@pytest.mark.parametrize("name,l1,l2", [("log", 0, 0), ("log1", 0.01, 0), ("log2", 0, 0.01), ("log3", 0.01, 0.01)])
def test_penalties_are_keras_kernel_sums(name, l1, l2):
  model = models.create_model(name, (4, 4, 1), 3, l1=0.01, l2=0.01, seed=3)
  w = np.asarray(model.dense.kernel[...], np.float64)
  want = l1 * np.abs(w).sum() + l2 * (w ** 2).sum()
  assert float(model.penalty()) == pytest.approx(want, rel=1e-5, abs=1e-12)


def test_glorot_uniform_kernel_and_zero_bias():
  model = models.create_model("log2", (16, 16, 3), 5, seed=0)
  w = np.asarray(model.dense.kernel[...])
  limit = np.sqrt(6 / (768 + 5))
  assert np.all(np.abs(w) <= limit) and np.abs(w).max() > 0.9 * limit
  assert np.all(np.asarray(model.dense.bias[...]) == 0)


def test_grayscale_and_binary_shapes():
  assert models.num_outputs(2) == 1 and models.num_outputs(5) == 5
  model = models.create_model("log", (8, 8, 1), models.num_outputs(2))
  assert model(jnp.zeros((3, 8, 8, 1))).shape == (3, 1)


def test_binary_and_multiclass_losses_against_formulas():
  logit = jnp.array([[2.0], [-1.0]])
  labels = jnp.array([1, 0])
  want = [np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))]
  np.testing.assert_allclose(heads.per_example_loss(logit, labels), want, rtol=1e-6)
  np.testing.assert_array_equal(heads.predictions(logit), [1, 0])
  np.testing.assert_allclose(heads.probabilities(logit)[0], [1 - 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(-2))], rtol=1e-6)
  logits = jnp.array([[1.0, 2.0, 0.0]])
  want = -np.log(np.exp(2.0) / np.exp([1.0, 2.0, 0.0]).sum())
  np.testing.assert_allclose(heads.per_example_loss(logits, jnp.array([1])), [want], rtol=1e-6)
