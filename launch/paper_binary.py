r"""The paper's binary table: real vs one generator (one sigmoid output), `log2` on pixels and log-DCT.

  python launch/paper_binary.py [--config=configs/demo.py] [--fake=D_transposed] [--results=runs/results] [--tiny] \
      [--config.KEY=VALUE ...]

By default the synthetic data set, real crops (`A_real`) against one simulated generator; with
`--config` any config (its `data.classes` are set to the real class and `--fake`). Writes
`binary.md` / `binary.json` (accuracy, ROC-AUC, average precision, accuracy at 0.5, wall time,
parameters) into a new folder under `--results`. `--tiny` is the smoke version (seconds).
"""

from __future__ import annotations

from pathlib import Path

from freqforensics.tools import scripts

COLUMNS = [
  ("features", "features", "s"),
  ("accuracy", "test accuracy", ".3f"),
  ("roc_auc", "ROC-AUC", ".4f"),
  ("average_precision", "AP", ".4f"),
  ("accuracy_at_0.5", "acc@0.5", ".3f"),
  ("seconds", "seconds", ".0f"),
  ("parameters", "parameters", ",d"),
]


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.add_argument("--real", default="A_real")
  parser.add_argument("--fake", default="D_transposed")
  args = scripts.parse_args(parser, argv)
  out = scripts.output_dir(args, "binary")
  rows = []
  for features in ("pixel", "dct_log"):
    c = scripts.script_config(args)
    c.features, c.data.classes, c.progress = features, (args.real, args.fake), False
    m = scripts.run(c, out / "runs" / features)
    rows.append(
      {
        "features": features,
        "accuracy": m["accuracy"],
        "roc_auc": m["binary"]["roc_auc"],
        "average_precision": m["binary"]["average_precision"],
        "accuracy_at_0.5": m["binary"]["accuracy_at_0.5"],
        "seconds": m["seconds"],
        "parameters": m["parameters"],
      }
    )
  notes = f"Config {scripts.config_label(args)}; test split; ours."
  scripts.write_results(out, "binary", rows, COLUMNS, title=f"{args.real} vs {args.fake}, log2", notes=notes, show=True)
  return out


if __name__ == "__main__":
  scripts.launch(main)
