r"""The upsampling ablation: which upsampler leaves which artifact, and what a low-pass filter does.

  python launch/paper_upsampling.py [--lowpass=1.0] [--results=runs/results] [--tiny] [--config.KEY=VALUE ...]

On the synthetic data set (real crops + three simulated GAN output stages that differ only in their
upsampling: nearest neighbour, bilinear, transposed convolution):
1. mean DCT spectra of every class and their differences to the real class (`spectra` figures, from
   the test split as the models see it);
2. `log2` on log-DCT features, binary, real vs each upsampler: test accuracy and ROC-AUC;
3. the same with every generated image blurred (Gaussian, sigma `--lowpass` pixels) before saving,
   the generator's output low-pass filtered: spectra and accuracies again.
Writes `upsampling.md` / `.json` and the figures into a new folder under `--results`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from freqforensics.tools import scripts

KINDS = ("B_nearest", "C_bilinear", "D_transposed")
COLUMNS = [
  ("upsampler", "upsampler", "s"),
  ("accuracy", "accuracy", ".3f"),
  ("roc_auc", "ROC-AUC", ".4f"),
  ("lowpass_accuracy", "accuracy, low-passed", ".3f"),
  ("lowpass_roc_auc", "ROC-AUC, low-passed", ".4f"),
]


def _spectra(config, out: Path, name: str) -> None:
  from freqforensics.analysis import mean_spectra  # pylint: disable=g-import-not-at-top
  from freqforensics.data import loading  # pylint: disable=g-import-not-at-top

  prepared = loading.prepare_from_config(config, progress=False)
  result = mean_spectra.compute([f"{prepared.path}:test"], num=1000, size=0, channels=3)
  folder = out / name
  folder.mkdir(exist_ok=True)  # left behind by an interrupted run (--resume)
  for path in mean_spectra.write_figures(result, folder):
    shutil.move(path, out / f"{name}_{path.name}")
  folder.rmdir()


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.add_argument("--lowpass", type=float, default=1.0)
  args = scripts.parse_args(parser, argv)
  out = scripts.output_dir(args, "upsampling")
  rows = {kind: {"upsampler": kind.split("_", 1)[1]} for kind in KINDS}
  for tag, lowpass in (("", 0.0), ("lowpass_", args.lowpass)):
    base = scripts.script_config(args)
    base.data.synthetic.lowpass, base.progress = lowpass, False
    _spectra(base, out, f"{tag}spectra".strip("_"))
    for kind in KINDS:
      c = scripts.script_config(args)
      c.data.synthetic.lowpass, c.progress = lowpass, False
      c.data.classes = ("A_real", kind)
      m = scripts.run(c, out / "runs" / f"{tag}{kind}")
      rows[kind].update({f"{tag}accuracy": m["accuracy"], f"{tag}roc_auc": m["binary"]["roc_auc"]})
  title = "Real vs each upsampler, log2 on log-DCT features (test split)"
  notes = (
    f"Low-passed: every generated image blurred (Gaussian, sigma {args.lowpass} px) before saving. "
    f"Config {scripts.config_label(args)}; ours. Figures: spectra_*.png, lowpass_spectra_*.png."
  )
  scripts.write_results(out, "upsampling", list(rows.values()), COLUMNS, title=title, notes=notes, show=True)
  return out


if __name__ == "__main__":
  scripts.launch(main)
