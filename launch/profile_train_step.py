r"""Profile: where one training step of a model on `dct_log` features spends its time, part by part.

  python launch/profile_train_step.py [--model=log2] [--size=128] [--reps=30]
  XLA_FLAGS=--xla_force_host_platform_device_count=1 python launch/profile_train_step.py   # one CPU device

Each part of the step `train.py` runs (`steps.make_train_step`) is jitted on its own, on the same
('data',) mesh with the same shardings, and timed to a finished result (median over `--reps` runs
after a warm-up, milliseconds per global batch of 32; every part once per round, `--rounds` rounds,
reported as the min and the median over rounds: on a shared machine the min is the better estimate): host-to-device placement of the uint8 batch,
the per-device DCT, DCT + log, the full feature (DCT + log + standardisation), the model's forward +
backward pass on ready features (the gradient all-reduce included), the Adam update, the step
without its features, and the bare step itself. Then the input pipeline: grain producing batches
alone, the full loop (grain + placement + step) with 1 and 2 reading threads, the same loop reading
each batch in its own thread (no grain), and the bare step with a fresh placement of the batch. Separately jitted
parts each pay a dispatch and a wait, so they add up to more than the fused step; the differences
(bare step - step without features) are the better estimate of a fused part's cost.

Data: the synthetic data set at SIZE (prepared once under $FREQFORENSICS_DATA), the training split
held in memory as `train.py` holds it. Training code is used as it is; nothing here changes it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile

from freqforensics import host_devices

host_devices.use_all_cores()

import jax  # noqa: E402  (after the XLA flag)
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from freqforensics import sharding, spectral, stats, steps  # noqa: E402
from freqforensics.data import loading, pipeline, reader  # noqa: E402
from freqforensics.models import heads  # noqa: E402
from freqforensics.tools import scripts  # noqa: E402


def timed(fn, reps: int) -> float:
  """Median milliseconds of `fn()` (which must wait for its result) over `reps` runs after two warm-ups."""
  return 1e3 * scripts.median_seconds(fn, reps, warmups=2)


def profile(model: str, size: int, reps: int, num_per_class: int, rounds: int) -> list[tuple[str, float, float]]:
  """(part, min, median) ms per batch over `rounds` rounds, for one training step of `model` at SIZE, batch 32."""
  import bench_train  # pylint: disable=g-import-not-at-top

  config = bench_train.config_for(model, size, num_per_class)
  prepared = loading.prepare_from_config(config, progress=False)
  mesh = sharding.make_mesh(steps.num_devices(config))
  put = sharding.make_put(mesh)
  rep = sharding.replicated(mesh)
  fs = jax.device_put(stats.feature_stats(prepared, "dct_log", mesh, batch_size=256, progress=False)[0], rep)
  source = reader.maybe_in_memory(prepared.source("train"), config.data.cache_gb)
  graphdef, state, _ = steps.create_state(config, prepared.image_shape, len(prepared.label_names), 1)
  state = jax.device_put(state, rep)
  bs = config.train.batch_size
  host = next(pipeline.train_batches(source, bs, seed=0, epoch=1, num_threads=1))
  batch = put(host)
  rows: list[tuple] = []  # (part, callable that waits for its result[, images per 32 it handles / 32])

  rows.append(("host-to-device placement (put: image + label)", lambda: jax.block_until_ready(put(host))))
  put_image = sharding.make_put(mesh)
  rows.append(("  of it, the image alone", lambda: jax.block_until_ready(put_image({"image": host["image"]}))))
  dct = jax.jit(sharding.per_device(mesh, spectral.dct2))
  rows.append(("DCT (per device)", lambda: dct(batch["image"]).block_until_ready()))
  by_matmul = jax.jit(sharding.per_device(mesh, lambda x: spectral.dct2(x, method="matmul")))
  rows.append(("  DCT by matrix products instead (a candidate)", lambda: by_matmul(batch["image"]).block_until_ready()))
  dct_log = jax.jit(sharding.per_device(mesh, lambda x: spectral.log_scale(spectral.dct2(x))))
  rows.append(("DCT + log", lambda: dct_log(batch["image"]).block_until_ready()))
  features = jax.jit(sharding.features_fn(mesh, "dct_log"))
  rows.append(
    ("DCT + log + standardise (the step's features)", lambda: features(batch["image"], fs).block_until_ready())
  )
  x = features(batch["image"], fs)

  def loss_fn(model, x, labels):
    logits = model(x, train=True)
    return jnp.mean(heads.per_example_loss(logits, labels)) + model.penalty()

  def grads_fn(state, x, labels):
    model, _ = nnx.merge(graphdef, state)
    return nnx.grad(loss_fn)(model, x, labels)

  grads = jax.jit(grads_fn, out_shardings=rep)
  rows.append(
    ("model forward + backward on ready features", lambda: jax.block_until_ready(grads(state, x, batch["label"])))
  )
  g = grads(state, x, batch["label"])

  def update_fn(state, g):
    model, optimizer = nnx.merge(graphdef, state)
    optimizer.update(model, g)
    return nnx.state((model, optimizer))

  update = jax.jit(update_fn, donate_argnums=0, out_shardings=rep)
  holder = [jax.tree.map(jnp.copy, state)]

  def run_update():
    holder[0] = update(holder[0], g)
    jax.block_until_ready(holder[0])

  rows.append(("Adam update", run_update))

  def step_on_features(state, x, labels):
    model, optimizer = nnx.merge(graphdef, state)
    loss, g = nnx.value_and_grad(loss_fn)(model, x, labels)
    optimizer.update(model, g)
    return nnx.state((model, optimizer)), loss

  no_features = jax.jit(step_on_features, donate_argnums=0, out_shardings=(rep, rep))
  holder = [jax.tree.map(jnp.copy, state)]

  def run_no_features():
    holder[0], loss = no_features(holder[0], x, batch["label"])
    jax.block_until_ready(loss)

  rows.append(("step without features (forward, backward, update)", run_no_features))
  step = steps.make_train_step(graphdef, "dct_log", mesh)
  holder = [jax.tree.map(jnp.copy, state)]

  def run_step():
    holder[0], sums = sharding.settle(mesh, step(holder[0], batch, fs))
    jax.block_until_ready(sums)

  rows.append(("bare step (train.py's jitted step)", run_step))

  for threads in (1, 2):

    def batches(threads=threads):
      epoch = 0
      while True:
        epoch += 1
        yield from pipeline.train_batches(source, bs, seed=0, epoch=epoch, num_threads=threads)

    it = batches()
    rows.append((f"grain alone: one batch, {threads} reading thread(s)", lambda it=it: next(it)))
    it = batches()

    def run_loop(it=it):
      holder[0], sums = sharding.settle(mesh, step(holder[0], put(next(it)), fs))
      jax.block_until_ready(sums)

    rows.append((f"full loop step (grain + put + step), {threads} reading thread(s)", run_loop))

  order = iter(range(10**9))
  n_batches = pipeline.num_train_steps(len(source), bs)

  def run_sync():  # the same loop without grain: the batch is read in this thread, nothing runs beside XLA
    b = next(order) % n_batches
    holder[0], sums = sharding.settle(mesh, step(holder[0], put(source.read_batch(range(b * bs, (b + 1) * bs))), fs))
    jax.block_until_ready(sums)

  rows.append(("full loop step without grain (read in the loop's thread)", run_sync))

  def run_new_batch():  # the bare step, but each step on a newly placed batch (no reading at all)
    holder[0], sums = sharding.settle(mesh, step(holder[0], put(host), fs))
    jax.block_until_ready(sums)

  rows.append(("bare step + put of the (same) host batch each step", run_new_batch))

  big = jax.jit(sharding.features_fn(mesh, "dct_log"))
  host256 = {"image": jnp.tile(host["image"], (8, 1, 1, 1))}
  big_batch = sharding.make_put(mesh)({"image": jax.device_get(host256["image"])})
  rows.append(("features at batch 256, per 32 images", lambda: big(big_batch["image"], fs).block_until_ready(), 8))
  for _, fn, *_ in rows:  # compile and warm everything before the first timing
    fn()
  results: dict[str, list[float]] = {name: [] for name, *_ in rows}
  for _ in range(rounds):  # every part once per round: load from elsewhere hits all parts alike
    for name, fn, *per in rows:
      results[name].append(timed(fn, reps) / (per[0] if per else 1))
  return [(name, min(v), statistics.median(v)) for name, v in results.items()]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="log2")
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--reps", type=int, default=30, help="timed runs per part and round (median)")
  parser.add_argument("--rounds", type=int, default=3, help="rounds over all parts (min and median of the medians)")
  parser.add_argument("--num_per_class", type=int, default=200, help="synthetic images per class")
  args = parser.parse_args()
  os.environ.setdefault("FREQFORENSICS_DATA", os.path.join(tempfile.gettempdir(), "freqforensics_bench"))
  load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
  print(
    f"# {platform.node()}, {jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__},"
    f" XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load average {load}"
  )
  print(
    f"# {args.model}, batch 32, {args.size}x{args.size}x3, dct_log; {args.rounds} rounds of every part, each the"
    f" median of {args.reps} runs"
  )
  rows = profile(args.model, args.size, args.reps, args.num_per_class, args.rounds)
  bare = {name: low for name, low, _ in rows}["bare step (train.py's jitted step)"]
  print("| part | ms per batch of 32, min over rounds | median over rounds | min as share of the bare step's min |")
  print("|---|---|---|---|")
  for name, low, median in rows:
    print(f"| {name} | {low:.2f} | {median:.2f} | {100 * low / bare:.0f}% |")


if __name__ == "__main__":
  main()
