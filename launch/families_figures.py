r"""Figures of the trained generator families: a sample grid beside real crops, and their mean log-DCT spectra.

  python launch/families_figures.py [--config=configs/families.py] [--results=runs/results] [--tiny] [--columns=8] \
      [--config.KEY=VALUE ...]

The figures go into a new folder `RESULTS/families_figures/<time>/`; the README's and docs' copies
(`docs/families_samples.png`, `docs/families_spectra.png`) are copied from there by hand.

Uses the synthetic data of the config (generated, or found in the data cache, as training finds it:
`loading.source_dir`), then writes `families_samples.png` (the first `--columns` images of each class,
real crops first) and `families_spectra.png` (per class, the mean over all its images of log |DCT-II|
(`mean_spectra.compute`, channels averaged), and below each its difference to the real class).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from freqforensics.analysis import mean_spectra  # noqa: E402
from freqforensics.data import loading  # noqa: E402
from freqforensics.generators import families  # noqa: E402
from freqforensics.tools import scripts  # noqa: E402


def sample_grid(bench: Path, classes: list[str], columns: int, out: Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(
    len(classes), 1, figsize=(columns * 0.9, len(classes) * 1.1), squeeze=False, constrained_layout=True
  )
  for ax, cls in zip(axes[:, 0], classes):
    files = sorted((bench / cls).glob("*.png"))[:columns]
    row = np.concatenate(
      [np.pad(np.asarray(Image.open(f).convert("RGB")), ((0, 0), (0, 2), (0, 0)), constant_values=255) for f in files],
      axis=1,
    )
    ax.imshow(row, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(cls, loc="left", fontsize=9)
  fig.savefig(out, dpi=100)
  plt.close(fig)


def spectra_figure(bench: Path, classes: list[str], num: int, out: Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  result = mean_spectra.compute([bench / c for c in classes], num=num, size=families.IMAGE_SIZE, channels=3)
  logs = [m.mean(axis=-1) for m in result["log_mean"]]
  diffs = [m - logs[0] for m in logs[1:]]
  lo, hi = np.percentile(np.concatenate([m.ravel() for m in logs]), [1, 99])
  v = float(np.percentile(np.abs(np.concatenate([d.ravel() for d in diffs])), 99))
  fig, axes = plt.subplots(
    2, len(classes), figsize=(2.3 * len(classes) + 1.2, 4.8), squeeze=False, constrained_layout=True
  )
  for c, (cls, m) in enumerate(zip(classes, logs)):
    im = axes[0, c].imshow(m, cmap="viridis", vmin=lo, vmax=hi)
    axes[0, c].set_title(cls, fontsize=9)
    if c:
      dm = axes[1, c].imshow(diffs[c - 1], cmap="RdBu_r", vmin=-v, vmax=v)
    for ax in axes[:, c]:
      ax.set_xticks([])
      ax.set_yticks([])
  axes[1, 0].axis("off")
  axes[0, 0].set_ylabel("mean log|DCT|")
  axes[1, 1].set_ylabel("minus real")
  fig.colorbar(im, ax=axes[0, :], shrink=0.8)
  fig.colorbar(dm, ax=axes[1, :], shrink=0.8)
  fig.savefig(out, dpi=100)
  plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.set_defaults(config="configs/families.py")
  parser.add_argument("--columns", type=int, default=8)
  args = scripts.parse_args(parser, argv)
  start = time.perf_counter()
  config = scripts.script_config(args)
  bench = loading.source_dir(config)
  classes = sorted(p.name for p in bench.iterdir() if p.is_dir())
  print(f"synthetic data {bench}: {len(classes)} classes ({time.perf_counter() - start:.0f} s)")
  out = scripts.output_dir(args, "families_figures")
  sample_grid(bench, classes, args.columns, out / "families_samples.png")
  spectra_figure(bench, classes, config.data.synthetic.num_per_class, out / "families_spectra.png")
  print(
    f"wrote {out / 'families_samples.png'} and {out / 'families_spectra.png'} in {time.perf_counter() - start:.0f} s"
  )
  return out


if __name__ == "__main__":
  scripts.script_main(main, sys.argv[1:])
