r"""Benchmark: images/s of `spectral.features(..., "dct_log")` beside SciPy + NumPy on the same batches.

  python launch/bench_spectral.py [--reps=7] [--sizes=128:256,1024:8]

Ours runs exactly as in training: the batch split over the ('data',) mesh of all devices (one CPU
device per core, `host_devices.use_all_cores`), each device transforming its slice in cache-sized
chunks. The reference is what a NumPy user would write: `scipy.fft.dctn(x, type=2, norm="ortho",
axes=(1, 2), workers=-1)` then `numpy.log(numpy.abs(.) + 1e-12)`; ours includes the
standardisation as well (the full model input). Both start from the same uint8 batch in host memory
(ours copies it to the device inside the timing) and both are timed to a finished result. Reported:
the median over `--reps` runs after a warm-up, and the ratio.
"""

from __future__ import annotations

from freqforensics import host_devices

host_devices.use_all_cores()

import jax  # noqa: E402  (after the XLA flag)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402

from freqforensics import sharding, spectral  # noqa: E402
from freqforensics.tools import scripts  # noqa: E402


def bench(size: int, batch: int, reps: int) -> dict[str, float]:
  """images/s of both implementations on one uint8 batch of `batch` x size x size x 3."""
  x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  mesh = sharding.make_mesh()
  stats = jax.device_put(
    spectral.FeatureStats(jnp.zeros((size, size, 3)), jnp.ones((size, size, 3))), sharding.replicated(mesh)
  )
  ours = jax.jit(sharding.features_fn(mesh, "dct_log"))
  put = sharding.make_put(mesh)

  def run_ours():
    ours(put({"image": x})["image"], stats).block_until_ready()

  def run_scipy():
    np.log(np.abs(scipy.fft.dctn(x.astype(np.float32), type=2, norm="ortho", axes=(1, 2), workers=-1)) + 1e-12)

  # interleave the two so that load from elsewhere hits both alike
  t_ours, t_ref = [], []
  for _ in range(2):
    t_ours.append(scripts.median_seconds(run_ours, reps))
    t_ref.append(scripts.median_seconds(run_scipy, reps))
  ours_ips, ref_ips = batch / min(t_ours), batch / min(t_ref)
  check = np.asarray(spectral.dct2(x[:2]))
  err = np.abs(check - scipy.fft.dctn(x[:2].astype(np.float64), type=2, norm="ortho", axes=(1, 2))).max()
  return {"ours": ours_ips, "scipy": ref_ips, "ratio": ours_ips / ref_ips, "max_rel_err": err / np.abs(check).max()}


def main() -> None:
  args = scripts.bench_parser(__doc__, reps=7, sizes="128:256,1024:8").parse_args()
  print(scripts.machine_line(f"scipy {scipy.__version__}"))
  print("| batch | features(dct_log) img/s | scipy dctn + log img/s | ratio | max error / max coefficient |")
  print("|---|---|---|---|---|")
  for size, batch in scripts.size_batches(args.sizes):
    r = bench(size, batch, args.reps)
    print(
      f"| {batch} x {size}x{size}x3 | {r['ours']:,.0f} | {r['scipy']:,.0f} | {r['ratio']:.2f} | {r['max_rel_err']:.1e} |"
    )


if __name__ == "__main__":
  main()
