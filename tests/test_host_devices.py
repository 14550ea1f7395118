"""One CPU device per core: a power of two, and never over a value the user set."""

from __future__ import annotations

import os
import subprocess
import sys

from freqforensics import host_devices


def test_device_count_is_the_largest_power_of_two_not_above_the_cores():
  assert [host_devices.device_count_for(c) for c in (1, 2, 3, 4, 6, 8, 12, 16, 0)] == [1, 2, 2, 4, 4, 8, 8, 16, 1]


def _devices_in_fresh_process(env_extra: dict[str, str]) -> int:
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  env.update(env_extra, JAX_PLATFORMS="cpu")
  code = "from freqforensics import host_devices; host_devices.use_all_cores(3); import jax; print(jax.device_count())"
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
  return int(out.stdout.strip().splitlines()[-1])


def test_use_all_cores_sets_the_flag_before_jax_starts_and_respects_the_user():
  assert _devices_in_fresh_process({}) == 3
  assert _devices_in_fresh_process({"XLA_FLAGS": "--xla_force_host_platform_device_count=5"}) == 5
