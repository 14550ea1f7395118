r"""The paper's attribution table on the synthetic benchmark: kNN, Eigenfaces, PRNU beside log2 (pixel, DCT).

  python launch/baselines_table.py [--out=runs/baselines_table] [--pca_subset=1000] [--n_jobs=0]

Runs, each as its own command line (as a user would, so every peak RSS is that command's own):
- `python -m freqforensics.main --config=configs/demo.py` with `features=pixel` and `dct_log` (the
  paper's ridge model, log2);
- `python -m freqforensics.tools.classic_baselines grid_search` then `train` (the best grid point, scored on the
  test split) for knn, eigenfaces and prnu with `configs/baselines.py` (pixels, the paper's setting).
Then prints a markdown table and writes it to OUT/table.md. Wall time covers the whole commands
(grid search + train for a baseline; start-up, statistics, training and evaluation for log2); peak
RSS is that of the largest single process of a command (PRNU's workers included). Finished commands
are not run again (their results are read), so an interrupted run picks up where it stopped. The data cache is
`$FREQFORENSICS_DATA` (default `~/.cache/freqforensics`), shared with the demo.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("A_real", "B_nearest", "C_bilinear", "D_transposed")


def _run(args: list[str]) -> tuple[float, float]:
  """Runs a command line from the repository root; returns its wall time (s) and peak RSS (MiB)."""
  start = time.perf_counter()
  with tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
      err.seek(0)
      raise SystemExit(f"{' '.join(args)} failed (exit {proc.returncode}):\n{err.read()[-3000:]}")
  return time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: KiB


def _per_class(m: dict) -> str:
  return " / ".join(f"{m['per_class_accuracy'][c]:.3f}" for c in CLASSES)


def dct_model(out: Path, features: str) -> dict:
  wd = out / f"log2_{features}"
  path = wd / "test_metrics.json"
  seconds = rss = None
  if not path.is_file():
    seconds, rss = _run(["-m", "freqforensics.main", "--config=configs/demo.py", f"--workdir={wd}",
                         f"--config.features={features}", "--config.progress=False"])
  m = json.loads(path.read_text())
  return {"method": "ridge (log2)", "input": {"pixel": "pixels", "dct_log": "log DCT"}[features], "points": "-",
          "best": f"epoch {m['epoch']} of training (val loss)", "test": m["accuracy"], "per_class": _per_class(m),
          "seconds": seconds, "rss": rss}


def baseline(out: Path, name: str, overrides: list[str]) -> dict:
  wd = out / "baselines"
  common = [f"--config=configs/baselines.py:{name}", f"--workdir={wd}", "--config.progress=False", *overrides]
  path = wd / f"{name}.json"
  saved = json.loads(path.read_text()) if path.is_file() else {}
  seconds, rss = 0.0, 0.0
  for command in ("grid_search", "train"):
    if command not in saved or (command == "grid_search" and "best" not in saved[command]):
      t, r = _run(["-m", "freqforensics.tools.classic_baselines", command, *common])
      seconds, rss = seconds + t, max(rss, r)
      saved = json.loads(path.read_text())
  grid, trained = saved["grid_search"], saved["train"]
  best_row = next(r for r in grid["rows"] if all(r.get(k) == v for k, v in grid["best"].items()))
  return {"method": {"knn": "kNN", "eigenfaces": "Eigenfaces", "prnu": "PRNU"}[name],
          "input": "pixels" if name != "prnu" else "pixels (noise residual)", "points": str(len(grid["rows"])),
          "best": ", ".join(f"{k}={v}" for k, v in grid["best"].items()) + f" ({best_row['accuracy']:.3f})",
          "test": trained["test"]["accuracy"], "per_class": _per_class(trained["test"]),
          "seconds": seconds or None, "rss": rss or None}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="runs/baselines_table")
  parser.add_argument("--pca_subset", type=int, default=1000, help="Eigenfaces: class-balanced images for the PCA")
  parser.add_argument("--n_jobs", type=int, default=0, help="baseline worker processes; 0 = one per core")
  args = parser.parse_args()
  out = (ROOT / args.out).resolve()
  start = time.perf_counter()
  from freqforensics import defaults  # pylint: disable=g-import-not-at-top
  from freqforensics.data import loading  # pylint: disable=g-import-not-at-top

  loading.prepare_from_config(defaults.base_config(), progress=False)  # generate + prepare once, timed apart
  print(f"benchmark data generated/prepared (or found) in {time.perf_counter() - start:.0f} s", file=sys.stderr)
  jobs = [f"--config.baseline.n_jobs={args.n_jobs}"]
  rows = [baseline(out, "knn", jobs),
          baseline(out, "eigenfaces", jobs + [f"--config.baseline.eigenfaces.pca_subset={args.pca_subset}"]),
          baseline(out, "prnu", jobs),
          dct_model(out, "pixel"), dct_model(out, "dct_log")]
  lines = [f"# {platform.machine()}, {os.cpu_count()} cores; synthetic benchmark (4 classes x 1,000 images, 64x64,"
           " 70/10/20); test split: 800 images",
           "| method | input | grid points | best (val accuracy) | test accuracy | per class (real / nearest /"
           " bilinear / transposed) | wall time | peak RSS |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    secs = f"{r['seconds']:.0f} s" if r["seconds"] is not None else "(earlier run)"  # whole commands
    rss = f"{r['rss']:,.0f} MiB" if r["rss"] is not None else ""
    lines.append(f"| {r['method']} | {r['input']} | {r['points']} | {r['best']} | **{r['test']:.3f}** |"
                 f" {r['per_class']} | {secs} | {rss} |")
  table = "\n".join(lines)
  print(table)
  (out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
  main()
