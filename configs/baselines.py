r"""The classic baselines of the paper (kNN, Eigenfaces, PRNU) on the synthetic data set.

Commands (from the repository root), NAME = knn (the default) | eigenfaces | prnu:
  python -m freqforensics.tools.classic_baselines grid_search --config=configs/baselines.py:NAME --workdir=runs/baselines
  python -m freqforensics.tools.classic_baselines train --config=configs/baselines.py:NAME --workdir=runs/baselines
  python -m freqforensics.tools.classic_baselines test --config=configs/baselines.py:NAME --workdir=runs/baselines --split=val
Your class folders: add --config.data.source=folder --config.data.source_dir=DIR --config.data.image_size=128.
kNN and Eigenfaces take `features` (pixel, the paper's setting, or dct_log); PRNU works on pixels.
Tiny form (seconds): configs/baselines.py:NAME,tiny (or :tiny for knn); kNN tiny: about 10 s.

Data: the demo's synthetic data (4 classes x 1,000 images at 64x64, split 70/10/20). Measured on 2 CPU
cores by launch/baselines_table.py (README, "Classic baselines"): best grid points and test
accuracies there.
"""

from __future__ import annotations

import ml_collections

from freqforensics import defaults
from freqforensics.baselines import config as bconfig


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  parts = [p for p in (arg or "").split(",") if p]
  names = [p for p in parts if p in bconfig.NAMES] or ["knn"]
  unknown = [p for p in parts if p not in bconfig.NAMES and p != "tiny"]
  if len(names) != 1 or unknown:
    raise ValueError(
      f"unknown config argument {arg!r}: configs/baselines.py takes one of"
      f" {', '.join(bconfig.NAMES)}, optionally with ',tiny'"
    )
  c = defaults.base_config()
  c.features = "pixel"  # the paper's classic baselines work on pixels; dct_log is one override away
  bconfig.add_fields(c, names[0])
  if "tiny" in parts:
    defaults.shrink_tiny(c)
    c.baseline.batch_size = 32
    c.baseline.eigenfaces.pca_subset = 200
  return c
