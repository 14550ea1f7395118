"""Devices and hosts: the ('data',) mesh, batch placement, per-device features, the multi-host start.

One mesh axis, `data`: batches are split over all devices, parameters are replicated. The same
code runs on 1 device, N devices (GPUs, or one CPU device per core, see `host_devices`) and N hosts
(`make_array_from_process_local_data` assembles each host's slice into one global array).

Multi-host start-up (`initialize`) is JAX's own distributed runtime, one process per host (or per
GPU group): `--config.distributed=True` calls `jax.distributed.initialize` before anything touches a
device. On SLURM, Open MPI and TPU pods every argument is detected from the environment; elsewhere
give `coordinator_address` (host:port of process 0), `num_processes` and `process_id`. On CPUs the
cross-process collectives use gloo. Afterwards `jax.devices()` lists every host's devices, the
('data',) mesh spans them all, and each process feeds only its own share of every batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from freqforensics import spectral
from freqforensics.errors import UserError


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D ('data',) mesh over the first `num_devices` devices (all by default)."""
  devices = jax.devices()[: num_devices or None]
  return jax.make_mesh((len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def make_put(mesh: jax.sharding.Mesh) -> Callable[[dict[str, np.ndarray]], dict[str, jax.Array]]:
  """Host batch (numpy) -> global arrays sharded over the mesh's 'data' axis."""
  sharding = NamedSharding(mesh, P("data"))

  def put(batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}

  return put


def per_device(mesh: jax.sharding.Mesh, fn: Callable[..., jax.Array], num_replicated: int = 0):
  """`fn(batch, *replicated_args)` run on each device's slice of the batch (shard_map).

  Used for the spectral transforms: they are per-example, so each device transforms its own
  images, in cache-sized chunks (`spectral.default_chunk` of the local batch), with no
  communication at all.
  """
  return jax.shard_map(fn, mesh=mesh, in_specs=(P("data"),) + (P(),) * num_replicated, out_specs=P("data"))


def features_fn(mesh: jax.sharding.Mesh, kind: str):
  """`(images, stats) -> model input`, per device; `stats` is None for `pixel`."""
  spectral.needs_stats(kind)  # validates the kind now rather than at trace time
  return per_device(mesh, lambda images, stats: spectral.features(images, kind, stats), num_replicated=1)


def raw_features_fn(mesh: jax.sharding.Mesh, kind: str):
  """`images -> feature before standardisation`, per device (for the statistics pass)."""
  return per_device(mesh, functools.partial(spectral.raw_features, kind=kind))


def to_host(tree):
  """Replicated device values (sums, metrics) as numpy, also in a multi-host run."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def settle(mesh: jax.sharding.Mesh, tree):
  """Waits for `tree` when the mesh has several CPU devices; returns it unchanged.

  XLA runs the devices' parts of a program on its CPU thread pool, one thread per core. With
  asynchronous dispatch the parts of consecutive programs (a step, the next step, a metric sum)
  could interleave there, and a cross-device all-reduce then waited forever for a participant
  that got no thread (reproduced: a 1.5M-parameter dense layer on 2 cores deadlocked within one
  epoch, never with this wait in 3,400 steps, and ran faster). GPUs and single devices keep
  asynchronous dispatch; the input pipeline's threads prepare the next batch meanwhile either way.
  """
  if mesh.size > 1 and mesh.devices.flat[0].platform == "cpu":
    jax.block_until_ready(tree)
  return tree


def gather(x: jax.Array) -> np.ndarray:
  """A batch-sharded global array as one numpy array on every host (per-example outputs)."""
  if jax.process_count() == 1:
    return np.asarray(x)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def barrier(name: str) -> None:
  """Every process waits here until all have arrived (e.g. until process 0 has written a shared file)."""
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  multihost_utils.sync_global_devices(name)


def initialize(config: ml_collections.ConfigDict) -> None:
  """Joins the distributed runtime when `config.distributed` is set; a no-op otherwise."""
  if not config.distributed:
    return
  kwargs = {}
  if config.coordinator_address:
    kwargs.update(
      coordinator_address=config.coordinator_address, num_processes=config.num_processes, process_id=config.process_id
    )
    if config.num_processes < 1 or not 0 <= config.process_id < config.num_processes:
      raise UserError(
        f"distributed run with coordinator {config.coordinator_address}: set num_processes >= 1 and"
        f" 0 <= process_id < num_processes (got {config.num_processes}, {config.process_id})"
      )
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only used when the devices are CPUs
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    raise UserError(
      f"could not start the distributed runtime ({e}); outside SLURM/Open MPI give"
      " --config.coordinator_address=HOST:PORT, --config.num_processes and --config.process_id"
    ) from e


def process_share() -> dict[str, int]:
  """`{"process_index", "process_count"}`: which share of a data set this process reads (the keyword
  arguments of the `pipeline` batch functions)."""
  return {"process_index": jax.process_index(), "process_count": jax.process_count()}


def is_main_process() -> bool:
  """Process 0 writes metrics, metric files and the model bundle; the others only compute."""
  return jax.process_index() == 0
