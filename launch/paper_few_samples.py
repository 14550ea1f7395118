r"""The few-sample curve: test accuracy as the training set shrinks, pixels against log-DCT features.

  python launch/paper_few_samples.py [--fractions=0.01,0.05,0.1,0.25,0.5,1] [--seeds=0,1] \
      [--models=log2,cnn] [--config=configs/demo.py] [--results=runs/results] [--tiny] [--config.KEY=VALUE ...]

For each model, feature kind, fraction of the training split (class-balanced, `data.train_subset`,
with its own feature statistics) and seed (the subset and the initialisation), trains on that part
and tests on the whole test split. Writes `few_samples.md` / `.json` (mean and spread over seeds)
and `few_samples.png` (accuracy against training images per class, one line per model and
feature, the spread as a band) into a new folder under `--results`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from freqforensics.tools import scripts

COLUMNS = [
  ("model", "model", "s"),
  ("features", "features", "s"),
  ("fraction", "fraction of train", "g"),
  ("per_class", "train images per class", ",d"),
  ("mean", "test accuracy (mean)", ".3f"),
  ("std", "std over seeds", ".3f"),
  ("seeds", "seeds", "d"),
]


def _plot(rows: list[dict], path: Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
  for model in dict.fromkeys(r["model"] for r in rows):
    for features, style in (("pixel", "--"), ("dct_log", "-")):
      line = sorted((r for r in rows if r["model"] == model and r["features"] == features), key=lambda r: r["fraction"])
      if not line:
        continue
      x = np.array([r["per_class"] for r in line])
      mean, std = np.array([r["mean"] for r in line]), np.array([r["std"] for r in line])
      ax.plot(x, mean, style, marker="o", label=f"{model} on {features}")
      ax.fill_between(x, mean - std, mean + std, alpha=0.2)
  ax.set_xscale("log")
  ax.set_xlabel("training images per class")
  ax.set_ylabel("test accuracy")
  ax.set_title("Few-sample regime")
  ax.legend()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.add_argument("--fractions", default="0.01,0.05,0.1,0.25,0.5,1")
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--models", default="log2,cnn")
  args = scripts.parse_args(parser, argv)
  fractions = [float(f) for f in args.fractions.split(",")]
  seeds = [int(s) for s in args.seeds.split(",")]
  out = scripts.output_dir(args, "few_samples")
  rows = []
  for model in args.models.split(","):
    for features in ("pixel", "dct_log"):
      for fraction in fractions:
        accs, per_class = [], 0
        for seed in seeds:
          c = scripts.script_config(args)
          c.model.name, c.features, c.seed, c.progress = model, features, seed, False
          c.data.train_subset = fraction
          per_class, classes = _per_class(c)
          # A subset smaller than a batch trains on all of it per step (a multiple of 4: any device count).
          c.train.batch_size = min(c.train.batch_size, max(4, per_class * classes // 4 * 4))
          m = scripts.run(c, out / "runs" / f"{model}_{features}_{fraction:g}_seed{seed}")
          accs.append(m["accuracy"])
        rows.append(
          {
            "model": model,
            "features": features,
            "fraction": fraction,
            "per_class": per_class,
            "mean": float(np.mean(accs)),
            "std": float(np.std(accs)),
            "seeds": len(seeds),
          }
        )
  _plot(rows, out / "few_samples.png")
  title = "Test accuracy as the training set shrinks"
  notes = f"Config {scripts.config_label(args)}; ours. Figure: few_samples.png."
  scripts.write_results(out, "few_samples", rows, COLUMNS, title=title, notes=notes, show=True)
  return out


def _per_class(config) -> tuple[int, int]:
  """(training images per class of the config's subset, number of classes)."""
  from freqforensics.data import loading  # pylint: disable=g-import-not-at-top

  prepared = loading.prepare_from_config(config, progress=False)
  source, _ = loading.train_subset(prepared, config.data.train_subset, config.seed)
  return len(source) // len(prepared.label_names), len(prepared.label_names)


if __name__ == "__main__":
  scripts.launch(main)
