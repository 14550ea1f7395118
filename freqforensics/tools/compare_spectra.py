r"""Compare the frequency spectra of image sets: mean spectra, differences to a reference, radial power.

  python -m freqforensics.tools.compare_spectra --out_dir=DIR [--num=N] [--size=S] [--grayscale] [--pdf] \
      [--wavelet=haar] [--level=0] [--bins=0] SET [SET ...]

Each SET is an image folder (one data set of every image below it, by the listing rule) or a prepared
dataset `DIR[:SPLIT]` (one data set per class, as the models see it). The first is the reference.
Writes `spectra.npz` and PNG figures (`--pdf` adds PDFs) into a new folder, never over an earlier
run; an `--out_dir` inside an input folder is refused. The library is
`freqforensics.analysis.mean_spectra`.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging

from freqforensics.tools import cli

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  _F["out_dir"] = flags.DEFINE_string(
    "out_dir", None, "Output folder; a new run_<timestamp> folder inside it if it is not empty."
  )
  _F["num"] = flags.DEFINE_integer("num", 1000, "Images per data set (the first N in sorted order).", lower_bound=1)
  _F["size"] = flags.DEFINE_integer(
    "size",
    0,
    "Centre-crop and resize folder images to size x size; 0 = the size of the first prepared dataset given, else 128.",
    lower_bound=0,
  )
  _F["grayscale"] = flags.DEFINE_bool("grayscale", False, "Use luminance (one channel) instead of RGB.")
  _F["pdf"] = flags.DEFINE_bool("pdf", False, "Also write the figures as PDF.")
  _F["batch_size"] = flags.DEFINE_integer(
    "batch_size", 64, "Images per streamed batch (memory, not results).", lower_bound=1
  )
  _F["wavelet"] = flags.DEFINE_string(
    "wavelet", "haar", "Orthogonal wavelet of the wavelet-packet view (haar, db2, sym4, ...)."
  )
  _F["level"] = flags.DEFINE_integer(
    "level",
    0,
    "Wavelet packet level (--size divisible by 2**level); 0 = 3, or fewer if the size does not halve 3 times.",
    lower_bound=0,
  )
  _F["bins"] = flags.DEFINE_integer("bins", 0, "Radial bins of the azimuthal view; 0 = size // 2.", lower_bound=0)


def main(argv: Sequence[str]) -> None:
  if not _F["out_dir"].value:
    cli.fail("no output folder given: pass --out_dir=DIR")
  if len(argv) < 2:
    cli.fail("no image folders given: pass one or more folders after the options (the first is the reference)")
  absl_logging.set_verbosity(absl_logging.WARNING)  # as main.py: no backend-probe chatter
  import numpy as np  # pylint: disable=g-import-not-at-top

  from freqforensics.analysis import mean_spectra  # pylint: disable=g-import-not-at-top  (fast --help)

  v = {k: f.value for k, f in _F.items()}
  out, files = mean_spectra.run_spectra(
    argv[1:],
    v["out_dir"],
    num=v["num"],
    size=v["size"],
    channels=1 if v["grayscale"] else 3,
    batch_size=v["batch_size"],
    pdf=v["pdf"],
    wavelet=v["wavelet"],
    level=v["level"],
    bins=v["bins"],
  )
  print(f"spectra of {len(argv) - 1} data sets written to {out}:")
  with np.load(out / "spectra.npz", allow_pickle=False) as r:
    for name, count, skipped in zip(r["names"], r["count"], r["skipped"]):
      note = f" ({skipped} unusable files skipped: unreadable, or smaller than --size)" if skipped else ""
      print(f"  {name}: {count} images{note}")
  for path in files:
    print(f"  {path}")


def run() -> None:
  """The command line (also the console script of the same name)."""
  # One device: this computation is faster on a single CPU device with all intra-op threads.
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
