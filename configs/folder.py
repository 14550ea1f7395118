r"""Any class-folder directory: `log2` on log-DCT features, the paper's ridge model.

Command:
  python -m freqforensics.main --config=configs/folder.py --workdir=/tmp/ff_run \
      --config.data.source_dir=/path/to/images --config.data.image_size=128
`source_dir` holds one folder per class (`A_real/`, `B_progan/`, ...); labels follow the sorted
folder names. Images are centre-cropped and resized to `data.image_size`.
Time and accuracy depend on the data. Measured on 2 CPU cores with the synthetic data set's folder
(4,000 PNGs, 64x64): preparation ~800 images/s, one training epoch over 2,800 images ~1 s, test
accuracy 1.000 (see configs/demo.py). The paper's data sets (LSUN, CelebA, FFHQ + GAN outputs)
cannot be downloaded here; point `source_dir` at them.
Tiny form (3 epochs, 32 px): --config=configs/folder.py:tiny
"""

from __future__ import annotations

import ml_collections

from freqforensics import defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = defaults.base_config()
  c.data.source = "folder"
  if arg == "tiny":
    defaults.shrink_tiny(c)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; the only one is 'tiny'")
  return c
