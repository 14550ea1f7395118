r"""Write the synthetic data set (real photo crops and simulated GAN upsamplers) as class folders.

  python -m freqforensics.tools.synthetic --out_dir=/tmp/synth [--num_per_class=1000] [--image_size=64] \
      [--seed=0] [--fingerprint=0.5] [--jpeg_quality=90] [--lowpass=1.0] [--generators=gan_nearest,ae_decoder] \
      [--overwrite]

Deterministic for a seed, no downloads; an out_dir holding the same data is reused, one of other
parameters is refused unless `--overwrite`. Training configs generate it by themselves
(`data.source=synthetic`); this command is for other tools. The library is
`freqforensics.generators.synthetic`.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from freqforensics.tools import cli

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  _F["out_dir"] = flags.DEFINE_string("out_dir", None, "Where the class folders go.")
  _F["num_per_class"] = flags.DEFINE_integer("num_per_class", 1000, "Images per class.")
  _F["image_size"] = flags.DEFINE_integer("image_size", 64, "Side of the generated images.")
  _F["seed"] = flags.DEFINE_integer("seed", 0, "The synthetic data's seed.")
  _F["fingerprint"] = flags.DEFINE_float(
    "fingerprint", 1.0, "Scale of the generators' kernel perturbation and texture noise (> 0; 0.5 = weaker)."
  )
  _F["jpeg_quality"] = flags.DEFINE_integer(
    "jpeg_quality", 0, "JPEG round trip of every image at this quality (1..100) before saving; 0 = off."
  )
  _F["lowpass"] = flags.DEFINE_float("lowpass", 0.0, "Gaussian blur sigma (pixels) of the generated images; 0 = off.")
  _F["generators"] = flags.DEFINE_list(
    "generators",
    None,
    "Fake classes: simulated upsamplers (B_nearest, C_bilinear, D_transposed, E_nearest) or trained"
    " families (gan_transposed, gan_nearest, gan_bilinear, gan_subpixel, ae_decoder, ae_decoder_aa); default: the"
    " three simulated ones.",
  )
  _F["overwrite"] = flags.DEFINE_bool(
    "overwrite", False, "Replace a synthetic data set of other parameters in --out_dir."
  )
  _F["progress"] = flags.DEFINE_bool("progress", True, "Progress bar on stderr.")


def main(argv: Sequence[str]) -> None:
  cli.flags_only(argv)
  if not _F["out_dir"].value:
    cli.fail("no --out_dir given: pass --out_dir=DIR (the class folders go there)")
  from freqforensics.generators import synthetic  # pylint: disable=g-import-not-at-top  (fast --help)

  v = {k: f.value for k, f in _F.items()}
  report = synthetic.generate(
    v["out_dir"],
    num_per_class=v["num_per_class"],
    image_size=v["image_size"],
    seed=v["seed"],
    overwrite=v["overwrite"],
    progress=v["progress"],
    generators=tuple(v["generators"] or synthetic.GENERATORS),
    fingerprint=v["fingerprint"],
    jpeg_quality=v["jpeg_quality"],
    lowpass=v["lowpass"],
  )
  options = synthetic.variant_suffix(lowpass=v["lowpass"], fingerprint=v["fingerprint"], jpeg_quality=v["jpeg_quality"])
  print(
    f"{report.out_dir} ({'reused' if report.reused else 'written'}): {report.num_per_class} images/class, "
    f"{report.image_size}x{report.image_size}, seed {report.seed}" + (f" ({options[1:]})" if options else "")
  )
  for cls in report.classes:
    psnr = report.psnr_db.get(cls)
    print(f"  {cls}: " + ("real crops" if psnr is None else f"PSNR {psnr:.2f} dB vs source crop"))


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
