r"""Benchmark: training samples/s, the full loop (data pipeline included) beside the bare jitted step.

  python launch/bench_train.py [--models=log2,cnn,resnet] [--size=128] [--steps=30]

For each model on `dct_log` features at SIZE x SIZE x 3 (the synthetic data set, generated and
prepared once under $FREQFORENSICS_DATA): the full loop is exactly what `train.py` runs per step
(grain reads and batches array_record records, the batch is placed on the ('data',) mesh, the
jitted step runs); the bare step repeats the same jitted step on one batch already on the devices.
Both are timed over up to `--steps` steps (fewer where one step is slow) after a warm-up, to a
finished result. The pipeline reads batches in background threads while the devices compute, so
the full loop should come close to the bare step.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

from freqforensics import host_devices

host_devices.use_all_cores()

import jax  # noqa: E402  (after the XLA flag)

from freqforensics import defaults, sharding, stats, steps  # noqa: E402
from freqforensics.data import loading, pipeline, reader  # noqa: E402


def config_for(model: str, size: int, num_per_class: int = 400):
  """The base config with `model` on the synthetic data set at SIZE x SIZE (the paper's batch 32), quiet."""
  c = defaults.base_config()
  c.model.name = model
  c.data.image_size = size
  c.data.synthetic.image_size = size
  c.data.synthetic.num_per_class = num_per_class
  c.progress = False
  return c


def time_training(config, prepared, num_steps: int, *, warmup: int = 2, max_seconds: float = 20.0) -> dict[str, float]:
  """Samples/s of `config`'s model on `prepared` (dct_log): the full loop as `train.py` runs it, and the bare step.

  After `warmup` steps (compilation, pipeline start) one step is timed to size the measurement: at
  most `num_steps` steps and no more than about `max_seconds` (resnet at 128x128 on a CPU), at least 3.
  """
  mesh = sharding.make_mesh(steps.num_devices(config))
  put = sharding.make_put(mesh)
  fs, _ = stats.feature_stats(prepared, "dct_log", mesh, batch_size=config.eval.batch_size, progress=False)
  fs = jax.device_put(fs, sharding.replicated(mesh))
  source = reader.maybe_in_memory(prepared.source("train"), config.data.cache_gb)  # as train.py does
  per_epoch = pipeline.num_train_steps(len(source), config.train.batch_size)
  graphdef, state, _ = steps.create_state(config, prepared.image_shape, len(prepared.label_names), per_epoch)
  state = jax.device_put(state, sharding.replicated(mesh))
  step = steps.make_train_step(graphdef, "dct_log", mesh)
  bs = config.train.batch_size

  def batches():
    epoch = 0
    while True:
      epoch += 1
      yield from pipeline.train_batches(source, bs, seed=0, epoch=epoch, num_threads=2)

  it = batches()
  for _ in range(warmup):
    state, sums = sharding.settle(mesh, step(state, put(next(it)), fs))
  jax.block_until_ready(sums)
  start = time.perf_counter()
  state, sums = sharding.settle(mesh, step(state, put(next(it)), fs))
  jax.block_until_ready(sums)
  num_steps = max(3, min(num_steps, int(max_seconds / (time.perf_counter() - start))))
  start = time.perf_counter()
  for _ in range(num_steps):
    state, sums = sharding.settle(mesh, step(state, put(next(it)), fs))
  jax.block_until_ready(sums)
  full = num_steps * bs / (time.perf_counter() - start)

  batch = put(next(it))
  state, sums = step(state, batch, fs)
  jax.block_until_ready(sums)
  start = time.perf_counter()
  for _ in range(num_steps):
    state, sums = sharding.settle(mesh, step(state, batch, fs))
  jax.block_until_ready(sums)
  bare = num_steps * bs / (time.perf_counter() - start)
  return {"full": full, "bare": bare, "steps": num_steps}


def bench(model: str, size: int, num_steps: int, num_per_class: int) -> dict[str, float]:
  """`time_training` of `model` on the synthetic data set at SIZE (generated and prepared once)."""
  config = config_for(model, size, num_per_class)
  return time_training(config, loading.prepare_from_config(config, progress=False), num_steps)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="log2,cnn,resnet")
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--num_per_class", type=int, default=400, help="synthetic images per class")
  args = parser.parse_args()
  import os  # pylint: disable=g-import-not-at-top

  os.environ.setdefault("FREQFORENSICS_DATA", os.path.join(tempfile.gettempdir(), "freqforensics_bench"))
  print(
    f"# {platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__},"
    f" batch 32, {args.size}x{args.size}x3, dct_log"
  )
  print("| model | full loop samples/s | bare step samples/s | full / bare | timed steps |")
  print("|---|---|---|---|---|")
  for model in args.models.split(","):
    r = bench(model, args.size, args.steps, args.num_per_class)
    print(f"| {model} | {r['full']:,.0f} | {r['bare']:,.0f} | {r['full'] / r['bare']:.2f} | {r['steps']} |", flush=True)


if __name__ == "__main__":
  main()
