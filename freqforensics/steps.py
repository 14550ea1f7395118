"""Model and optimizer state, and the pure jitted steps that train and evaluate on a device mesh.

The NNX model and optimizer are split once into a graph definition and a state pytree; each step
merges them inside `jax.jit`, so the Python overhead of NNX is paid at trace time only. Features are
computed per device (`sharding.features_fn`); the model runs under automatic sharding over the
('data',) mesh, which all-reduces gradients and BatchNorm statistics across devices and hosts.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from freqforensics import models, sharding
from freqforensics.errors import UserError
from freqforensics.models import heads

log = logging.getLogger(__name__)


def num_devices(config: ml_collections.ConfigDict) -> int:
  """The mesh size: `num_devices`, or (0) the most devices that both global batch sizes divide over."""
  sizes = (config.train.batch_size, config.eval.batch_size)
  count = jax.device_count()
  if config.num_devices:
    if config.num_devices > count or any(b % config.num_devices for b in sizes):
      raise UserError(
        f"num_devices={config.num_devices} does not fit: {count} device(s) exist and"
        f" train.batch_size ({sizes[0]}) and eval.batch_size ({sizes[1]}) must be multiples of it"
      )
    return config.num_devices
  if jax.process_count() > 1:  # every host's devices take part: the batch must split over all of them
    if any(b % count for b in sizes):
      raise UserError(
        f"train.batch_size ({sizes[0]}) and eval.batch_size ({sizes[1]}) must be multiples of the"
        f" {count} devices of this {jax.process_count()}-host run: change them"
      )
    return count
  n = count
  while any(b % n for b in sizes):
    n -= 1
  if n < count:
    log.warning("using %d of %d devices: the batch sizes %s do not split over all", n, count, sizes)
  return n


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.GradientTransformation:
  """Adam with the config's betas and epsilon (Keras: 1e-7); constant or warm-up + cosine rate."""
  t = config.train
  if t.schedule == "constant":
    rate = t.learning_rate
  elif t.schedule == "warmup_cosine":
    total = max(1, t.epochs * steps_per_epoch)
    rate = optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, int(t.warmup_epochs * steps_per_epoch), total)
  else:
    raise UserError(f"unknown train.schedule {t.schedule!r}: use 'constant' or 'warmup_cosine'")
  return optax.adam(rate, b1=t.b1, b2=t.b2, eps=t.eps)


def create_state(
  config: ml_collections.ConfigDict, input_shape: tuple[int, ...], num_labels: int, steps_per_epoch: int = 1
):
  """Initialises model and optimizer; returns (graphdef, state pytree, model)."""
  m = config.model
  try:
    model = models.create_model(
      m.name, input_shape, models.num_outputs(num_labels), l1=m.l1, l2=m.l2, seed=config.seed, variant=m.variant
    )
  except ValueError as e:
    raise UserError(f"model {m.name!r}: {e}") from e
  optimizer = nnx.Optimizer(model, make_optimizer(config, steps_per_epoch), wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))
  return graphdef, state, model


def parameter_overview(model: nnx.Module) -> str:
  """A table of the model's parts (layers, residual blocks): parameter shapes and counts; then totals."""
  groups: dict[str, list[str]] = {}
  counts: dict[str, int] = {}
  trainable = 0
  for path, value in jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]:
    names = [str(getattr(p, "key", p)) for p in path]
    key = "/".join(names[:2] if len(names) > 2 and names[1].isdigit() else names[:-1]) or names[0]
    groups.setdefault(key, []).append(
      f"{names[-1]}{tuple(value.shape)}" if len(names) <= 2 or not names[1].isdigit() else ""
    )
    counts[key] = counts.get(key, 0) + value.size
    trainable += value.size
  total = trainable + sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
  rows = [f"  {k:<24} {' '.join(x for x in groups[k] if x):<44} {counts[k]:>10,}" for k in groups]
  return "\n".join(rows + [f"  {total:,} parameters, {trainable:,} trainable"])


def make_train_step(graphdef, kind: str, mesh: jax.sharding.Mesh):
  """The jitted step `(state, batch, stats) -> (state, sums)`; state is donated, batch sharded."""
  feature_fn = sharding.features_fn(mesh, kind)

  def train_step(state, batch, feature_stats):
    model, optimizer = nnx.merge(graphdef, state)
    x = feature_fn(batch["image"], feature_stats)

    def loss_fn(model):
      logits = model(x, train=True)
      loss = jnp.mean(heads.per_example_loss(logits, batch["label"]))
      return loss + model.penalty(), (loss, logits)

    (_, (loss, logits)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    correct = jnp.sum(heads.predictions(logits) == batch["label"])
    n = batch["label"].shape[0]
    sums = {"loss": loss * n, "correct": correct.astype(jnp.float32), "count": jnp.float32(n)}
    return nnx.state((model, optimizer)), sums

  rep = sharding.replicated(mesh)
  return jax.jit(train_step, donate_argnums=0, out_shardings=(rep, rep))


def make_logits_fn(graphdef, kind: str, mesh: jax.sharding.Mesh):
  """The one jitted logits function: `(state, images, feature_stats) -> logits` in inference mode.

  Training evaluates with it (its `graphdef` and state are of the model and optimizer) and so does a
  bundle placed for evaluation or classification (`evaluation.placement.place`; the model alone):
  features are computed per device, BatchNorm uses its running statistics, dropout is off.
  """
  feature_fn = sharding.features_fn(mesh, kind)

  @jax.jit
  def logits_fn(state, images, feature_stats):
    merged = nnx.merge(graphdef, state)
    model = merged[0] if isinstance(merged, tuple) else merged  # (model, optimizer) in training
    return model(feature_fn(images, feature_stats), train=False)

  return logits_fn
