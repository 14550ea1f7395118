"""Training the synthetic data's generator families on CPU (`launch/train_families.py` runs this).

GANs (`families.GanGenerator`, a DCGAN-style discriminator with spectral normalisation and ProGAN's
minibatch standard deviation, two-time-scale Adam, an exponential moving average of the generator)
and autoencoders (`families.Autoencoder`: L1 reconstruction plus a tiny KL term); the recipe and its
measurements are in docs/generator_families.md. Real crops come from `families.TRAIN_REGION`
(`real_pool`); every draw comes from the seed, so a run is deterministic on one machine. `diversity`
gives the mode-collapse figures the cards record.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from freqforensics.generators import families, synthetic

D_WIDTHS = (16, 32, 64, 128)  # discriminator channels at 32, 16, 8, 4 pixels
MBSTD_GROUP = 4  # samples per minibatch-std group (the real and fake halves of a batch never share one)
KL_WEIGHT = 1e-6  # latent-diffusion's KL autoencoders use 1e-6 on a summed KL


@dataclasses.dataclass(frozen=True)
class Options:
  """How one family is trained (recorded in its card)."""

  steps: int
  seed: int = 0
  batch_size: int = 16
  lr_g: float = 2e-4  # GAN generator / autoencoder rate
  lr_d: float = 4e-4  # GAN discriminator rate (TTUR)
  b1: float = 0.0
  b2: float = 0.9
  ema: float = 0.995  # GAN generator weight average (time constant 200 steps)
  log_every: int = 50


def real_pool(
  n: int, seed: int = 0, size: int = families.IMAGE_SIZE, region: str = families.TRAIN_REGION
) -> np.ndarray:
  """`n` real crops (n, size, size, 3) uint8 from `region` of the bundled photos; deterministic for `seed`."""
  return np.stack([synthetic.random_crop(np.random.default_rng([seed, 7, i]), size, region=region) for i in range(n)])


def diversity(images: np.ndarray, max_pairs_of: int = 256) -> dict[str, float]:
  """Mode-collapse figures of uint8 images (N, H, W, C), in 0..255 units.

  `mean_pairwise_distance`: mean over pairs of the first `max_pairs_of` images of the root mean
  square pixel difference; `min_pairwise_distance`: the closest pair (0 = duplicates);
  `per_image_std`: mean over images of the standard deviation of their pixels.
  """
  x = images[:max_pairs_of].reshape(min(len(images), max_pairs_of), -1).astype(np.float64)
  sq = (x * x).sum(1)
  d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0) / x.shape[1]
  iu = np.triu_indices(len(x), 1)
  dist = np.sqrt(d2[iu])
  return {
    "mean_pairwise_distance": float(dist.mean()),
    "min_pairwise_distance": float(dist.min()),
    "per_image_std": float(images.reshape(len(images), -1).astype(np.float64).std(axis=1).mean()),
  }


# --- the GAN discriminator ----------------------------------------------------------------------


class SNConv(nnx.Module):
  """A conv whose kernel is divided by its spectral norm (one power iteration per call, `u` kept)."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: str, *, rngs: nnx.Rngs):
    self.kernel = nnx.Param(families.normal_init()(rngs.params(), (kernel, kernel, cin, cout)))
    self.bias = nnx.Param(jnp.zeros((cout,)))
    self.u = nnx.BatchStat(jax.random.normal(rngs.params(), (cout,)))
    self.stride, self.padding = stride, padding

  def refresh(self) -> None:
    """One power iteration: `u` moves towards the kernel's top right-singular vector."""
    w = self.kernel.value.reshape(-1, self.kernel.value.shape[-1])
    self.u.value = _l2n(w.T @ _l2n(w @ self.u.value))

  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.kernel.value.reshape(-1, self.kernel.value.shape[-1])
    u = jax.lax.stop_gradient(self.u.value)
    v = jax.lax.stop_gradient(_l2n(w @ u))
    sigma = v @ w @ u
    y = jax.lax.conv_general_dilated(
      x,
      self.kernel.value / sigma,
      (self.stride, self.stride),
      self.padding,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=jax.lax.Precision.HIGHEST,
    )
    return y + self.bias.value


def _l2n(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.sum(x * x) + 1e-12)


def minibatch_std(x: jax.Array, group: int = MBSTD_GROUP) -> jax.Array:
  """ProGAN's minibatch standard deviation: one more channel, the std across each group of `group`
  consecutive samples (averaged over features and pixels), so the discriminator sees a batch's variety
  and a generator that collapses to few images is told apart."""
  b, h, w, c = x.shape
  g = min(group, b)
  y = x.reshape(b // g, g, h, w, c)  # consecutive samples: a batch of real then fake images keeps them apart
  std = jnp.repeat(jnp.sqrt(jnp.var(y, axis=1) + 1e-8).mean(axis=(1, 2, 3)), g)[:, None, None, None]
  return jnp.concatenate([x, jnp.broadcast_to(std, (b, h, w, 1))], axis=-1)


class Discriminator(nnx.Module):
  """(B, 64, 64, 3) -> logits (B,): four 4x4 stride-2 convs with leaky ReLU, the minibatch standard
  deviation, a 4x4 valid conv to one logit."""

  def __init__(self, *, rngs: nnx.Rngs):
    w = (3,) + D_WIDTHS
    self.convs = nnx.List([SNConv(w[i], w[i + 1], 4, 2, "SAME", rngs=rngs) for i in range(len(D_WIDTHS))])
    self.out = SNConv(w[-1] + 1, 1, 4, 1, "VALID", rngs=rngs)

  def refresh(self) -> None:
    """One power iteration in every layer (once per discriminator step, as SN-GAN)."""
    for conv in (*self.convs, self.out):
      conv.refresh()

  def __call__(self, x: jax.Array) -> jax.Array:
    for conv in self.convs:
      x = jax.nn.leaky_relu(conv(x), 0.2)
    return self.out(minibatch_std(x)).reshape(-1)


def _adam(lr: float, o: Options) -> optax.GradientTransformation:
  return optax.adam(lr, b1=o.b1, b2=o.b2)


def _to_float(images: np.ndarray) -> np.ndarray:
  return images.astype(np.float32) / 127.5 - 1.0


# --- training loops -----------------------------------------------------------------------------


@functools.cache
def _gan_step(
  name: str, o: Options
) -> tuple[Any, Any, optax.GradientTransformation, optax.GradientTransformation, Callable]:
  """Graphdefs, optimisers and the jitted step (discriminator, then generator, then EMA) of GAN family `name`.

  Cached on the settings the step depends on, so runs that differ in seed or length compile once.
  """
  g_def = nnx.split(families.build(name))[0]
  d_def = nnx.split(Discriminator(rngs=nnx.Rngs(0)), nnx.Param, nnx.BatchStat)[0]
  tx_g, tx_d = _adam(o.lr_g, o), _adam(o.lr_d, o)

  def generate(params, z):
    return nnx.merge(g_def, params)(z)

  def discriminate(params, stats, x):
    return nnx.merge(d_def, params, stats)(x)

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state, real, z_d, z_g):
    g_params, d_params, d_stats, g_opt, d_opt, ema = state
    d = nnx.merge(d_def, d_params, d_stats)
    d.refresh()
    d_stats = nnx.state(d, nnx.BatchStat)

    def d_loss(d_params):
      fake = generate(g_params, z_d)
      logits = discriminate(d_params, d_stats, jnp.concatenate([real, fake]))
      lr, lf = logits[: len(real)], logits[len(real) :]
      return jax.nn.softplus(-lr).mean() + jax.nn.softplus(lf).mean(), (lr, lf)

    (ld, (lr, lf)), grads = jax.value_and_grad(d_loss, has_aux=True)(d_params)
    updates, d_opt = tx_d.update(grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, updates)

    def g_loss(g_params):
      return jax.nn.softplus(-discriminate(d_params, d_stats, generate(g_params, z_g))).mean()

    lg, grads = jax.value_and_grad(g_loss)(g_params)
    updates, g_opt = tx_g.update(grads, g_opt, g_params)
    g_params = optax.apply_updates(g_params, updates)
    ema = jax.tree.map(lambda e, p: o.ema * e + (1 - o.ema) * p, ema, g_params)
    metrics = {"d_loss": ld, "g_loss": lg, "d_real": jax.nn.sigmoid(lr).mean(), "d_fake": jax.nn.sigmoid(lf).mean()}
    return (g_params, d_params, d_stats, g_opt, d_opt, ema), metrics

  return g_def, d_def, tx_g, tx_d, step


def train_gan(
  name: str, pool: np.ndarray, options: Options, report: Callable[[int, dict], None] | None = None
) -> tuple[nnx.Module, dict]:
  """Trains GAN family `name` on `pool` (uint8 real crops); returns the EMA generator and the history."""
  o = options
  if o.batch_size % MBSTD_GROUP:
    raise ValueError(f"batch_size {o.batch_size} must be a multiple of {MBSTD_GROUP} (minibatch-std groups)")
  g_def, _, tx_g, tx_d, step = _gan_step(name, dataclasses.replace(o, steps=0, seed=0, log_every=1))
  g_params = nnx.split(families.build(name, seed=o.seed))[1]
  _, d_params, d_stats = nnx.split(Discriminator(rngs=nnx.Rngs(o.seed + 1)), nnx.Param, nnx.BatchStat)
  state = (g_params, d_params, d_stats, tx_g.init(g_params), tx_d.init(d_params), jax.tree.map(jnp.copy, g_params))
  rng = np.random.default_rng([o.seed, 1])

  def run_step(state, _):
    real = _to_float(pool[rng.integers(len(pool), size=o.batch_size)])
    z_d, z_g = (rng.standard_normal((o.batch_size, families.Z_DIM)).astype(np.float32) for _ in range(2))
    return step(state, real, z_d, z_g)

  history = _loop(o, report, run_step, state)
  return nnx.merge(g_def, history.pop("_state")[5]), history


def train_autoencoder(
  name: str,
  pool: np.ndarray,
  options: Options,
  encoder_from: nnx.Module | None = None,
  report: Callable[[int, dict], None] | None = None,
) -> tuple[nnx.Module, dict]:
  """Trains autoencoder family `name` on `pool`; with `encoder_from` (a trained autoencoder) only the
  decoder learns, on that frozen encoder. Returns the autoencoder and the history.

  Args:
    name: the autoencoder family (`ae_decoder` or `ae_decoder_aa`).
    pool: real training crops, uint8 `(N, 64, 64, 3)` (`real_pool`).
    options: steps, seed, batch size, learning rate and Adam's betas.
    encoder_from: a trained autoencoder whose encoder is copied and frozen; None trains both halves.
    report: called every `options.log_every` steps with (step, latest losses and seconds).
  """
  o = options
  model = families.build(name, seed=o.seed)
  if encoder_from is not None:
    # Copies: the step donates its state, which must not delete the caller's encoder.
    nnx.update(model.encoder, jax.tree.map(jnp.copy, nnx.state(encoder_from.encoder)))
  graphdef, enc, dec = nnx.split(model, nnx.PathContains("encoder"), ...)
  train_encoder = encoder_from is None
  params = (enc, dec) if train_encoder else dec
  tx = _adam(o.lr_g, o)

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state, x, key):
    params, opt, fixed = state

    def loss_fn(params):
      ae = nnx.merge(graphdef, *(params if train_encoder else (fixed, params)))
      mean, logvar = ae.encoder(x)
      z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
      rec = ae.decoder(z)
      l1 = jnp.abs(rec - x).mean()
      kl = 0.5 * jnp.sum(mean**2 + jnp.exp(logvar) - 1.0 - logvar) / len(x)
      return l1 + KL_WEIGHT * kl, {"l1": l1, "kl": kl}

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), opt, fixed), dict(aux, loss=loss)

  rng = np.random.default_rng([o.seed, 2])
  key = jax.random.key(o.seed)
  history = _loop(
    o,
    report,
    lambda s, i: step(s, _to_float(pool[rng.integers(len(pool), size=o.batch_size)]), jax.random.fold_in(key, i)),
    (params, tx.init(params), None if train_encoder else enc),
  )
  params, _, fixed = history.pop("_state")  # the donated state: `enc` itself is gone, `fixed` holds its values
  return nnx.merge(graphdef, *(params if train_encoder else (fixed, params))), history


def _loop(o: Options, report: Callable[[int, dict], None] | None, run_step: Callable, state) -> dict:
  """Runs `o.steps` steps; averages the metrics over each `o.log_every` steps into the history."""
  history: dict = {"step": []}
  sums: dict[str, float] = {}
  count = 0
  start = time.perf_counter()
  for i in range(o.steps):
    state, metrics = run_step(state, i)
    metrics = jax.device_get(metrics)
    for k, v in metrics.items():
      if not np.isfinite(v):
        raise FloatingPointError(f"step {i}: {k} is {v}")
      sums[k] = sums.get(k, 0.0) + float(v)
    count += 1
    if count == o.log_every or i == o.steps - 1:
      history["step"].append(i + 1)
      for k, v in sums.items():
        history.setdefault(k, []).append(round(v / count, 5))
      if report is not None:
        report(i + 1, {k: history[k][-1] for k in sums} | {"seconds": time.perf_counter() - start})
      sums, count = {}, 0
  history["_state"] = state
  return history
