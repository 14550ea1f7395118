r"""FFHQ vs StyleGAN, binary (one sigmoid output), at 1024x1024: `log2` on log-DCT features.

The paper's high-resolution experiment: 10,000/1,000/5,000 images per class, used as they are
(crop `none`; any image not 1024x1024 is skipped and listed). A smaller size by override:
prepare with --crop=resize --image_size=256 (or 512) and train with the same config.

Commands (DATA = one folder per class: 0_ffhq 1_stylegan):
  # 1. prepare once (all cores, resumable; images as the paper cut them: crop `none`)
  python -m freqforensics.tools.prepare --source_dir=DATA --out_dir=PREPARED --crop=none \
      --image_size=1024 --split=10000,1000,5000
  # 2. mean spectra of the real class against each generator (PNG + npz)
  python -m freqforensics.tools.compare_spectra --out_dir=runs/ffhq_spectra --num=10000 PREPARED
  # 3. train, then test on the test split (metrics in WORKDIR/test_metrics.json)
  python -m freqforensics.main --config=configs/ffhq_log2.py --workdir=runs/ffhq_log2 \
      --config.data.prepared_dir=PREPARED
  #    on pixels instead of log-DCT features: --config=configs/ffhq_log2.py:pixel
  # 4. test again later, or on another split / folder
  python -m freqforensics.main --config=configs/ffhq_log2.py --workdir=runs/ffhq_log2 --config.mode=eval \
      --config.data.prepared_dir=PREPARED

Expected on the real data: the paper reports the linear model on DCT features far above the same
model on pixels; the DCT spectrum shows StyleGAN's upsampling grid.
Tiny form, on a synthetic stand-in of the same folder layout and image geometry (standins.py):
  python -m freqforensics.main --config=configs/ffhq_log2.py:tiny --workdir=/tmp/ffhq_log2_tiny
Measured on 2 CPU cores (30 images per class, 64x64, 2 epochs, tiny model): 17 s including the
stand-in's generation, test accuracy 0.917 on 12 images: a smoke run of the whole path (prepare
with crop `none`, statistics, training, test).
"""

from __future__ import annotations

import ml_collections

from freqforensics import defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = defaults.base_config()
  c.model.name = "log2"
  c.features = "dct_log"  # `:pixel` for the pixel baseline
  c.data.source = "folder"  # --config.data.source_dir=DATA, or --config.data.prepared_dir=PREPARED
  c.data.classes = ("0_ffhq", "1_stylegan")
  c.data.crop = "none"  # images used as they are: every one must be 1024x1024
  c.data.image_size = 1024
  c.data.split = (10000, 1000, 5000)  # per class, the paper's
  return defaults.paper_variant(c, arg, standin="ffhq")  # `:tiny` runs on a synthetic stand-in
