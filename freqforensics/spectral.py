"""Pure, jittable spectral transforms over image batches shaped `(..., H, W, C)`.

Plain `jnp` functions: no globals, no config reads; eps, mean and std are arguments. The DCT is the
full-image orthonormal 2-D DCT-II of SPEC.md section 2 (`scipy.fft.dctn(x, type=2, norm="ortho",
axes=(-3, -2))`), by FFT or, on GPUs/TPUs at small sides, by matrix products at HIGHEST precision
(docs/benchmarks.md). Besides it, the views of later work (docs/feature_views.md): the centred FFT,
its azimuthal average and wavelet packets (`wavelets`). A feature kind with parameters is named by a
string that carries them, e.g. `wpt_log-haar-l3` (`feature_name`, `parse_feature`).
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from freqforensics import wavelets

EPS = 1e-12
"""The one epsilon of the log feature (the release mixed 1e-12 and 1e-13)."""

FeatureKind = Literal["pixel", "dct", "dct_log", "fft_log", "azimuthal", "wpt_log"]
FEATURE_KINDS: tuple[str, ...] = ("pixel", "dct", "dct_log", "fft_log", "azimuthal", "wpt_log")
IMAGE_SHAPED_KINDS: tuple[str, ...] = ("pixel", "dct", "dct_log", "fft_log", "wpt_log")
"""Kinds whose feature has the image's (H, W, C) shape; `azimuthal` is (bins, C)."""
R_MAX = float(np.sqrt(0.5))
"""The largest radius of the spectrum in cycles per pixel (the corner: 0.5 along each axis)."""
_MATMUL_MAX_SIDE = 512
_CHUNK_ELEMENTS = 16 * 128 * 128 * 3  # ~3 MB of float32 per chunk: fits in a CPU's L2/L3 cache
Method = Literal["auto", "fft", "matmul"]


class FeatureStats(NamedTuple):
  """Per-coefficient mean and standard deviation of a feature, shaped like one image (H, W, C)."""

  mean: jax.Array
  std: jax.Array


class FeatureSpec(NamedTuple):
  """A feature kind with its parameters; `name` is the string that statistics files and bundles record."""

  kind: str
  wavelet: str = "haar"  # wpt_log only
  level: int = 3  # wpt_log only
  bins: int = 32  # azimuthal only

  @property
  def name(self) -> str:
    if self.kind == "wpt_log":
      return f"wpt_log-{self.wavelet}-l{self.level}"
    if self.kind == "azimuthal":
      return f"azimuthal-b{self.bins}"
    return self.kind


def feature_name(kind: str, *, wavelet: str = "haar", level: int = 3, bins: int = 32) -> str:
  """The full name of a feature kind with its parameters (only those it uses), validated.

  `feature_name("wpt_log", wavelet="db2", level=2) == "wpt_log-db2-l2"`,
  `feature_name("azimuthal", bins=16) == "azimuthal-b16"`, `feature_name("dct_log") == "dct_log"`.
  """
  if kind not in FEATURE_KINDS:
    raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")
  if kind == "wpt_log":
    wavelets.check_wavelet(wavelet)
    if level < 1:
      raise ValueError(f"wavelet packet level must be at least 1, got {level}")
  if kind == "azimuthal" and bins < 1:
    raise ValueError(f"azimuthal bins must be at least 1, got {bins}")
  return FeatureSpec(kind, wavelet, level, bins).name


def parse_feature(name: str) -> FeatureSpec:
  """Inverse of `feature_name`: `"wpt_log-db2-l2"` -> FeatureSpec("wpt_log", "db2", 2, ...)."""
  kind, _, rest = str(name).partition("-")
  try:
    if kind == "wpt_log" and rest:
      wavelet, _, level = rest.rpartition("-l")
      spec = FeatureSpec(kind, wavelet=wavelet, level=int(level))
    elif kind == "azimuthal" and rest:
      spec = FeatureSpec(kind, bins=int(rest.removeprefix("b")))
    elif not rest:
      spec = FeatureSpec(kind)
    else:
      raise ValueError
  except ValueError:
    spec = None
  if spec is None or kind not in FEATURE_KINDS:
    raise ValueError(
      f"unknown feature kind {name!r}; expected one of {FEATURE_KINDS} (with parameters:"
      " wpt_log-<wavelet>-l<level>, azimuthal-b<bins>)"
    )
  feature_name(spec.kind, wavelet=spec.wavelet, level=spec.level, bins=spec.bins)  # validates the parameters
  return spec


@functools.lru_cache(maxsize=32)
def dct_matrix(n: int) -> np.ndarray:
  """The orthonormal DCT-II matrix `C` of size n (`C @ x` is the DCT of a length-n vector x).

  Built in float64 and cached per size; the caller casts it. Its rows are orthonormal, so the
  inverse transform is `C.T`.
  """
  k = np.arange(n)[:, None]
  i = np.arange(n)[None, :]
  c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
  c[0] /= np.sqrt(2.0)
  c.setflags(write=False)
  return c


def transform_hw(x: jax.Array, mat_h: jax.Array, mat_w: jax.Array) -> jax.Array:
  """Applies `mat_h` along H and `mat_w` along W of `(..., H, W, C)` as two large GEMMs.

  Channels are moved in front of H first, so each pass is one `(rows, n) @ (n, n)` product over the
  whole batch instead of many products with only C columns.
  """
  x = jnp.moveaxis(x, -1, -3)  # (..., C, H, W)
  x = jnp.matmul(x, mat_w.T, precision=jax.lax.Precision.HIGHEST)
  x = jnp.swapaxes(x, -1, -2)  # (..., C, W, H)
  x = jnp.matmul(x, mat_h.T, precision=jax.lax.Precision.HIGHEST)
  x = jnp.swapaxes(x, -1, -2)
  return jnp.moveaxis(x, -3, -1)


def _use_matmul(h: int, w: int, method: str) -> bool:
  if method not in ("auto", "fft", "matmul"):
    raise ValueError(f"unknown DCT method {method!r}; expected auto, fft or matmul")
  if method != "auto":
    return method == "matmul"
  return jax.default_backend() != "cpu" and max(h, w) <= _MATMUL_MAX_SIDE


def _makhoul_order(n: int) -> np.ndarray:
  """Even samples ascending, then odd samples descending: the DCT-II becomes a DFT of this order."""
  return np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2)[::-1]])


def _dct2_fft_last2(x: jax.Array) -> jax.Array:
  """Orthonormal 2-D DCT-II over the last two axes via one real 2-D FFT (Makhoul, 1980).

  With v the reordered input and V = rfft2(v) (columns m = 0..N2/2), P = e^{-i pi m/2N2} V(k1, m)
  and Q = e^{+i pi m/2N2} conj(V(-k1, m)) give X(k1, m) = Re(e^{-i pi k1/2N1} (P + Q)) and
  X(k1, N2 - m) = Re(e^{-i pi k1/2N1} i (P - Q)), up to the orthonormal scale per axis.
  """
  n1, n2 = x.shape[-2], x.shape[-1]
  complex_dtype = jnp.complex128 if x.dtype == jnp.float64 else jnp.complex64
  v = x[..., _makhoul_order(n1), :][..., _makhoul_order(n2)]
  spec = jnp.fft.rfft2(v)  # (..., n1, n2 // 2 + 1)
  m = np.arange(n2 // 2 + 1)
  w2 = jnp.asarray(np.exp(-1j * np.pi * m / (2 * n2)), complex_dtype)
  neg = jnp.roll(jnp.flip(spec, -2), 1, -2)  # V(-k1 mod n1, m)
  p = w2 * spec
  q = jnp.conj(w2) * jnp.conj(neg)
  w1 = jnp.asarray(np.exp(-1j * np.pi * np.arange(n1) / (2 * n1)), complex_dtype)[:, None]
  low = jnp.real(w1 * (p + q))  # k2 = 0 .. n2 // 2
  high = jnp.real(w1 * 1j * (p - q))[..., 1 : (n2 + 1) // 2][..., ::-1]  # k2 = n2 // 2 + 1 .. n2 - 1
  out = jnp.concatenate([low, high], axis=-1)
  f1 = np.full(n1, np.sqrt(2.0 / n1))
  f1[0] = np.sqrt(1.0 / n1)
  f2 = np.full(n2, np.sqrt(2.0 / n2))
  f2[0] = np.sqrt(1.0 / n2)
  return out * jnp.asarray(f1[:, None] * f2[None, :] / 2.0, x.dtype)


def _float(x: jax.Array) -> jax.Array:
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def dct2(x: jax.Array, method: Method = "auto") -> jax.Array:
  """Orthonormal 2-D DCT-II over the H and W axes of `(..., H, W, C)`, per channel.

  Integer input (uint8 images) is converted to float32; float64 input stays float64. `method`
  forces an implementation (tests use it); `auto` picks by backend and size.
  """
  x = _float(x)
  h, w = x.shape[-3], x.shape[-2]
  if _use_matmul(h, w, method):
    return transform_hw(x, jnp.asarray(dct_matrix(h), x.dtype), jnp.asarray(dct_matrix(w), x.dtype))
  return jnp.moveaxis(_dct2_fft_last2(jnp.moveaxis(x, -1, -3)), -3, -1)


def idct2(x: jax.Array, method: Method = "auto") -> jax.Array:
  """Inverse of `dct2`: orthonormal 2-D DCT-III over H and W, so `idct2(dct2(x)) == x`."""
  x = _float(x)
  h, w = x.shape[-3], x.shape[-2]
  if _use_matmul(h, w, method):
    return transform_hw(x, jnp.asarray(dct_matrix(h), x.dtype).T, jnp.asarray(dct_matrix(w), x.dtype).T)
  return jax.scipy.fft.idctn(x, type=2, norm="ortho", axes=(-3, -2))


def log_scale(x: jax.Array, eps: float = EPS) -> jax.Array:
  """`log(|x| + eps)`: the paper's log feature; the sign of the coefficient is discarded."""
  return jnp.log(jnp.abs(x) + eps)


def standardize(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  """`(x - mean) / std`, broadcasting per-coefficient statistics over leading batch axes."""
  return (x - mean) / std


def scale_pixels(x: jax.Array) -> jax.Array:
  """Pixel input of the paper: `x / 127.5 - 1`, mapping uint8 0..255 to -1..1."""
  return jnp.asarray(x).astype(jnp.float32) / 127.5 - 1.0


def fft2_centred(x: jax.Array) -> jax.Array:
  """Orthonormal 2-D DFT over H, W of `(..., H, W, C)`, per channel, zero frequency centred.

  Equal to `np.fft.fftshift(np.fft.fft2(x, axes=(-3, -2), norm="ortho"), axes=(-3, -2))`: the zero
  frequency sits at (H // 2, W // 2). Orthonormal, so `sum |F|^2 == sum |x|^2` (Parseval).
  """
  x = _float(x)
  f = jnp.fft.fft2(jnp.moveaxis(x, -1, -3), norm="ortho")  # channels first: one 2-D FFT per plane
  return jnp.moveaxis(jnp.fft.fftshift(f, axes=(-2, -1)), -3, -1)


def fft_log_magnitude(x: jax.Array, eps: float = EPS) -> jax.Array:
  """`log(|F| + eps)` of the centred orthonormal 2-D FFT `F` (`fft2_centred`), shaped like `x`."""
  return log_scale(fft2_centred(x), eps)


def power_spectrum(x: jax.Array) -> jax.Array:
  """`|F|^2` of the centred orthonormal 2-D FFT, per channel, shaped like `x`."""
  f = fft2_centred(x)
  return jnp.real(f) ** 2 + jnp.imag(f) ** 2


@functools.lru_cache(maxsize=32)
def radial_bins(h: int, w: int, bins: int, r_max: float = R_MAX) -> tuple[np.ndarray, np.ndarray]:
  """Ring index of every pixel of a centred H x W spectrum (flattened, C order) and each ring's size.

  The one radial binning of the project (the `azimuthal` feature, the 1-D power spectra of
  `analysis.mean_spectra`). The radius is measured in cycles per pixel,
  `r = hypot((i - H//2) / H, (j - W//2) / W)`, so the bins mean the same frequencies at any image
  size (and for non-square images); bin b holds `b <= r / r_max * bins < b + 1` (a radius exactly on
  an edge goes up). With the default `r_max` = R_MAX = sqrt(0.5), the corner, every coefficient
  counts (the highest frequencies sit in the corners); with a smaller `r_max` the coefficients
  beyond it are left out (index `bins`): `r_max=0.5, bins=S//2` gives rings one cycle per image wide
  up to the Nyquist frequency along an axis. Raises ValueError when a bin would hold no pixel:
  `bins` must not exceed about `min(H, W) // 2`.
  """
  if bins < 1:
    raise ValueError(f"azimuthal bins must be at least 1, got {bins}")
  fy = (np.arange(h) - h // 2) / h
  fx = (np.arange(w) - w // 2) / w
  r = np.hypot(fy[:, None], fx[None, :]).ravel()
  # Radii on a bin edge are common (a diagonal frequency of a square image); the tolerance sends them
  # to the upper bin rather than leaving the choice to float rounding.
  index = np.floor(r / r_max * bins + 1e-11).astype(np.int64)
  index = np.minimum(index, bins - 1) if r_max >= R_MAX else np.where(index < bins, index, bins)
  counts = np.bincount(index, minlength=bins + 1)[:bins]
  if not counts.all():
    raise ValueError(
      f"{bins} azimuthal bins are too many for {h}x{w} images (bin {int(np.argmin(counts > 0))}"
      f" holds no frequency): use at most {min(h, w) // 2} bins"
    )
  index.setflags(write=False)
  counts.setflags(write=False)
  return index, counts


def azimuthal_average(spectrum: jax.Array, bins: int, r_max: float = R_MAX) -> jax.Array:
  """Mean of a centred spectrum `(..., H, W, C)` over `bins` rings (`radial_bins`): `(..., bins, C)`.

  Bin 0 holds the zero frequency; each channel is averaged on its own.
  """
  spectrum = jnp.asarray(spectrum)
  h, w, c = spectrum.shape[-3:]
  index, counts = radial_bins(h, w, bins, r_max)
  flat = jnp.moveaxis(spectrum.reshape(spectrum.shape[:-3] + (h * w, c)), -2, 0)  # (H*W, ..., C)
  sums = jax.ops.segment_sum(flat, jnp.asarray(index), num_segments=bins + 1)[:bins]  # bin `bins`: left out
  return jnp.moveaxis(sums, 0, -2) / jnp.asarray(counts, spectrum.dtype)[:, None]


def azimuthal_log_power(x: jax.Array, bins: int, eps: float = EPS) -> jax.Array:
  """`log(azimuthal_average(|F|^2) + eps)`: the 1-D power spectrum of Durall et al., `(..., bins, C)`."""
  return jnp.log(azimuthal_average(power_spectrum(x), bins) + eps)


def wavelet_packets(x: jax.Array, wavelet: str = "haar", level: int = 3) -> jax.Array:
  """Level-`level` 2-D wavelet packet coefficients over H, W of `(..., H, W, C)`, per channel.

  Periodized, orthonormal for an orthogonal wavelet, and tiled into (H, W) in frequency order
  (`wavelets.py` holds the conventions). Integer input is converted to float32.
  """
  x = _float(x)
  h, w = x.shape[-3], x.shape[-2]
  mat_h = jnp.asarray(wavelets.packet_matrix(h, wavelet, level), x.dtype)
  mat_w = jnp.asarray(wavelets.packet_matrix(w, wavelet, level), x.dtype)
  return transform_hw(x, mat_h, mat_w)


def needs_stats(kind: str) -> bool:
  """Whether a feature kind (a name from `feature_name`) is standardised with training-set statistics."""
  return parse_feature(kind).kind != "pixel"


def feature_shape(kind: str, image_shape: tuple[int, ...]) -> tuple[int, ...]:
  """The shape of one example's feature of `kind` for images shaped `(H, W, C)`.

  The image's shape, except `azimuthal`: (bins, C). Raises ValueError when the kind's parameters
  do not fit the image size (a packet level too deep, too many bins).
  """
  out = jax.eval_shape(lambda x: _raw(x, kind), jax.ShapeDtypeStruct((1, *image_shape), jnp.uint8))
  return tuple(out.shape[1:])


def default_chunk(batch_shape: tuple[int, ...]) -> int:
  """Images per cache-sized chunk for a batch `(B, H, W, C)` on CPU; 0 = no chunking.

  Chunks only pay off on CPUs (accelerators have the bandwidth) and only for batches that divide
  evenly into several chunks.
  """
  if jax.default_backend() != "cpu" or len(batch_shape) != 4:
    return 0
  chunk = max(1, _CHUNK_ELEMENTS // int(np.prod(batch_shape[1:])))
  return chunk if batch_shape[0] > chunk and batch_shape[0] % chunk == 0 else 0


def _map_chunks(fn, images: jax.Array, chunk: int | None) -> jax.Array:
  """`fn` over the batch axis in contiguous chunks of `chunk` images, one at a time (`lax.map`).

  A chunk that fits in cache is transformed with far less memory traffic than the whole batch.
  Do not chunk a batch sharded over devices (a loop over a sharded axis gathers it): transform
  each device's slice instead (`sharding.per_device`).
  """
  images = jnp.asarray(images)
  chunk = default_chunk(images.shape) if chunk is None else chunk
  b = images.shape[0] if images.ndim == 4 else 0
  if not chunk or b <= chunk or b % chunk:
    return fn(images)
  y = jax.lax.map(fn, images.reshape((b // chunk, chunk) + images.shape[1:]))
  return y.reshape((b,) + y.shape[2:])


def _raw(images: jax.Array, kind: str) -> jax.Array:
  spec = parse_feature(kind)
  if spec.kind == "pixel":
    return scale_pixels(images)
  if spec.kind == "dct":
    return dct2(images)
  if spec.kind == "dct_log":
    return log_scale(dct2(images))
  if spec.kind == "fft_log":
    return fft_log_magnitude(images)
  if spec.kind == "azimuthal":
    return azimuthal_log_power(images, spec.bins)
  return log_scale(wavelet_packets(images, spec.wavelet, spec.level))  # wpt_log


def raw_features(images: jax.Array, kind: str, *, chunk: int | None = None) -> jax.Array:
  """The feature before standardisation: what the statistics pass accumulates.

  `pixel` has no statistics (it is scaled by a fixed rule), so its raw feature is the scaled pixels.
  """
  parse_feature(kind)
  return _map_chunks(lambda x: _raw(x, kind), images, chunk)


def features(images: jax.Array, kind: str, stats: FeatureStats | None = None, *, chunk: int | None = None) -> jax.Array:
  """Maps a uint8 image batch `(..., H, W, C)` to model input for `kind`.

  - `pixel`: `x / 127.5 - 1`.
  - `dct`: DCT coefficients, standardised per coefficient.
  - `dct_log`: the paper's representation: DCT, `log(|c| + eps)`, standardised per coefficient.
  - `fft_log`: `log(|F| + eps)` of the centred orthonormal 2-D FFT, standardised per coefficient.
  - `azimuthal-b<bins>`: log of the azimuthally averaged FFT power, `(bins, C)`, standardised per bin.
  - `wpt_log-<wavelet>-l<level>`: `log(|c| + eps)` of the 2-D wavelet packets, standardised.

  `chunk` (images per step, 0 = none) defaults to `default_chunk` of the batch.
  """
  if needs_stats(kind) and stats is None:
    raise ValueError(f"feature kind {kind!r} needs FeatureStats (mean, std) of the training split")
  if not needs_stats(kind):
    return _map_chunks(scale_pixels, images, chunk)
  return _map_chunks(lambda x: standardize(_raw(x, kind), stats.mean, stats.std), images, chunk)
