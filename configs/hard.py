r"""A harder synthetic data set: weaker generator fingerprints, every image JPEG-compressed; `log2` on log-DCT.

Command (from the repository root):
  python -m freqforensics.main --config=configs/hard.py --workdir=/tmp/ff_hard
Pixel baseline (one override):
  python -m freqforensics.main --config=configs/hard.py --workdir=/tmp/ff_hard_pixel --config.features=pixel
Tiny form (seconds): --config=configs/hard.py:tiny
Paper scripts on it: python launch/paper_attribution.py --config=configs/hard.py (and paper_few_samples.py,
paper_binary.py).

Data: the demo's synthetic data (real crops + nearest, bilinear and transposed-conv upsamplers, 1000
images per class at 64x64, split 70/10/20 per class) with `data.synthetic.fingerprint=0.35` (the
generators' kernel perturbation and texture noise at 35%) and `data.synthetic.jpeg_quality=75`
(Pillow's default quality; every image of every class, so it is no class cue).
Measured on 2 CPU cores (shared; times are noisy): test accuracy 0.8525 for dct_log (per class
real / nearest / bilinear / transposed: 0.965 / 0.970 / 0.840 / 0.635; real and fake stay apart,
the bilinear and transposed generators get confused) and 0.264 for pixel (chance 0.25). About 35 s
the first time (about 13 s of it generating and preparing the data), 22 s with the data cached;
pixel 9 s.
Settings tried (log2, dct_log test accuracy; the demo is 1.0 / off: 0.998):
  fingerprint 0.5 / 0.25, no JPEG: 0.996 / 0.998 (alone it does not make the task harder)
  JPEG 90 / 75 / 50, fingerprint 1.0: 0.995 / 0.985 / 0.939
  fingerprint 0.5 with JPEG 90 / 75 / 50: 0.989 / 0.941 / 0.820 (pixel at 0.5 / 90: 0.371)
  fingerprint 0.25 with JPEG 90 / 75 / 50: 0.954 / 0.784 / 0.743
  chosen: fingerprint 0.35, JPEG 75: 0.8525 (mid-range; a common web quality)
Tiny (60 images per class at 32x32, 3 epochs): 11 s, test accuracy 0.71 on 48 images (pixel 0.27).
"""

from __future__ import annotations

import ml_collections

from freqforensics import defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = defaults.base_config()
  c.data.synthetic.fingerprint = 0.35
  c.data.synthetic.jpeg_quality = 75
  if arg == "tiny":
    defaults.shrink_tiny(c)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; the only one is 'tiny'")
  return c
