"""The `baseline` part of a config: which classic baseline, its grids, subsets and memory budget.

`add_fields(config, name)` extends the base config (`defaults.base_config`) with these fields, so a
baseline run reads the same prepared data (`config.data`) and features (`config.features`) as the
neural models. Grids follow SPEC.md section 3. A chosen value of 0 means "the best grid point of
this work dir's grid search".
"""

from __future__ import annotations

import ml_collections

from freqforensics.errors import UserError

NAMES: tuple[str, ...] = ("knn", "eigenfaces", "prnu")
KNN_GRID: tuple[int, ...] = (1,) + tuple(2**i + 1 for i in range(1, 11))  # 1, 3, 5, 9, 17, ..., 1025
VARIANCE_GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 0.95)
C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 0.1)
LEVELS_GRID: tuple[int, ...] = (1, 2, 3, 4)
SIGMA_GRID: tuple[float, ...] = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95)


def add_fields(c: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """Adds `c.baseline` for baseline `name` (knn | eigenfaces | prnu); returns `c`."""
  if name not in NAMES:
    raise ValueError(f"unknown baseline {name!r}; expected one of {', '.join(NAMES)}")
  b = c.baseline = ml_collections.ConfigDict()
  b.name = name  # knn | eigenfaces | prnu
  b.train_per_class = 0  # class-balanced training subset: at most this many images per class; 0 = all
  b.memory_gb = 4.0  # budget for arrays held in memory (training features, PCA subset, accumulators)
  b.n_jobs = 0  # worker processes / threads (kNN search, PRNU residuals); 0 = one per core
  b.batch_size = 256  # images read and transformed at a time
  b.checkpoint_every = 4  # grid search: save the progress of a pass every this many batches (resume)

  b.knn = ml_collections.ConfigDict()
  b.knn.grid = KNN_GRID  # n_neighbors values of the grid search
  b.knn.n_neighbors = 0  # train: this k; 0 = the grid search's best

  b.eigenfaces = ml_collections.ConfigDict()
  b.eigenfaces.pca_subset = 10000  # class-balanced training images the PCA is fitted on
  b.eigenfaces.variance_grid = VARIANCE_GRID  # PCA keeps the fewest components explaining this share
  b.eigenfaces.c_grid = C_GRID  # linear SVM penalty C
  b.eigenfaces.variance = 0.0  # train: this share; 0 = the grid search's best
  b.eigenfaces.C = 0.0  # train: this C; 0 = the grid search's best
  b.eigenfaces.max_iter = 2000  # LinearSVC iterations
  b.eigenfaces.incremental_components = 512  # components of IncrementalPCA (PCA subset over memory_gb)

  b.prnu = ml_collections.ConfigDict()
  b.prnu.levels_grid = LEVELS_GRID  # wavelet decomposition levels (db4)
  b.prnu.sigma_grid = SIGMA_GRID  # noise std of the wavelet Wiener filter, in 0..255 pixel units
  b.prnu.windows = (3, 5, 7, 9)  # local-variance windows of the adaptive Wiener filter
  b.prnu.levels = 0  # train: these levels; 0 = the grid search's best
  b.prnu.sigma = 0.0  # train: this sigma; 0 = the grid search's best
  return c


def check(c: ml_collections.ConfigDict) -> None:
  """One clear line for values that cannot work."""
  b = c.baseline
  if b.name not in NAMES:
    raise UserError(f"unknown baseline.name {b.name!r}: use one of {', '.join(NAMES)}")
  if b.batch_size < 1 or b.checkpoint_every < 1:
    raise UserError("baseline.batch_size and baseline.checkpoint_every must be at least 1")
  if b.train_per_class < 0 or b.memory_gb <= 0:
    raise UserError("baseline.train_per_class must be >= 0 (0 = all) and baseline.memory_gb > 0")
  if b.name == "knn" and (not b.knn.grid or min(b.knn.grid) < 1):
    raise UserError(f"baseline.knn.grid must hold positive integers, got {tuple(b.knn.grid)}")
  if b.name == "eigenfaces":
    e = b.eigenfaces
    if not e.variance_grid or not all(0 < v <= 1 for v in e.variance_grid) or not 0 <= e.variance <= 1:
      raise UserError("baseline.eigenfaces variances must lie in (0, 1]")
    if not e.c_grid or min(e.c_grid) <= 0 or e.C < 0:
      raise UserError("baseline.eigenfaces.c_grid and C must be positive")
    if e.pca_subset < 1 or e.incremental_components < 1:
      raise UserError("baseline.eigenfaces.pca_subset and incremental_components must be at least 1")
  if b.name == "prnu":
    p = b.prnu
    if not p.levels_grid or not all(1 <= v <= 8 for v in p.levels_grid) or not 0 <= p.levels <= 8:
      raise UserError("baseline.prnu levels must lie in 1..8")
    if not p.sigma_grid or min(p.sigma_grid) <= 0 or p.sigma < 0:
      raise UserError("baseline.prnu sigmas must be positive")
    if not p.windows or min(p.windows) < 1:
      raise UserError("baseline.prnu.windows must be positive odd sizes such as (3, 5, 7, 9)")
