"""Multi-host start-up: JAX's own distributed runtime, one process per host (or per GPU group).

`--config.distributed=True` calls `jax.distributed.initialize` before anything touches a device.
On SLURM, Open MPI and TPU pods every argument is detected from the environment; elsewhere give
`coordinator_address` (host:port of process 0), `num_processes` and `process_id`. On CPUs the
cross-process collectives use gloo. Afterwards `jax.devices()` lists every host's devices, the
('data',) mesh spans them all, and each process feeds only its own share of every batch.
"""

from __future__ import annotations

import jax
import ml_collections

from freqforensics.errors import UserError


def initialize(config: ml_collections.ConfigDict) -> None:
  """Joins the distributed runtime when `config.distributed` is set; a no-op otherwise."""
  if not config.distributed:
    return
  kwargs = {}
  if config.coordinator_address:
    kwargs.update(coordinator_address=config.coordinator_address, num_processes=config.num_processes,
                  process_id=config.process_id)
    if config.num_processes < 1 or not 0 <= config.process_id < config.num_processes:
      raise UserError(f"distributed run with coordinator {config.coordinator_address}: set num_processes >= 1 and"
                      f" 0 <= process_id < num_processes (got {config.num_processes}, {config.process_id})")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only used when the devices are CPUs
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    raise UserError(f"could not start the distributed runtime ({e}); outside SLURM/Open MPI give"
                    " --config.coordinator_address=HOST:PORT, --config.num_processes and --config.process_id") from e


def is_main_process() -> bool:
  """Process 0 writes metrics, metric files and the model bundle; the others only compute."""
  return jax.process_index() == 0
