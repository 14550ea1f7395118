r"""Benchmark: PRNU residual throughput in one process and over worker processes.

  python launch/bench_prnu.py [--images=768] [--chunk=128] [--repeats=3]

On the synthetic data set's prepared training split (64x64x3; generated and prepared if missing),
times the two passes of PRNU (`noise_residuals.accumulate`: residuals plus fingerprint sums; `noise_residuals.predict`:
residuals, DFT Wiener and correlation) on chunks read beforehand, for the whole default grid (4 levels
x 10 sigmas = 40 residuals per image) and for one grid point, with `n_jobs` = 1 and one worker
process per core (`parallel.ordered_map`, spawn; start-up included). Images/s counts images, not
residuals. The two settings alternate `--repeats` times and the best of each is shown: on a shared
machine other users' load only ever slows a run down.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from freqforensics.baselines import config as bconfig
from freqforensics.baselines import noise_residuals, parallel


def _time(fn, tasks, n_jobs: int) -> float:
  start = time.perf_counter()
  for _ in parallel.ordered_map(fn, tasks, n_jobs):
    pass
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=768)
  parser.add_argument("--chunk", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  # Imported here, not at the top: spawned workers import this script as their main module, and
  # should load only what the baselines' command line loads (NumPy, SciPy, PyWavelets), not JAX.
  from freqforensics import defaults  # pylint: disable=g-import-not-at-top
  from freqforensics.data import loading  # pylint: disable=g-import-not-at-top

  prepared = loading.prepare_from_config(defaults.base_config(), progress=False)
  source = prepared.source("train")
  n = min(args.images, len(source))
  chunks = [np.arange(i, min(n, i + args.chunk)) for i in range(0, n, args.chunk)]
  windows = (3, 5, 7, 9)
  full = [(lv, s) for lv in bconfig.LEVELS_GRID for s in bconfig.SIGMA_GRID]
  cores = len(os.sched_getaffinity(0))
  c = len(prepared.label_names)
  prints = np.random.default_rng(0).normal(size=(len(full), c) + prepared.image_shape[:2])
  print(
    f"# {platform.machine()}, {cores} cores, {n} images {prepared.image_shape}, chunks of {args.chunk},"
    f" best of {args.repeats}"
  )
  print(f"| pass | grid points | images/s, 1 process | images/s, {cores} worker processes | speed-up |")
  print("|---|---|---|---|---|")
  batches = [source.read_batch(ch) for ch in chunks]
  for name, fn, extra in (
    ("fingerprint sums", noise_residuals.accumulate, lambda b, g: (b["image"], b["label"], c, g, windows)),
    ("scoring", noise_residuals.predict, lambda b, g: (b["image"], g, windows, prints[: len(g)])),
  ):
    for grid in (full, full[:1]):
      tasks = [extra(b, grid) for b in batches]
      one, many = float("inf"), float("inf")
      for _ in range(args.repeats):
        one, many = min(one, _time(fn, tasks, 1)), min(many, _time(fn, tasks, cores))
      print(f"| {name} | {len(grid)} | {n / one:,.0f} | {n / many:,.0f} | {one / many:.2f} |")


if __name__ == "__main__":
  main()
