r"""The paper's attribution table: every method on one multi-class data set, with wall time and size.

  python launch/paper_attribution.py [--config=configs/demo.py] [--resnet_epochs=8] [--pca_subset=1000] \
      [--results=runs/results] [--tiny] [--config.KEY=VALUE ...]

Methods: kNN, Eigenfaces and PRNU (grid search on val, then the best point on test;
`configs/baselines.py` settings on the same prepared data), `log2` and `cnn` on pixels and on
log-DCT features, and `resnet` on log-DCT features (at most `--resnet_epochs` epochs: on a CPU
one resnet epoch over the synthetic data takes over a minute). Writes `attribution.md` / `.json` (test
accuracy, wall time, trainable parameters of the neural models) into a new folder under `--results`.
`--tiny` is the smoke version (seconds per method).
"""

from __future__ import annotations

import time
from pathlib import Path

from freqforensics.tools import scripts

COLUMNS = [
  ("method", "method", "s"),
  ("features", "input", "s"),
  ("best", "best grid point (val accuracy)", "s"),
  ("accuracy", "test accuracy", ".3f"),
  ("seconds", "wall time (s)", ".0f"),
  ("parameters", "parameters", ",d"),
]
NEURAL = (("log2", "pixel"), ("log2", "dct_log"), ("cnn", "pixel"), ("cnn", "dct_log"), ("resnet", "dct_log"))


def baseline_row(name: str, base, out: Path, pca_subset: int, tiny: bool = False) -> dict:
  """Grid search then train (best point, scored on test) of one classic baseline on `base`'s data."""
  from freqforensics.baselines import commands  # pylint: disable=g-import-not-at-top
  from freqforensics.baselines import config as bconfig  # pylint: disable=g-import-not-at-top

  c = base.copy_and_resolve_references()
  with c.unlocked():
    bconfig.add_fields(c, name)
  c.features, c.progress = "pixel", False
  if name == "eigenfaces":
    c.baseline.eigenfaces.pca_subset = pca_subset
  if tiny:  # as configs/baselines.py:tiny
    c.baseline.batch_size, c.baseline.eigenfaces.pca_subset = 32, min(pca_subset, 200)
  start = time.perf_counter()
  grid = commands.run(c, out / "baselines", "grid_search")
  trained = commands.run(c, out / "baselines", "train")
  best = grid.get("best") or {}
  best_row = next((r for r in grid["rows"] if all(r.get(k) == v for k, v in best.items())), {})
  return {
    "method": {"knn": "kNN", "eigenfaces": "Eigenfaces", "prnu": "PRNU"}[name],
    "features": "pixels" if name != "prnu" else "noise residual",
    "best": ", ".join(f"{k}={v}" for k, v in best.items()) + f" ({best_row.get('accuracy', 0):.3f})",
    "accuracy": trained["test"]["accuracy"],
    "seconds": time.perf_counter() - start,
  }


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.add_argument("--resnet_epochs", type=int, default=8)
  parser.add_argument("--pca_subset", type=int, default=1000)
  args = scripts.parse_args(parser, argv)
  out = scripts.output_dir(args, "attribution")
  rows = [
    baseline_row(name, scripts.script_config(args), out, args.pca_subset, args.tiny)
    for name in ("knn", "eigenfaces", "prnu")
  ]
  for model, features in NEURAL:
    c = scripts.script_config(args)
    c.model.name, c.features, c.progress = model, features, False
    if model == "resnet":
      c.train.epochs = min(c.train.epochs, args.resnet_epochs)
    m = scripts.run(c, out / "runs" / f"{model}_{features}")
    rows.append(
      {
        "method": model,
        "features": {"pixel": "pixels", "dct_log": "log DCT"}[features],
        "best": "-",
        "accuracy": m["accuracy"],
        "seconds": m["seconds"],
        "parameters": m["parameters"],
      }
    )
  title = "Attribution: every method on the same test split"
  notes = (
    f"Config {scripts.config_label(args)}; resnet at most {args.resnet_epochs} epochs; "
    "wall time of the whole method (grid search included for the classic ones); ours."
  )
  scripts.write_results(out, "attribution", rows, COLUMNS, title=title, notes=notes, show=True)
  return out


if __name__ == "__main__":
  scripts.launch(main)
