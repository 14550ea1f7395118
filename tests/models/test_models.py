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
  want = l1 * np.abs(w).sum() + l2 * (w**2).sum()
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


def _dense(n_in: int, n_out: int) -> int:
  return n_in * n_out + n_out


def _conv(c_in: int, c_out: int) -> int:
  return 3 * 3 * c_in * c_out + c_out


def _batch(shape: tuple[int, ...], seed: int = 0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


# ----------------------------------------------------------------------------------------------
# Parameter counts.
# ----------------------------------------------------------------------------------------------
def test_paper_parameter_counts():
  assert models.count_params(models.create_model("cnn", (128, 128, 3), 5)) == (169_961, 169_961)
  assert models.count_params(models.create_model("resnet", (128, 128, 3), 5)) == (817_925, 815_365)
  nn_count = _dense(128 * 128 * 3, 128) + _dense(128, 5)
  assert models.count_params(models.create_model("nn", (128, 128, 3), 5)) == (nn_count, nn_count)
  assert models.count_params(models.create_model("log2", (128, 128, 3), 5)) == (245_765, 245_765)


def test_tiny_parameter_counts_from_layer_lists():
  nn_count = _dense(16 * 16 * 3, 16) + _dense(16, 5)
  assert models.count_params(models.create_model("nn", (16, 16, 3), 5, variant="tiny")) == (nn_count, nn_count)
  # cnn at halved widths (2, 4, 8, 16); 16x16 input -> 4x4 after two pools.
  cnn_count = _conv(1, 2) + _conv(2, 4) + _conv(4, 8) + _conv(8, 16) + _dense(4 * 4 * 16, 1)
  assert models.count_params(models.create_model("cnn", (16, 16, 1), 1, variant="tiny")) == (cnn_count, cnn_count)
  # resnet: stem 4, 8 channels, 2 blocks of two convs and two BNs (scale/bias trainable, mean/var not).
  trainable = (
    _conv(3, 4) + _conv(4, 8) + 2 * (2 * _conv(8, 8) + 2 * 2 * 8) + _conv(8, 8) + _dense(8, 16) + _dense(16, 5)
  )
  stats = 2 * 2 * 2 * 8
  got = models.count_params(models.create_model("resnet", (16, 16, 3), 5, variant="tiny"))
  assert got == (trainable + stats, trainable)


# ----------------------------------------------------------------------------------------------
# Shapes, sizes and arguments.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nn", "cnn", "resnet"])
@pytest.mark.parametrize("variant,size", [("tiny", 16), ("paper", 32)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("classes", [1, 5])
def test_forward_shapes(name, variant, size, channels, classes):
  model = models.create_model(name, (size, size, channels), classes, variant=variant)
  x = _batch((2, size, size, channels))
  for train in (False, True):
    logits = model(x, train=train)
    assert logits.shape == (2, classes) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(logits)))


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_non_square_input(name):
  model = models.create_model(name, (16, 24, 3), 5, variant="tiny")
  assert model(_batch((2, 16, 24, 3))).shape == (2, 5)


@pytest.mark.parametrize("variant", ["paper", "tiny"])
def test_resnet_minimum_size(variant):
  # 13 -> 11 -> 9 -> pool 3 -> 3 -> valid conv -> 1 pixel; 12 leaves none.
  model = models.create_model("resnet", (13, 13, 1), 1, variant=variant)
  assert model(_batch((2, 13, 13, 1))).shape == (2, 1)
  with pytest.raises(ValueError, match="at least 13x13"):
    models.create_model("resnet", (12, 40, 1), 1, variant=variant)
  with pytest.raises(ValueError, match="at least 13x13"):
    model(_batch((2, 13, 12, 1)))  # the global pool takes any size at call time, so the call checks too


def test_cnn_minimum_size_and_fixed_input():
  model = models.create_model("cnn", (4, 4, 3), 5)
  assert model(_batch((2, 4, 4, 3))).shape == (2, 5)
  with pytest.raises(ValueError, match="at least 4x4"):
    models.create_model("cnn", (3, 8, 3), 5)
  with pytest.raises(ValueError, match="built for inputs"):
    model(_batch((2, 8, 8, 3)))


def test_unknown_name_or_variant():
  with pytest.raises(ValueError, match="unknown model 'vgg'"):
    models.create_model("vgg", (16, 16, 3), 5)
  for name in ("log", "nn", "cnn", "resnet"):
    with pytest.raises(ValueError, match="variant 'huge'"):
      models.create_model(name, (16, 16, 3), 5, variant="huge")
  assert set(models.MODEL_NAMES) == {"log", "log1", "log2", "log3", "nn", "cnn", "resnet"}
  # Linear models have no tiny variant: the argument does not change them.
  tiny = models.create_model("log", (16, 16, 3), 5, variant="tiny")
  assert models.count_params(tiny) == (16 * 16 * 3 * 5 + 5,) * 2


# ----------------------------------------------------------------------------------------------
# Penalties.
# ----------------------------------------------------------------------------------------------
def test_nn_penalty_is_l2_sum_on_hidden_kernel_only():
  model = models.create_model("nn", (8, 8, 2), 5, l1=0.5, l2=0.03, seed=1)
  w = np.asarray(model.hidden.kernel[...], np.float64)
  assert w.shape == (8 * 8 * 2, 128)
  assert float(model.penalty()) == pytest.approx(0.03 * (w**2).sum(), rel=1e-5)
  assert float(models.create_model("nn", (8, 8, 2), 5, l2=0.0).penalty()) == 0.0


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_conv_models_have_no_penalty(name):
  model = models.create_model(name, (16, 16, 3), 5, l1=0.1, l2=0.1, variant="tiny")
  assert float(model.penalty()) == 0.0


# ----------------------------------------------------------------------------------------------
# Dropout and BatchNorm.
# ----------------------------------------------------------------------------------------------
def test_resnet_dropout_only_in_training():
  model = models.create_model("resnet", (16, 16, 3), 5, variant="tiny")
  x = _batch((4, 16, 16, 3))
  np.testing.assert_array_equal(model(x), model(x))
  # Same RNG state -> same mask: the model is deterministic given its state ...
  twin = nnx.clone(model)
  first = model(x, train=True)
  np.testing.assert_array_equal(first, twin(x, train=True))
  # ... and the advanced dropout stream draws a new mask (BN in training uses batch statistics only,
  # so the running-average update of the first call does not change the second call's output).
  assert not np.allclose(first, model(x, train=True))


def _block0_bn1_input(model, x: jax.Array) -> np.ndarray:
  """The input of the first BatchNorm, rebuilt from the model's layers (none depends on train mode)."""
  h = nnx.relu(model.stem2(nnx.relu(model.stem1(x))))
  h = nnx.max_pool(h, (3, 3), strides=(3, 3), padding="VALID")
  return np.asarray(nnx.relu(model.blocks[0].conv1(h)), np.float64)


def test_batchnorm_running_stats_follow_keras_momentum():
  model = models.create_model("resnet", (16, 16, 3), 5, variant="tiny")
  x = _batch((8, 16, 16, 3), seed=2)
  h = _block0_bn1_input(model, x)
  bn = model.blocks[0].bn1
  np.testing.assert_array_equal(bn.mean[...], 0.0)
  np.testing.assert_array_equal(bn.var[...], 1.0)
  model(x)  # eval mode leaves the statistics alone
  np.testing.assert_array_equal(bn.mean[...], 0.0)
  model(x, train=True)
  m, v = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
  assert np.abs(m).max() > 0.05  # post-ReLU activations: a non-trivial mean to compare against
  np.testing.assert_allclose(bn.mean[...], 0.01 * m, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(bn.var[...], 0.99 * 1.0 + 0.01 * v, rtol=1e-5)
  # Eval normalisation uses the running statistics and Keras' epsilon 1e-3.
  want = (h - np.asarray(bn.mean[...])) / np.sqrt(np.asarray(bn.var[...]) + 1e-3)
  want = want * np.asarray(bn.scale[...]) + np.asarray(bn.bias[...])
  np.testing.assert_allclose(bn(jnp.asarray(h, jnp.float32), use_running_average=True), want, rtol=1e-4, atol=1e-5)


def test_resnet_eval_uses_running_stats_not_the_batch():
  model = models.create_model("resnet", (16, 16, 3), 5, variant="tiny")
  x = _batch((6, 16, 16, 3), seed=3)
  before = np.asarray(model(x[:1]))
  for _ in range(3):
    model(x, train=True)
  alone, in_batch = model(x[:1]), model(x)
  np.testing.assert_allclose(alone[0], in_batch[0], rtol=1e-5, atol=1e-6)
  # Independent of the batch, but it does move with the running statistics the train calls updated.
  assert not np.allclose(alone, before, rtol=1e-3)


def test_jitted_functional_train_step_updates_stats_and_rng():
  model = models.create_model("resnet", (16, 16, 1), 1, variant="tiny")
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x, y = _batch((4, 16, 16, 1), seed=4), jnp.array([0.0, 1.0, 1.0, 0.0])

  @jax.jit
  def step(params, rest):
    m = nnx.merge(graphdef, params, rest)

    def loss_fn(m):
      logits = m(x, train=True)[:, 0]
      return jnp.mean(jnp.logaddexp(0.0, logits) - y * logits) + m.penalty()

    loss, grads = nnx.value_and_grad(loss_fn)(m)
    return loss, grads, nnx.state(m, nnx.Not(nnx.Param))

  loss, grads, new_rest = step(params, rest)
  assert np.isfinite(float(loss))
  assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree.leaves(grads))
  # The jitted step hands back the state it changed: BN running statistics and the dropout stream.
  # (Update a clone: the split state shares its Variables with `model`, and `rest` must stay as it was.)
  trained = nnx.clone(model)
  nnx.update(trained, new_rest)
  assert np.any(np.asarray(trained.blocks[1].bn2.mean[...]) != 0)
  assert int(model.dropout.rngs.count[...]) == 0 and int(trained.dropout.rngs.count[...]) == 1
  loss_same, _, _ = step(params, rest)
  loss_next, _, _ = step(params, new_rest)
  # Same state -> same loss; the advanced stream draws another mask (batch-statistics BN ignores the
  # running averages in training, so only the mask differs).
  assert float(loss_same) == float(loss)
  assert float(loss_next) != float(loss)


# ----------------------------------------------------------------------------------------------
# Initialisation.
# ----------------------------------------------------------------------------------------------
def _conv_kernels(model) -> list[tuple[str, nnx.Conv]]:
  return [("/".join(map(str, path)), m) for path, m in nnx.iter_graph(model) if isinstance(m, nnx.Conv)]


@pytest.mark.parametrize("name,variant", [("cnn", "paper"), ("resnet", "paper"), ("resnet", "tiny")])
def test_conv_kernels_are_glorot_uniform_with_zero_bias(name, variant):
  model = models.create_model(name, (32, 32, 3), 5, variant=variant)
  convs = _conv_kernels(model)
  assert len(convs) == {"cnn": 4, "resnet": 3 + 2 * (10 if variant == "paper" else 2)}[name]
  for path, conv in convs:
    w = np.asarray(conv.kernel[...])
    kh, kw, cin, cout = w.shape
    bound = np.sqrt(6 / (kh * kw * cin + kh * kw * cout))
    assert np.all(np.abs(w) <= bound), path
    # Uniform on [-b, b]: max close to b and std b/sqrt(3), which rules out the normal-based defaults.
    assert np.abs(w).max() > 0.8 * bound, path
    if w.size >= 1000:
      assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05), path
    np.testing.assert_array_equal(conv.bias[...], 0.0)
