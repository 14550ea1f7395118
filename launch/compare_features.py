r"""Compares the frequency views as model input: pixel, dct_log, fft_log, azimuthal, wpt_log.

  python launch/compare_features.py [--per_class=8,32,full] [--models=log2,cnn] \
      [--features=pixel,dct_log,fft_log,azimuthal,wpt_log] [--config=configs/demo.py] [--results=runs/results] \
      [--resume=FOLDER] [--tiny] [--config.KEY=VALUE ...]

Trains every model on every feature kind (`cnn` only on image-shaped features: `azimuthal` is a
1-D profile) with the config's training setup (configs/demo.py: the synthetic data set, 4 classes
x 1,000 images at 64x64; Adam 1e-3, batch 32, up to 50 epochs, early stopping on validation loss
with patience 5, best epoch restored), at several training-set sizes:
- `full`: the config's split (the demo's: 700 training images per class, 70/10/20);
- N (the few-sample regime): the first N images per class by file name for training, then as many
  for validation and testing as the full split has (`data.split=(N, 100, 200)` for the demo), so
  every size is tested on as many images (800 for the demo). Small training sets use batches of
  min(batch, 2 N), so an epoch has two steps or more. These re-split the source images, so they
  need the config's source, not `data.prepared_dir` (give `--per_class=full` there).

Writes into a new folder under `--results` (`RESULTS/feature_views/<time>/`):
- `feature_views.md` / `.json`: test accuracy per feature kind, model and size (one seed), the
  feature shape and the median seconds per epoch of the full run; the JSON rows also hold every
  run's per-class recall, epochs and best epoch;
- `feature_views.png`: test accuracy against training images per class, one panel per model; the
  README's `docs/feature_views.png` is this figure, copied there by hand;
- `runs/<feature>_<model>_n<size>/`: the work dirs.
About 40 min on 2 CPU cores with `--per_class=8,32,128,full` (docs/feature_views.md).
`--resume=RESULTS/feature_views/<time>` finishes an earlier folder instead of starting a new one:
finished runs are read back, an interrupted one resumes. `--tiny`: the config's `:tiny` form and,
unless given, `--per_class=8,full --models=log2 --features=pixel,dct_log,azimuthal` (under a minute).
`--config.KEY=VALUE` arguments override every config the script runs, as in main (e.g.
`--config.data.data_dir=DIR` for the data cache).
"""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path
from typing import Any

import ml_collections

from freqforensics.errors import UserError
from freqforensics.tools import scripts

FULL = "full"
DEFAULTS = {"per_class": f"8,32,{FULL}", "models": "log2,cnn", "features": "pixel,dct_log,fft_log,azimuthal,wpt_log"}
TINY = {"per_class": f"8,{FULL}", "models": "log2", "features": "pixel,dct_log,azimuthal"}


def split_counts(config: ml_collections.ConfigDict) -> tuple[int, int, int, int]:
  """(train, val, test) images per class of the config's prepared data (the fewest over classes), and classes."""
  from freqforensics.data import loading  # pylint: disable=g-import-not-at-top

  prepared = loading.prepare_from_config(config, progress=False)
  classes = range(len(prepared.label_names))
  train, val, test = (min(len(prepared.class_range(s, k)) for k in classes) for s in ("train", "val", "test"))
  return train, val, test, len(classes)


def run_one(config: ml_collections.ConfigDict, workdir: Path, per_class: str) -> dict[str, Any]:
  """Trains (or resumes, or reads back) one run; returns its summary."""
  m = scripts.run(config, workdir)
  epochs = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  return {
    "per_class": per_class,
    "accuracy": m["accuracy"],
    "recall": {name: c["recall"] for name, c in m["per_class"].items()},
    "epochs": len(epochs),
    "best_epoch": m["epoch"],
    "seconds_per_epoch": statistics.median(r["seconds"] for r in epochs) if epochs else None,
    "tested": m["num_examples"],
    "seconds": m["seconds"],
    "workdir": f"runs/{workdir.name}",
  }


def plot(rows: list[dict[str, Any]], sizes: dict[str, int], path: Path, *, classes: int, tested: str) -> None:
  """Test accuracy against training images per class: one panel per model, one colour per feature kind."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  from freqforensics.files import figure_marks  # pylint: disable=g-import-not-at-top

  models = list(dict.fromkeys(r["model"] for r in rows))
  fig, axes = plt.subplots(
    1, len(models), figsize=(5.2 * len(models), 4.0), squeeze=False, sharey=True, constrained_layout=True
  )
  features = list(dict.fromkeys(r["features"] for r in rows))
  colours = {f: plt.get_cmap("tab10")(i) for i, f in enumerate(features)}  # one colour per feature in every panel
  for ax, model in zip(axes[0], models):
    for r in rows:
      if r["model"] == model:
        ax.plot(
          *zip(*sorted((sizes[run["per_class"]], run["accuracy"]) for run in r["runs"])),
          marker="o",
          label=r["features"],
          color=colours[r["features"]],
        )
    ax.axhline(1 / classes, color="grey", lw=0.8, ls=":")  # chance
    ax.set_xscale("log")
    ax.set_xticks(sorted(sizes.values()), [str(v) for v in sorted(sizes.values())])
    ax.minorticks_off()  # the sizes label the axis; log-scale minor labels would overlap them
    ax.set_xlabel("training images per class")
    ax.set_title(model)
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel(f"test accuracy ({classes} classes, {tested} images)")
  for ax in axes[0]:
    ax.legend(loc="center right", fontsize=9)
  figure_marks.save_figure(fig, path)
  plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.add_argument(
    "--per_class", help=f"training images per class or {FULL}, comma-separated (default {DEFAULTS['per_class']})"
  )
  parser.add_argument("--models", help=f"default {DEFAULTS['models']}")
  parser.add_argument("--features", help=f"default {DEFAULTS['features']}")
  args = scripts.parse_args(parser, argv)
  for key, value in (TINY if args.tiny else DEFAULTS).items():
    setattr(args, key, getattr(args, key) or value)
  sizes = [s.strip() for s in args.per_class.split(",")]
  if not all(s == FULL or s.isdigit() for s in sizes):
    raise UserError(f"--per_class={args.per_class}: give whole numbers of images per class or {FULL}, e.g. 8,32,{FULL}")
  full_config = scripts.script_config(args)
  if full_config.data.prepared_dir and sizes != [FULL]:
    raise UserError(
      f"--per_class={args.per_class} re-splits the source images, but data.prepared_dir is prepared"
      f" already: give --per_class={FULL}, or the source (data.source_dir) instead"
    )
  train, val, test, classes = split_counts(full_config)  # the N-runs hold out as many images as the full split
  numbers = {s: train if s == FULL else int(s) for s in sizes}  # training images per class
  out = scripts.output_dir(args, "feature_views")

  from freqforensics import defaults, spectral  # pylint: disable=g-import-not-at-top

  rows = []
  for model in args.models.split(","):
    for feature in args.features.split(","):
      if model in ("cnn", "resnet") and feature not in spectral.IMAGE_SHAPED_KINDS:
        continue  # a 1-D profile has no image for a conv net
      runs = []
      for size in sizes:
        c = scripts.script_config(args)
        c.features, c.model.name, c.progress = feature, model, False
        if size != FULL:
          c.data.split = (numbers[size], val, test)
          c.train.batch_size = min(c.train.batch_size, max(2, 2 * numbers[size]))  # >= 2 steps per epoch
        runs.append(run_one(c, out / "runs" / f"{feature}_{model}_n{size}", size))
        print(
          f"{feature:>10} {model:>5} n={size:>4}: test accuracy {runs[-1]['accuracy']:.3f} ({runs[-1]['epochs']}"
          f" epochs, {runs[-1]['seconds']:.0f} s)",
          flush=True,
        )
      kind = defaults.feature_name(c)  # with its parameters, e.g. azimuthal-b32
      shape = spectral.feature_shape(kind, (c.data.image_size, c.data.image_size, c.data.channels))
      row = {
        "features": feature,
        "model": model,
        "name": kind,
        "shape": "x".join(map(str, shape)),
        **{f"n{r['per_class']}": r["accuracy"] for r in runs},
        "seconds_per_epoch": next((r["seconds_per_epoch"] for r in runs if r["per_class"] == FULL), None),
        "runs": runs,
      }
      rows.append(row)
  if not rows:
    raise UserError(
      f"nothing to run: --models={args.models} take image-shaped features, not --features={args.features}"
    )
  tested = " / ".join(map(str, sorted({run["tested"] for row in rows for run in row["runs"]})))
  plot(rows, numbers, out / "feature_views.png", classes=classes, tested=tested)
  columns = [
    ("name", "features", "s"),
    ("model", "model", "s"),
    ("shape", "feature shape", "s"),
    *[(f"n{s}", f"{numbers[s]} / class" + (f" ({FULL})" if s == FULL else ""), ".3f") for s in sizes],
    ("seconds_per_epoch", f"s / epoch ({FULL})", ".1f"),
  ]
  title = "Test accuracy per feature view, model and training-set size"
  notes = (
    f"Config {scripts.config_label(args)}; test accuracy on {tested} images ({classes} classes), one"
    f" seed; {platform.machine()}, {scripts.devices()}; ours. Figure: feature_views.png."
  )
  scripts.write_results(out, "feature_views", rows, columns, title=title, notes=notes, show=True)
  return out


if __name__ == "__main__":
  scripts.launch(main)
