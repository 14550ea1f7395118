"""Ordered parallel map over worker processes, with a bounded number of tasks in flight.

PRNU residuals are NumPy/PyWavelets work that holds the GIL, so they scale over processes, not
threads. Workers are started with `spawn` (the parent runs JAX, which is multithreaded and must
not be forked) and import only NumPy, SciPy and PyWavelets: the parent reads the images and sends
them (a chunk of 256 images at 64x64x3 is 3 MB), so workers start fast. Results come back
in task order, so a pass can checkpoint "the first n tasks are done" and resume after them. Each
worker limits its BLAS/OpenMP pools to one thread: N workers with N threads each on N cores
oversubscribe them, and spinning BLAS threads then slow everything down.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def _one_thread() -> None:
  from threadpoolctl import threadpool_limits  # pylint: disable=g-import-not-at-top

  threadpool_limits(limits=1)


def ordered_map(fn: Callable[..., Any], tasks: Iterable[tuple], n_jobs: int) -> Iterator[Any]:
  """`fn(*task)` for every task, in order; in `n_jobs` processes (in this process when 1)."""
  if n_jobs <= 1:
    for task in tasks:
      yield fn(*task)
    return
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_one_thread) as pool:
    pending: collections.deque = collections.deque()
    for task in tasks:
      pending.append(pool.submit(fn, *task))
      if len(pending) >= 2 * n_jobs:  # bounded: results (accumulators) can be large
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
