r"""The synthetic data set with trained generators: real crops vs four GANs and two autoencoder decoders; `log2` on log-DCT.

Command (from the repository root):
  python -m freqforensics.main --config=configs/families.py --workdir=/tmp/ff_families
Pixel baseline (one override):
  python -m freqforensics.main --config=configs/families.py --workdir=/tmp/ff_families_pixel --config.features=pixel
Tiny form (seconds): --config=configs/families.py:tiny
Every table of docs/generator_families.md (log2 and cnn, pixels and log-DCT, multi-class and real vs each
family): python launch/families_accuracy.py [--tiny]. The paper's attribution table on it:
python launch/paper_attribution.py --config=configs/families.py

Data: `data.synthetic.generators` = the six trained families of `freqforensics/generators/families.py`, whose
weights are committed (`launch/train_families.py` trained them on CPU): DCGAN-style GANs from noise with
transposed-conv, nearest, bilinear and sub-pixel upsampling, and a latent-diffusion-style autoencoder
whose decoder upsamples by nearest + conv or by a filtered (anti-aliased) upsampling; their class is the
reconstruction of fresh real crops. 1000 images per class at 64x64 (7 classes), split 70/10/20 per
class; crops from the photos' half that generator training never saw.
Measured on 2 CPU cores (shared; times are noisy): test accuracy 0.995 for dct_log and 0.723 for pixel
(chance 0.14; pixels confuse the real class with the two decoders: per class 0.425 / 0.53 / 0.375);
cnn 0.996 / 0.888. About 110 s the first time (most of it generating and preparing the 7,000 images), 19 s
with the data cached; cnn 112 s (dct_log) and 173 s (pixel). Per family and JPEG-compressed:
docs/generator_families.md.
Tiny (60 images per class, generated at 64x64 and resized to 32x32, 3 epochs): 18 s the first time,
test accuracy 0.88 on 84 images.
"""

from __future__ import annotations

import ml_collections

from freqforensics import defaults

FAMILIES = ("gan_transposed", "gan_nearest", "gan_bilinear", "gan_subpixel", "ae_decoder", "ae_decoder_aa")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = defaults.base_config()
  c.data.synthetic.generators = FAMILIES
  if arg == "tiny":
    defaults.shrink_tiny(c)
    c.data.synthetic.image_size = 64  # the families make 64x64 images; the model sees them resized to 32x32
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; the only one is 'tiny'")
  return c
