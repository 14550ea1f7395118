r"""Benchmark: images/s of every feature view as training computes it, beside a NumPy / PyWavelets version.

  python launch/bench_views.py [--reps=5] [--sizes=64:256,128:256]

Ours: `spectral.features(images, kind, stats)` (transform, log, standardisation) exactly as in
training, the batch split over the ('data',) mesh of all devices. The reference is what a NumPy user
would write for the same raw feature: `numpy.fft.fft2` + `fftshift` + log for `fft_log`, the same
plus ring means by `numpy.bincount` for `azimuthal`, `pywt.WaveletPacket2D(mode="periodization")`
per image and channel for `wpt_log` (PyWavelets has no batched packet transform), `scipy.fft.dctn`
+ log for `dct_log`. Both start from the same uint8 batch in host memory and are timed to a finished
result; the median over `--reps` runs after a warm-up.
"""

from __future__ import annotations

from importlib import metadata

from freqforensics import host_devices

host_devices.use_all_cores()

import jax  # noqa: E402  (after the XLA flag)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pywt  # noqa: E402
import scipy.fft  # noqa: E402

from freqforensics import sharding, spectral  # noqa: E402
from freqforensics.tools import scripts  # noqa: E402

KINDS = ("dct_log", "fft_log", "azimuthal-b32", "wpt_log-haar-l3", "wpt_log-db4-l3")


def reference(x: np.ndarray, kind: str) -> np.ndarray:
  """The raw feature of `kind` in NumPy / SciPy / PyWavelets."""
  spec = spectral.parse_feature(kind)
  if spec.kind == "dct_log":
    return np.log(np.abs(scipy.fft.dctn(x.astype(np.float32), type=2, norm="ortho", axes=(1, 2), workers=-1)) + 1e-12)
  if spec.kind == "wpt_log":
    out = np.empty(x.shape, np.float64)
    for b in range(x.shape[0]):
      for c in range(x.shape[-1]):
        wp = pywt.WaveletPacket2D(
          x[b, :, :, c].astype(np.float64), spec.wavelet, mode="periodization", maxlevel=spec.level
        )
        out[b, :, :, c] = np.block([[n.data for n in row] for row in wp.get_level(spec.level, order="freq")])
    return np.log(np.abs(out) + 1e-12)
  f = np.fft.fftshift(np.fft.fft2(x.astype(np.float32), axes=(1, 2), norm="ortho"), axes=(1, 2))
  if spec.kind == "fft_log":
    return np.log(np.abs(f) + 1e-12)
  index, counts = spectral.radial_bins(x.shape[1], x.shape[2], spec.bins)
  power = (np.abs(f) ** 2).reshape(x.shape[0], -1, x.shape[-1])
  rings = np.stack(
    [
      np.stack([np.bincount(index, power[b, :, c], spec.bins) for c in range(x.shape[-1])], -1)
      for b in range(x.shape[0])
    ]
  )
  return np.log(rings / counts[:, None] + 1e-12)


def bench(kind: str, size: int, batch: int, reps: int) -> dict[str, float]:
  x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  shape = spectral.feature_shape(kind, (size, size, 3))
  mesh = sharding.make_mesh()
  stats = jax.device_put(spectral.FeatureStats(jnp.zeros(shape), jnp.ones(shape)), sharding.replicated(mesh))
  ours = jax.jit(sharding.features_fn(mesh, kind))
  put = sharding.make_put(mesh)
  t_ours = scripts.median_seconds(lambda: ours(put({"image": x})["image"], stats).block_until_ready(), reps)
  ref_batch = x if not kind.startswith("wpt") else x[: max(8, batch // 16)]  # PyWavelets is per plane: slow
  t_ref = scripts.median_seconds(lambda: reference(ref_batch, kind), max(1, reps // 2))
  got = np.asarray(spectral.raw_features(x[:4], kind), np.float64)
  want = reference(x[:4], kind)
  keep = want > np.log(1e-2)  # the log of a coefficient near 0 is float rounding noise in both
  return {"ours": batch / t_ours, "ref": len(ref_batch) / t_ref, "max_err": float(np.abs(got - want)[keep].max())}


def main() -> None:
  args = scripts.bench_parser(__doc__, reps=5, sizes="64:256,128:256").parse_args()
  print(scripts.machine_line(f"numpy {np.__version__}", f"PyWavelets {metadata.version('PyWavelets')}"))
  print("| batch | feature | features() img/s | NumPy / PyWavelets img/s | ratio | max abs error of log (|c| > 0.01) |")
  print("|---|---|---|---|---|---|")
  for size, batch in scripts.size_batches(args.sizes):
    for kind in KINDS:
      r = bench(kind, size, batch, args.reps)
      print(
        f"| {batch} x {size}x{size}x3 | `{kind}` | {r['ours']:,.0f} | {r['ref']:,.0f} | {r['ours'] / r['ref']:.1f}"
        f" | {r['max_err']:.1e} |",
        flush=True,
      )


if __name__ == "__main__":
  main()
