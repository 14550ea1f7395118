"""Trained generator families of the synthetic data set: architectures, committed weights, sampling.

Six networks whose weights were learned (`family_training`) and that differ in their upsampling
layer only: four DCGAN-style GANs and two latent-diffusion-style autoencoders (docs/generator_families.md).
Weights live in `generators/weights/<family>.npz` beside a JSON training card; a card of another
architecture is refused, and the weights' sha256 names them in the synthetic data's metadata. Sampling runs
in float64 at `precision=HIGHEST`, so a seed gives byte-identical images on any CPU or accelerator.
Generator training crops `TRAIN_REGION` of the photos, the synthetic data `BENCH_REGION`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from freqforensics.errors import UserError

IMAGE_SIZE = 64  # the side every family generates (the synthetic data's default `image_size`)
Z_DIM = 64  # GAN latent size
GAN_WIDTHS = (128, 64, 32, 16, 8)  # GAN channels at 4, 8, 16, 32, 64 pixels
AE_ENCODER_WIDTHS = (16, 32, 64)  # channels at 64, 32, 16 pixels
AE_DECODER_WIDTHS = (64, 32, 16)  # channels at 16, 32, 64 pixels
AE_LATENT = 4  # latent channels at 16x16 (4x downsampling, as latent-diffusion's f4 autoencoders)
AE_GROUPS = 8  # GroupNorm groups
FILTER_TAPS = 12  # filtered upsampling: taps of the low-pass (6 per output phase, as StyleGAN3 at 2x)
FILTER_BETA = 6.0  # its Kaiser window's beta
TRAIN_REGION = "left"  # the half of every photo that generator training crops from
BENCH_REGION = "right"  # the half that a synthetic data set with trained families crops from
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_HP = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class Family:
  """A trained generator family: `kind` gan (images from noise) or ae (reconstructions of crops)."""

  name: str
  kind: str
  upsample: str
  description: str


FAMILIES: dict[str, Family] = {
  f.name: f
  for f in (
    Family("gan_transposed", "gan", "transposed", "DCGAN-style GAN, 4x4 stride-2 transposed-conv upsampling"),
    Family("gan_nearest", "gan", "nearest", "DCGAN-style GAN, nearest 2x + 3x3 conv upsampling"),
    Family("gan_bilinear", "gan", "bilinear", "DCGAN-style GAN, bilinear 2x + 3x3 conv upsampling"),
    Family("gan_subpixel", "gan", "subpixel", "DCGAN-style GAN, sub-pixel conv (pixel shuffle) upsampling"),
    Family("ae_decoder", "ae", "nearest", "latent-diffusion-style autoencoder, decoder nearest 2x + 3x3 conv"),
    Family("ae_decoder_aa", "ae", "filtered", "the same autoencoder, decoder with filtered (anti-aliased) upsampling"),
  )
}


def architecture(name: str) -> dict:
  """The architecture of family `name` as its card records it (what the code below builds)."""
  f = family(name)
  arch = {"kind": f.kind, "upsample": f.upsample, "image_size": IMAGE_SIZE}
  if f.kind == "gan":
    arch.update(z_dim=Z_DIM, widths=list(GAN_WIDTHS), norm="pixelnorm", activation="leaky_relu_0.2", output="tanh")
  else:
    arch.update(
      encoder_widths=list(AE_ENCODER_WIDTHS),
      decoder_widths=list(AE_DECODER_WIDTHS),
      latent=AE_LATENT,
      groups=AE_GROUPS,
      norm="groupnorm",
      activation="silu",
    )
    if f.upsample == "filtered":
      arch.update(filter_taps=FILTER_TAPS, filter_beta=FILTER_BETA)
  return arch


def family(name: str) -> Family:
  """The family called `name`; a one-line `UserError` naming the choices otherwise."""
  if name not in FAMILIES:
    raise UserError(f"unknown trained generator family {name!r}: use one of {', '.join(FAMILIES)}")
  return FAMILIES[name]


# --- layers -------------------------------------------------------------------------------------


def normal_init(std: float = 0.02):
  """DCGAN's N(0, std) kernel initialisation."""
  return nnx.initializers.normal(std)


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """ProGAN's per-pixel feature normalisation: no batch statistics, so a sample does not depend on its batch."""
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)


def pixel_shuffle(x: jax.Array, r: int = 2) -> jax.Array:
  """(B, H, W, r*r*C) -> (B, r*H, r*W, C), the sub-pixel convolution's rearrangement."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, r, r, c // (r * r))
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * r, w * r, c // (r * r))


@functools.cache
def lowpass_taps(taps: int = FILTER_TAPS, beta: float = FILTER_BETA) -> np.ndarray:
  """1-D Kaiser-windowed sinc with its cutoff at the input's Nyquist frequency, for 2x upsampling.

  Normalised so each of the two output phases has unit gain (DC passes unchanged, no 2-periodic ripple).
  """
  n = np.arange(taps) - (taps - 1) / 2
  h = 0.5 * np.sinc(0.5 * n) * np.kaiser(taps, beta)
  h[0::2] /= h[0::2].sum()
  h[1::2] /= h[1::2].sum()
  return h


def upsample_filtered(x: jax.Array) -> jax.Array:
  """Anti-aliased 2x upsampling of (B, H, W, C): zero insertion and a separable low-pass, in polyphase form.

  Output pixel 2m + p (phase p) is a 6-tap weighted sum of input pixels m + p - 3 ... m + p + 2, the
  taps of the zero-inserted signal that the filter reaches: half-pixel aligned like bilinear resizing.
  The input is extended symmetrically, so borders stay clean.
  """
  taps = lowpass_taps()
  half = len(taps) // 4  # input pixels each side that the filter reaches
  for axis in (1, 2):
    n = x.shape[axis]
    xp = jnp.pad(x, [(half, half) if a == axis else (0, 0) for a in range(4)], mode="symmetric")
    phases = []
    for p in (0, 1):
      terms = [
        float(taps[p + 2 * t]) * jax.lax.slice_in_dim(xp, p + t, p + t + n, axis=axis) for t in range(len(taps) // 2)
      ]
      phases.append(sum(terms[1:], terms[0]))
    x = jnp.stack(phases, axis=axis + 1)
    shape = list(x.shape)
    x = x.reshape(shape[:axis] + [2 * n] + shape[axis + 2 :])
  return x


def upsample(x: jax.Array, mode: str) -> jax.Array:
  """Parameter-free 2x upsampling (nearest, bilinear or filtered) of (B, H, W, C)."""
  if mode == "nearest":
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  if mode == "bilinear":
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "linear")
  if mode == "filtered":
    return upsample_filtered(x)
  raise ValueError(f"no parameter-free upsampling {mode!r}")


class GanUp(nnx.Module):
  """One generator stage: 2x upsampling by `mode`, pixel norm, leaky ReLU."""

  def __init__(self, mode: str, cin: int, cout: int, *, rngs: nnx.Rngs):
    self.mode = mode
    kw = dict(kernel_init=normal_init(), precision=_HP, rngs=rngs)
    if mode == "transposed":
      self.conv = nnx.ConvTranspose(cin, cout, (4, 4), strides=(2, 2), padding="SAME", **kw)
    elif mode == "subpixel":
      self.conv = nnx.Conv(cin, 4 * cout, (3, 3), padding="SAME", **kw)
    else:
      self.conv = nnx.Conv(cin, cout, (3, 3), padding="SAME", **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.mode == "transposed":
      y = self.conv(x)
    elif self.mode == "subpixel":
      y = pixel_shuffle(self.conv(x))
    else:
      y = self.conv(upsample(x, self.mode))
    return jax.nn.leaky_relu(pixel_norm(y), 0.2)


class GanGenerator(nnx.Module):
  """z (B, Z_DIM) -> image (B, 64, 64, 3) in [-1, 1]: dense to 4x4, four 2x stages, 3x3 conv, tanh."""

  def __init__(self, mode: str, *, rngs: nnx.Rngs):
    w = GAN_WIDTHS
    self.stem = nnx.Linear(Z_DIM, 4 * 4 * w[0], kernel_init=normal_init(), precision=_HP, rngs=rngs)
    self.ups = nnx.List([GanUp(mode, w[i], w[i + 1], rngs=rngs) for i in range(len(w) - 1)])
    self.to_rgb = nnx.Conv(w[-1], 3, (3, 3), padding="SAME", kernel_init=normal_init(), precision=_HP, rngs=rngs)

  def __call__(self, z: jax.Array) -> jax.Array:
    x = self.stem(pixel_norm(z)).reshape(z.shape[0], 4, 4, GAN_WIDTHS[0])
    x = jax.nn.leaky_relu(pixel_norm(x), 0.2)
    for up in self.ups:
      x = up(x)
    return jnp.tanh(self.to_rgb(x))


class NormConv(nnx.Module):
  """GroupNorm, SiLU, 3x3 conv (optionally strided, or after a parameter-free 2x upsampling `up`)."""

  def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs, stride: int = 1, up: str = ""):
    self.up = up
    self.norm = nnx.GroupNorm(cin, num_groups=min(AE_GROUPS, cin), rngs=rngs)
    self.conv = nnx.Conv(cin, cout, (3, 3), strides=(stride, stride), padding="SAME", precision=_HP, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = jax.nn.silu(self.norm(x))
    return self.conv(upsample(x, self.up) if self.up else x)


class Encoder(nnx.Module):
  """Image (B, 64, 64, 3) -> latent mean and log-variance (B, 16, 16, AE_LATENT) each."""

  def __init__(self, *, rngs: nnx.Rngs):
    w = AE_ENCODER_WIDTHS
    self.conv_in = nnx.Conv(3, w[0], (3, 3), padding="SAME", precision=_HP, rngs=rngs)
    self.down = nnx.List([NormConv(w[i], w[i + 1], stride=2, rngs=rngs) for i in range(len(w) - 1)])
    self.mid = NormConv(w[-1], w[-1], rngs=rngs)
    self.out = NormConv(w[-1], 2 * AE_LATENT, rngs=rngs)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = self.conv_in(x)
    for down in self.down:
      x = down(x)
    moments = self.out(x + self.mid(x))
    return moments[..., :AE_LATENT], jnp.clip(moments[..., AE_LATENT:], -30.0, 20.0)


class Decoder(nnx.Module):
  """Latent (B, 16, 16, AE_LATENT) -> image (B, 64, 64, 3): two stages of 2x upsampling + conv, GroupNorm, SiLU."""

  def __init__(self, mode: str, *, rngs: nnx.Rngs):
    w = AE_DECODER_WIDTHS
    self.conv_in = nnx.Conv(AE_LATENT, w[0], (3, 3), padding="SAME", precision=_HP, rngs=rngs)
    self.mid = NormConv(w[0], w[0], rngs=rngs)
    self.ups = nnx.List([NormConv(w[i], w[i + 1], up=mode, rngs=rngs) for i in range(len(w) - 1)])
    self.out = NormConv(w[-1], 3, rngs=rngs)

  def __call__(self, z: jax.Array) -> jax.Array:
    x = self.conv_in(z)
    x = x + self.mid(x)
    for up in self.ups:
      x = up(x)
    return self.out(x)


class Autoencoder(nnx.Module):
  """Encoder + decoder; `__call__` reconstructs from the posterior mean (deterministic)."""

  def __init__(self, mode: str, *, rngs: nnx.Rngs):
    self.encoder = Encoder(rngs=rngs)
    self.decoder = Decoder(mode, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    mean, _ = self.encoder(x)
    return self.decoder(mean)


def build(name: str, seed: int = 0) -> nnx.Module:
  """A freshly initialised network of family `name` (the generator of a GAN, the whole autoencoder)."""
  f = family(name)
  rngs = nnx.Rngs(seed)
  return GanGenerator(f.upsample, rngs=rngs) if f.kind == "gan" else Autoencoder(f.upsample, rngs=rngs)


# --- weights ------------------------------------------------------------------------------------


def _key(path: tuple) -> str:
  """'a/0/kernel' for a pytree path into a pure-dict state (the npz key)."""
  return "/".join(str(getattr(p, "key", p)) for p in path)


def flat_params(model: nnx.Module) -> dict[str, np.ndarray]:
  """The model's parameters as {'a/b/kernel': float32 array}, the npz layout."""
  leaves = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]
  return {_key(path): np.asarray(leaf, np.float32) for path, leaf in leaves}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
  """Writes `arrays` as an npz whose bytes depend on the arrays only (fixed zip timestamps); returns its sha256."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
    for key in sorted(arrays):
      info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      arr = io.BytesIO()
      np.lib.format.write_array(arr, np.ascontiguousarray(arrays[key]), allow_pickle=False)
      zf.writestr(info, arr.getvalue())
  data = buf.getvalue()
  path.write_bytes(data)
  return hashlib.sha256(data).hexdigest()


def weights_path(name: str, weights_dir: Path | None = None) -> Path:
  """The npz of family `name` in `weights_dir` (default: the committed ones, `WEIGHTS_DIR`)."""
  return Path(weights_dir or WEIGHTS_DIR) / f"{family(name).name}.npz"


def weights_sha256(name: str, weights_dir: Path | None = None) -> str:
  """sha256 of the committed weight file of `name`."""
  path = weights_path(name, weights_dir)
  if not path.is_file():
    raise UserError(
      f"no weights for trained family {name} at {path}: run python launch/train_families.py "
      f"--families={name} (or reinstall freqforensics)"
    )
  return hashlib.sha256(path.read_bytes()).hexdigest()


def card(name: str, weights_dir: Path | None = None) -> dict:
  """The training card (JSON) beside the weights of `name`."""
  return json.loads(weights_path(name, weights_dir).with_suffix(".json").read_text())


def load_model(name: str, path: Path) -> nnx.Module:
  """The network of family `name` with the weights of the npz at `path` (same names and shapes, or a UserError).

  Built abstractly (`nnx.eval_shape`): no random initialisation runs, which on a CPU costs seconds of
  small compilations.
  """
  with np.load(path, allow_pickle=False) as npz:
    stored = {k: npz[k] for k in npz.files}
  graphdef, state = nnx.split(nnx.eval_shape(lambda: build(name)))
  shapes = nnx.to_pure_dict(state)
  wanted = {_key(p): tuple(leaf.shape) for p, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]}
  if set(wanted) != set(stored):
    raise UserError(
      f"{path} does not hold the weights of {name} (missing {sorted(set(wanted) - set(stored))[:2]}, "
      f"extra {sorted(set(stored) - set(wanted))[:2]}): retrain with python launch/train_families.py"
    )
  bad = [k for k, shape in wanted.items() if stored[k].shape != shape]
  if bad:
    raise UserError(
      f"{path}: {bad[0]} has shape {stored[bad[0]].shape}, {name} wants {wanted[bad[0]]}: retrain with "
      "python launch/train_families.py"
    )
  nnx.replace_by_pure_dict(state, jax.tree_util.tree_map_with_path(lambda p, _: jnp.asarray(stored[_key(p)]), shapes))
  return nnx.merge(graphdef, state)


@functools.cache
def _sampler(name: str, weights_dir: Path | None) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
  """jit-compiled float64 forward of the committed weights: GAN z -> uint8 images, AE uint8 crops -> uint8."""
  f = family(name)
  path = weights_path(name, weights_dir)
  sha = weights_sha256(name, weights_dir)
  stored = card(name, weights_dir)
  if stored.get("architecture") != architecture(name):
    raise UserError(
      f"{path.with_suffix('.json')} describes another architecture than this code builds: retrain "
      f"with python launch/train_families.py --families={name}"
    )
  graphdef, state = nnx.split(load_model(name, path))  # Functional form: plain jax.jit, no nnx.jit overhead.

  @jax.jit
  def forward(state, x):
    net = nnx.merge(graphdef, state)
    if f.kind == "ae":
      x = x.astype(jnp.float64) / 127.5 - 1.0
    y = net(x)
    return jnp.round(jnp.clip((y + 1.0) * 127.5, 0, 255)).astype(jnp.uint8)

  def run(x: np.ndarray) -> np.ndarray:
    with jax.enable_x64(True):
      state64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), state)
      return np.asarray(forward(state64, jnp.asarray(x, jnp.float64 if f.kind == "gan" else jnp.uint8)))

  return run, sha


def latents(rngs: Sequence[np.random.Generator]) -> np.ndarray:
  """One GAN latent z ~ N(0, 1) per generator: (len(rngs), Z_DIM) float64."""
  return np.stack([r.standard_normal(Z_DIM) for r in rngs])


def sample(name: str, inputs: np.ndarray, *, batch: int = 256, weights_dir: Path | None = None) -> np.ndarray:
  """Images (N, 64, 64, 3) uint8 of family `name` from its weights: GAN latents (N, Z_DIM), or for an
  autoencoder uint8 crops (N, 64, 64, 3) that it reconstructs. Inputs go through in batches of `batch`,
  the last one zero-padded, so each batch size compiles once; an image does not depend on its batch."""
  run, _ = _sampler(name, weights_dir)
  out = []
  for start in range(0, len(inputs), batch):
    part = inputs[start : start + batch]
    padded = np.concatenate([part, np.zeros((batch - len(part),) + part.shape[1:], part.dtype)])
    out.append(run(padded)[: len(part)])
  return np.concatenate(out) if out else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)


def clear_cache() -> None:
  """Forgets loaded weights (after `launch/train_families.py` rewrote them)."""
  _sampler.cache_clear()
