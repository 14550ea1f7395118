r"""The paper's robustness experiment: each model trained clean and on perturbed images, tested under perturbations.

  python launch/robustness.py [--models=log2,cnn] [--config=configs/demo.py] [--results=runs/results] \
      [--resume=FOLDER] [--tiny] [--config.KEY=VALUE ...]

For each model, two runs of the config (configs/demo.py: the synthetic data set, 4 classes x 1,000
images at 64x64, `dct_log` features): one on clean images, one with `augment.kind=combined` (each
training image perturbed with probability 0.5 by one of JPEG / blur / noise / crop at the paper's
strengths, drawn anew every epoch). Each finished model is then evaluated on the test split under
every perturbation at every strength of `robustness.DEFAULT_SWEEPS`, as
`python -m freqforensics.tools.robustness` does.

Writes into a new folder under `--results` (`RESULTS/robustness/<time>/`):
- `robustness.md` / `.json`: per run, the clean accuracy, the mean accuracy lost below it per
  perturbation and the wall times of training and of the report; the .md also holds the accuracy
  at every strength;
- `robustness.png`: accuracy against strength, trained clean (dashed) vs augmented (solid); the
  README's `docs/robustness.png` is this figure, copied there by hand;
- `runs/<model>_<clean|augmented>/`: the work dirs, each with `robustness_test/robustness.json`.
About 10-15 min on 2 CPU cores. `--resume=RESULTS/robustness/<time>` finishes an earlier folder
instead of starting a new one: finished runs and reports are read back, an interrupted training or
report resumes where it stopped. `--tiny`: the config's `:tiny` form and two strengths per
perturbation (seconds). `--config.KEY=VALUE` arguments override every config the script runs, as in
main (e.g. `--config.data.prepared_dir=DIR` for data prepared with `python -m freqforensics.tools.prepare`).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from freqforensics.analysis import robustness
from freqforensics.tools import scripts

KINDS = tuple(robustness.DEFAULT_SWEEPS)
COLUMNS = [
  ("run", "run", "s"),
  ("clean", "clean accuracy", ".3f"),
  *[(k, f"{k}: mean drop", ".3f") for k in KINDS],
  ("train_seconds", "training (s)", ".0f"),
  ("report_seconds", "report (s)", ".0f"),
]


def sweeps(tiny: bool) -> dict[str, tuple[float, ...]]:
  """Every strength of the paper's sweeps; `tiny`: the mildest and the strongest of each."""
  return {k: (v[0], v[-1]) if tiny else v for k, (_, v) in robustness.DEFAULT_SWEEPS.items()}


def drops(report: dict[str, Any]) -> dict[str, float]:
  """Mean accuracy lost below the clean accuracy over each perturbation's strengths."""
  clean = report["clean"]["accuracy"]
  return {k: sum(clean - r["accuracy"] for r in rows) / len(rows) for k, rows in report["results"].items() if rows}


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.add_argument("--models", default="log2,cnn")
  args = scripts.parse_args(parser, argv)
  out = scripts.output_dir(args, "robustness")
  rows, reports, styles = [], {}, {}
  for j, model in enumerate(args.models.split(",")):
    for augmented in (False, True):
      c = scripts.script_config(args)
      c.model.name, c.progress = model, False
      if augmented:
        c.augment.kind = "combined"  # probability 0.5 and the paper's strengths: the defaults
      name = f"{model}_{'augmented' if augmented else 'clean'}"
      m = scripts.run(c, out / "runs" / name)
      start = time.perf_counter()
      report, report_dir, _ = robustness.sweep_workdir(out / "runs" / name, sweeps(args.tiny), progress=False)
      seconds = time.perf_counter() - start
      label = name.replace("_", " ")
      reports[label], styles[label] = report, {"color": f"C{j}", "linestyle": "-" if augmented else "--"}
      rows.append(
        {
          "run": label,
          "model": model,
          "augmented": augmented,
          "clean": report["clean"]["accuracy"],
          **drops(report),
          "train_seconds": m["seconds"],
          "report_seconds": seconds,
          "report": str((report_dir / "robustness.json").relative_to(out)),
        }
      )
      print(
        f"{label}: clean accuracy {report['clean']['accuracy']:.3f}; training {m['seconds']:.0f} s, robustness"
        f" report {seconds:.0f} s",
        flush=True,
      )
  features = c.features
  robustness.plot(
    reports,
    out / "robustness.png",
    styles=styles,
    title=f"{scripts.config_spec(args)}, {features}: trained clean (dashed) vs with augmentation (solid)",
  )
  title = f"Accuracy under perturbation, trained clean vs augmented ({features})"
  notes = (
    f"Config {scripts.config_label(args)}; test split ({report['clean']['num_examples']} images); drop ="
    " clean accuracy minus accuracy under the perturbation, averaged over its strengths;"
    f" {platform.machine()}, {scripts.devices()}; ours. Figure: robustness.png."
  )
  notes += f"\n\nAccuracy at every strength:\n\n{robustness.table(reports)}"
  scripts.write_results(out, "robustness", rows, COLUMNS, title=title, notes=notes, show=True)
  return out


if __name__ == "__main__":
  scripts.launch(main)
