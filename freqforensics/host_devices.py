"""One JAX CPU device per core, so that data parallelism also uses every core of a CPU machine.

XLA runs the program of each device on its own thread. On a CPU, splitting a batch over one host
device per core (through the same ('data',) mesh used for GPUs) measured ~1.8x the throughput of
one device with intra-op threading (`launch/bench_spectral.py`). The flag must be set before JAX
initialises its backends, so entry points call `use_all_cores()` before importing jax. On GPU
machines it only adds host devices that nothing uses; a value the user set is left alone.

With several CPU devices the loops wait for each step before dispatching the next
(`sharding.settle`): see there why.
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def device_count_for(cores: int) -> int:
  """The largest power of two not above `cores` (6 -> 4): the usual batch sizes split evenly."""
  return 1 << (max(1, cores).bit_length() - 1)


def use_all_cores(count: int | None = None) -> None:
  """Asks XLA for `count` CPU devices, unless XLA_FLAGS already says.

  The default is the largest power of two not above the usable cores (6 cores -> 4 devices), so
  that the usual power-of-two batch sizes split evenly; devices still use intra-op threads.
  """
  if "jax" in sys.modules and "jax._src.xla_bridge" in sys.modules:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top

    if xla_bridge.backends_are_initialized():
      return  # too late to change; keep what the process has
  flags = os.environ.get("XLA_FLAGS", "")
  if _FLAG not in flags and not os.environ.get("JAX_NUM_CPU_DEVICES"):
    if count is None:
      cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
      count = device_count_for(cores)
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count}".strip()
