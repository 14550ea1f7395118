r"""Compares the frequency views as model input: pixel, dct_log, fft_log, azimuthal, wpt_log.

  python launch/compare_features.py [--out_dir=runs/compare_features] [--plot=docs/feature_views.png] \
      [--per_class=8,32,full] [--models=log2,cnn] [--features=pixel,dct_log,fft_log,azimuthal,wpt_log]

On the synthetic benchmark of `configs/demo.py` (4 classes x 1,000 images at 64x64), trains every
model on every feature kind (`cnn` only on image-shaped features: `azimuthal` is a 1-D profile)
with the demo's training setup (Adam 1e-3, batch 32, up to 50 epochs, early stopping on validation
loss with patience 5, best epoch restored), at several training-set sizes:
- `full`: the demo's split, 700 training images per class (70/10/20);
- N (the few-sample regime): the first N images per class by file name for training, the next 100
  for validation and the next 200 for testing (`data.split=(N, 100, 200)`), so every size is tested
  on 800 images. Small training sets use batches of min(32, 2 N), so an epoch has two steps or more.

Each run is `train.train_and_evaluate` in its own work dir below `--out_dir`; a run that finished
is read back, one that was interrupted resumes, so the script can be started again after a kill.
Writes `results.json` and `table.md` to `--out_dir`, the figure to `--plot`, and prints the table
(test accuracy on 800 images per cell; one seed).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
from pathlib import Path

from freqforensics import host_devices

host_devices.use_all_cores()

import jax  # noqa: E402  (after the XLA flag)

from freqforensics import defaults, spectral, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FULL = "full"


def _config(feature: str, model: str, per_class: str, data_dir: str):
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location("demo_config", ROOT / "configs" / "demo.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.features, c.model.name, c.progress = feature, model, False
  if data_dir:
    c.data.data_dir = data_dir
  if per_class != FULL:
    n = int(per_class)
    c.data.split = (n, 100, 200)
    c.train.batch_size = min(c.train.batch_size, max(2, 2 * n))  # 4 classes x n images: >= 2 steps per epoch
  return c


def run_one(feature: str, model: str, per_class: str, out_dir: Path, data_dir: str) -> dict:
  """Trains (or resumes, or reads back) one run; returns its summary row."""
  workdir = out_dir / f"{feature}_{model}_n{per_class}"
  config = _config(feature, model, per_class, data_dir)
  done = workdir / "test_metrics.json"
  started = time.time()
  trained = not done.is_file()
  if not trained:
    metrics = json.loads(done.read_text())
  else:
    metrics = train.train_and_evaluate(config, workdir)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  kind = defaults.feature_name(config)
  size = config.data.image_size
  return {"feature": feature, "model": model, "per_class": per_class, "name": kind,
          "feature_shape": list(spectral.feature_shape(kind, (size, size, config.data.channels))),
          "accuracy": metrics["accuracy"],
          "recall": {name: m["recall"] for name, m in metrics["per_class"].items()},
          "epochs": len(rows), "best_epoch": metrics["epoch"],
          "seconds_per_epoch": statistics.median(r["seconds"] for r in rows) if rows else None,
          "wall_seconds": round(time.time() - started, 1), "trained": trained, "workdir": str(workdir)}


def table(results: list[dict], sizes: list[str]) -> str:
  """Markdown: one row per (feature, model), one column per training-set size, then epoch time."""
  head = ["features", "model", "feature shape"] + [f"{s} / class" if s != FULL else "700 / class (full)"
                                                     for s in sizes] + ["s / epoch (full)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  keys = []
  for r in results:
    if (r["feature"], r["model"]) not in keys:
      keys.append((r["feature"], r["model"]))
  for feature, model in keys:
    cells = {r["per_class"]: r for r in results if r["feature"] == feature and r["model"] == model}
    any_row = next(iter(cells.values()))
    shape = "x".join(map(str, any_row["feature_shape"]))
    accs = [f"{cells[s]['accuracy']:.3f}" if s in cells else "" for s in sizes]
    full = cells.get(FULL)
    secs = f"{full['seconds_per_epoch']:.1f}" if full and full["seconds_per_epoch"] else ""
    lines.append(f"| `{any_row['name']}` | {model} | {shape} | " + " | ".join(accs) + f" | {secs} |")
  return "\n".join(lines)


def plot(results: list[dict], sizes: list[str], path: Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  models = list(dict.fromkeys(r["model"] for r in results))
  fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.0), squeeze=False, sharey=True,
                           constrained_layout=True)
  xs = {s: (700 if s == FULL else int(s)) for s in sizes}
  features = list(dict.fromkeys(r["feature"] for r in results))
  colours = {f: plt.get_cmap("tab10")(i) for i, f in enumerate(features)}  # one colour per feature in every panel
  for ax, model in zip(axes[0], models):
    for feature in features:
      cells = sorted((xs[r["per_class"]], r["accuracy"]) for r in results
                     if r["model"] == model and r["feature"] == feature and r["per_class"] in xs)
      if cells:
        ax.plot(*zip(*cells), marker="o", label=feature, color=colours[feature])
    ax.axhline(0.25, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(sorted(xs.values()), [str(v) for v in sorted(xs.values())])
    ax.set_xlabel("training images per class")
    ax.set_title(model)
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel("test accuracy (4 classes, 800 images)")
  for ax in axes[0]:
    ax.legend(loc="center right", fontsize=9)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out_dir", default="runs/compare_features")
  p.add_argument("--plot", default="docs/feature_views.png")
  p.add_argument("--per_class", default=f"8,32,{FULL}", help="training images per class, comma-separated")
  p.add_argument("--models", default="log2,cnn")
  p.add_argument("--features", default="pixel,dct_log,fft_log,azimuthal,wpt_log")
  p.add_argument("--data_dir", default="", help="data cache (default: $FREQFORENSICS_DATA or ~/.cache/freqforensics)")
  args = p.parse_args()
  logging.basicConfig(level=logging.WARNING)
  out_dir = Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  sizes = [s.strip() for s in args.per_class.split(",")]
  started = time.time()
  results = []
  for size in sizes:
    for model in args.models.split(","):
      for feature in args.features.split(","):
        if model in ("cnn", "resnet") and feature not in spectral.IMAGE_SHAPED_KINDS:
          continue  # a 1-D profile has no image for a conv net
        r = run_one(feature, model, size, out_dir, args.data_dir)
        print(f"{feature:>10} {model:>5} n={size:>4}: test accuracy {r['accuracy']:.3f}"
              f" ({r['epochs']} epochs, {r['wall_seconds']} s)", flush=True)
        results.append(r)
  (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  md = table(results, sizes)
  (out_dir / "table.md").write_text(md + "\n")
  plot(results, sizes, Path(args.plot))
  print(f"\n# {platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__},"
        f" {sum(r['trained'] for r in results)} runs trained, {sum(not r['trained'] for r in results)} read back,"
        f" {time.time() - started:.0f} s in all")
  print(md)
  print(f"\nfigure: {args.plot}; per-run work dirs, results.json, table.md: {out_dir}")


if __name__ == "__main__":
  main()
