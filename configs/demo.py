r"""The embedded default: the synthetic data set, `log2` ("ridge") on log-DCT features.

Command (from the repository root):
  python -m freqforensics.main --config=configs/demo.py --workdir=/tmp/ff_demo
Pixel baseline (one override):
  python -m freqforensics.main --config=configs/demo.py --workdir=/tmp/ff_demo_pixel --config.features=pixel
Tiny form (seconds): --config=configs/demo.py:tiny

Data: real crops of bundled photos + three simulated GAN generators (nearest, bilinear,
transposed-conv upsampling), 1000 images per class at 64x64, split 70/10/20 per class.
Measured on 2 CPU cores: about 35 s the first time (12 s of it generating the synthetic data), 16 s
with the data cached; test accuracy 0.998 for dct_log and 0.418 for pixel (README, "What the demo
shows"). Other models: --config.model.name=nn / cnn / resnet (0.999 / 0.999 / 0.998; resnet takes
about 80 s per epoch on 2 CPU cores, 21 epochs).
Tiny (60 images per class at 32x32, 3 epochs): 8 s, test accuracy 0.98 on 48 images.
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
