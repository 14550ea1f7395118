r"""The paper's robustness experiment on the synthetic benchmark: trained clean vs trained on perturbations.

  python launch/robustness.py [--out=runs/robustness] [--models=log2,cnn] [--figure=docs/robustness.png]

For each model (on `dct_log` features, configs/demo.py: 4 classes x 1,000 images at 64x64), two
runs: one on clean images, one with `--config.augment.kind=combined` (each training image perturbed
with probability 0.5 by one of JPEG / blur / noise / crop at the paper's strengths, drawn anew every
epoch). Each finished model is then evaluated on the test split under every perturbation at every
strength of `perturbation_sweep.DEFAULT_SWEEPS` (`freqforensics.analysis.perturbation_sweep`, as its command).

Prints the accuracy table, the mean drop below clean accuracy per perturbation and model, and the
wall time of each part; writes `OUT/<model>_<clean|augmented>/` (work dirs with their
`robustness_test/robustness.json`) and the figure. Everything resumes: run it again after an
interruption. About 10-15 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from freqforensics import host_devices

host_devices.use_all_cores()

import jax  # noqa: E402  (after the XLA flag)

from freqforensics import bundle, defaults, train  # noqa: E402
from freqforensics.analysis import perturbation_sweep  # noqa: E402
from freqforensics.data import reader  # noqa: E402
from freqforensics.evaluation import runner  # noqa: E402


def _config(model: str, augmented: bool):
  c = defaults.base_config()  # configs/demo.py: the synthetic benchmark, 4 x 1,000 images at 64x64
  c.model.name = model
  c.progress = False
  if augmented:
    c.augment.kind = "combined"  # probability 0.5 and the paper's strengths: the defaults
  return c


def run(model: str, augmented: bool, out: Path) -> tuple[str, dict, float, float]:
  """Trains (or resumes) one run and writes its robustness report; returns it with the two wall times."""
  label = f"{model} {'augmented' if augmented else 'clean'}"
  workdir = out / label.replace(" ", "_")
  start = time.perf_counter()
  train.train_and_evaluate(_config(model, augmented), workdir)
  trained = time.perf_counter()
  b = bundle.load(workdir / "bundle")
  prepared = reader.open_prepared(b.info["dataset"])
  source = runner.relabelled_split(prepared, b, "test")
  evaluate_fn = runner.bundle_evaluator(b, num_devices=jax.device_count(), batch_size=256, progress=False)
  about = perturbation_sweep.describe(b, workdir, prepared.path, "test", len(source))  # as the command: it can resume it
  report = perturbation_sweep.run_report(evaluate_fn, source, workdir / "robustness_test", about, progress=False, label=label)
  return label, report, trained - start, time.perf_counter() - trained


def drops(report: dict) -> dict[str, float]:
  """Mean accuracy lost below the clean accuracy over each perturbation's strengths."""
  clean = report["clean"]["accuracy"]
  return {k: sum(clean - r["accuracy"] for r in rows) / len(rows) for k, rows in report["results"].items() if rows}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="runs/robustness")
  parser.add_argument("--models", default="log2,cnn")
  parser.add_argument("--figure", default="docs/robustness.png")
  args = parser.parse_args()
  os.environ.setdefault("FREQFORENSICS_DATA", os.path.join(tempfile.gettempdir(), "freqforensics_robustness"))
  out = Path(args.out)
  print(f"# {platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__},"
        " synthetic benchmark 4 x 1,000 at 64x64, dct_log, test split (800 images)", flush=True)
  reports, styles = {}, {}
  started = time.perf_counter()
  for j, model in enumerate(args.models.split(",")):
    for augmented in (False, True):
      name, report, t_train, t_eval = run(model, augmented, out)
      reports[name] = report
      styles[name] = {"color": f"C{j}", "linestyle": "-" if augmented else "--"}
      print(f"{name}: clean accuracy {report['clean']['accuracy']:.3f}; training {t_train:.0f} s, robustness"
            f" report {t_eval:.0f} s", flush=True)
  print()
  print(perturbation_sweep.table(reports))
  print()
  kinds = list(perturbation_sweep.DEFAULT_SWEEPS)
  print("| mean accuracy drop below clean | " + " | ".join(kinds) + " |")
  print("|---|" + "---|" * len(kinds))
  for name, report in reports.items():
    d = drops(report)
    print(f"| {name} | " + " | ".join(f"{d[k]:.3f}" for k in kinds) + " |")
  Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
  perturbation_sweep.plot(reports, args.figure, styles=styles,
                  title="synthetic benchmark, dct_log: trained clean (dashed) vs with augmentation (solid)")
  print(f"\nfigure: {args.figure}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
  main()
