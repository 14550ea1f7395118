r"""The embedded default: the synthetic benchmark, `log2` ("ridge") on log-DCT features.

Command (from the repository root):
  python -m freqforensics.main --config=configs/demo.py --workdir=/tmp/ff_demo
Pixel baseline (one override):
  python -m freqforensics.main --config=configs/demo.py --workdir=/tmp/ff_demo_pixel --config.features=pixel
Tiny form (seconds): --config=configs/demo.py:tiny

Data: real crops of bundled photos + three simulated GAN generators (nearest, bilinear,
transposed-conv upsampling), 1000 images per class at 64x64, split 70/10/20 per class.
Expected on 2 CPU cores: about 1-2 minutes the first time (generation, preparation, statistics,
training); test accuracy about 0.99 for dct_log, about 0.5 for pixel (see README).
"""

from __future__ import annotations

import ml_collections

from freqforensics import defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = defaults.base_config()
  if arg == "tiny":
    defaults.shrink_tiny(c)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; the only one is 'tiny'")
  return c
