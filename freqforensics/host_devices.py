"""One JAX CPU device per core, so that data parallelism also uses every core of a CPU machine.

XLA runs the program of each device on its own thread. On a CPU, splitting a batch over one host
device per core (through the same ('data',) mesh used for GPUs) measured ~1.8x the throughput of
one device with intra-op threading (`launch/bench_spectral.py`). The flag must be set before JAX
initialises its backends, so entry points call `use_all_cores()` before importing jax. On GPU
machines it only adds host devices that nothing uses; a value the user set is left alone.
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def use_all_cores(count: int | None = None) -> None:
  """Asks XLA for `count` (default: all usable cores) CPU devices, unless XLA_FLAGS already says."""
  if "jax" in sys.modules and "jax._src.xla_bridge" in sys.modules:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top

    if xla_bridge.backends_are_initialized():
      return  # too late to change; keep what the process has
  flags = os.environ.get("XLA_FLAGS", "")
  if _FLAG in flags or os.environ.get("JAX_NUM_CPU_DEVICES"):
    return
  if count is None:
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
  n = count
  os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={n}".strip()
