r"""LSUN bedroom GAN attribution, 5 classes at 128x128: `log2` on log-DCT features.

Real LSUN bedrooms + ProGAN, SNGAN, CramerGAN and MMDGAN images, 100,000/20,000/30,000
per class (the paper's split), the paper's "ridge" (logistic regression, L2 kernel penalty).

Commands (DATA = one folder per class: 0_lsun_bedroom 1_progan 2_sngan 3_cramergan 4_mmdgan):
  # 1. prepare once (all cores, resumable; images as the paper cut them: crop `center`)
  python -m freqforensics.tools.prepare --source_dir=DATA --out_dir=PREPARED --crop=center \
      --image_size=128 --split=100000,20000,30000
  # 2. mean spectra of the real class against each generator (PNG + npz)
  python -m freqforensics.tools.compare_spectra --out_dir=runs/lsun_spectra --num=10000 PREPARED
  # 3. train, then test on the test split (metrics in WORKDIR/test_metrics.json)
  python -m freqforensics.main --config=configs/lsun_log2.py --workdir=runs/lsun_log2 \
      --config.data.prepared_dir=PREPARED
  #    on pixels instead of log-DCT features: --config=configs/lsun_log2.py:pixel
  # 4. test again later, or on another split / folder
  python -m freqforensics.main --config=configs/lsun_log2.py --workdir=runs/lsun_log2 --config.mode=eval \
      --config.data.prepared_dir=PREPARED

Expected on the real data: the paper's attribution results have the DCT models well above the same
models on pixels and above the kNN / Eigenfaces / PRNU baselines.
Tiny form, on a synthetic stand-in of the same folder layout and image geometry (standins.py):
  python -m freqforensics.main --config=configs/lsun_log2.py:tiny --workdir=/tmp/lsun_log2_tiny
Measured on 2 CPU cores (30 images per class, 64x64, 2 epochs, tiny model): 15 s including the
stand-in's generation, test accuracy 0.7 on 30 images. A smoke run of the whole path (prepare
with the config's crop, statistics, training, test), too small to learn the fingerprints.
"""

from __future__ import annotations

import ml_collections

from freqforensics import defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = defaults.base_config()
  c.model.name = "log2"
  c.features = "dct_log"  # `:pixel` for the pixel baseline
  c.data.source = "folder"  # --config.data.source_dir=DATA, or --config.data.prepared_dir=PREPARED
  c.data.classes = ("0_lsun_bedroom", "1_progan", "2_sngan", "3_cramergan", "4_mmdgan")
  c.data.crop = "center"  # square centre crop of the short side, Lanczos resize
  c.data.image_size = 128
  c.data.split = (100000, 20000, 30000)  # per class, the paper's
  return defaults.paper_variant(c, arg, standin="lsun")  # `:tiny` runs on a synthetic stand-in
