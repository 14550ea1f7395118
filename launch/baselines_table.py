r"""The paper's attribution table: kNN, Eigenfaces, PRNU beside log2 (pixel, DCT), each as its own command line.

  python launch/baselines_table.py [--pca_subset=1000] [--n_jobs=0] [--config=configs/demo.py] \
      [--results=runs/results] [--resume=FOLDER] [--tiny] [--config.KEY=VALUE ...]

Runs, each as its own command line (as a user would, so every peak RSS is that command's own):
- `python -m freqforensics.tools.classic_baselines grid_search` then `train` (the best grid point,
  scored on the test split) for knn, eigenfaces and prnu with `configs/baselines.py` (pixels, the
  paper's setting) on the data of `--config`: the script prepares it first and passes it on as
  `--config.data.prepared_dir` (with its image size, channels and the config's seed);
- `python -m freqforensics.main --config=CONFIG` with `features=pixel` and `dct_log` (the paper's
  ridge model when CONFIG is configs/demo.py: log2).
Every command gets the script's `--config.KEY=VALUE` arguments too, so a key of the base config
(e.g. `--config.data.prepared_dir=DIR` for data prepared with `python -m freqforensics.tools.prepare`)
reaches all of them. Writes into a new folder under `--results` (`RESULTS/baselines/<time>/`):
- `baselines.md` / `.json`: per method the grid points, the best point with its val accuracy, the
  test accuracy (overall and per class), wall time and peak RSS;
- `baselines/`: the classic baselines' work dir (`<name>.json` with every grid point);
- `runs/<model>_<features>/`: the work dirs of the config's model (log2 for the demo).
Wall time covers the whole commands (grid search + train for a baseline; start-up, statistics,
training and evaluation for log2); peak RSS is that of the largest single process of a command
(PRNU's workers included). About 5 min on 2 CPU cores. `--resume=RESULTS/baselines/<time>`
finishes an earlier folder instead of starting a new one: finished commands are not run again
(their results are read back, without wall time and RSS), an interrupted one picks up where it
stopped. `--tiny`: the config's `:tiny` form (and `configs/baselines.py:NAME,tiny`, PCA subset at
most 200), about a minute.
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
from typing import Any

from freqforensics.errors import UserError
from freqforensics.tools import scripts

ROOT = Path(__file__).resolve().parents[1]
BASELINES = {"knn": "kNN", "eigenfaces": "Eigenfaces", "prnu": "PRNU"}
FEATURES = {"pixel": "pixels", "dct_log": "log DCT"}


def _run(args: list[str]) -> tuple[float, float]:
  """Runs `python *args` with this checkout's package; returns its wall time (s) and peak RSS (MiB).

  A one-line error of the command (exit code 2) is raised as a `UserError`; another failure ends
  the script with the command's last lines of stderr.
  """
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  start = time.perf_counter()
  with tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
      err.seek(0)
      text = err.read()
      last = text.strip().rsplit("\n", 1)[-1]
      if proc.returncode == UserError.exit_code and last.startswith("error: "):
        raise UserError(f"{' '.join(args[:3])}: {last.removeprefix('error: ')}")
      raise SystemExit(f"{' '.join(args)} failed (exit {proc.returncode}):\n{text[-3000:]}")
  return time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: KiB


def _per_class(m: dict[str, Any]) -> str:
  return " / ".join(f"{v:.3f}" for v in m["per_class_accuracy"].values())


def log2_row(args: argparse.Namespace, out: Path, features: str) -> dict[str, Any]:
  """`python -m freqforensics.main` on the script's config with `features` (read back when it finished)."""
  c = scripts.script_config(args)
  c.features, c.progress = features, False
  wd = out / "runs" / f"{c.model.name}_{features}"
  seconds = rss = None
  if not (
    (wd / "test_metrics.json").is_file()
    and (wd / "config.json").is_file()
    and json.loads((wd / "config.json").read_text()) == json.loads(c.to_json())
  ):
    seconds, rss = _run(
      [
        "-m",
        "freqforensics.main",
        f"--config={scripts.config_spec(args)}",
        f"--workdir={wd}",
        *args.overrides,
        f"--config.features={features}",
        "--config.progress=False",
      ]
    )
  m = json.loads((wd / "test_metrics.json").read_text())
  return {
    "method": "ridge (log2)" if c.model.name == "log2" else c.model.name,
    "input": FEATURES.get(features, features),
    "points": None,
    "best": f"epoch {m['epoch']} of training (val loss)",
    "test": m["accuracy"],
    "per_class": _per_class(m),
    "per_class_accuracy": m["per_class_accuracy"],
    "seconds": seconds,
    "rss": rss,
  }


def baseline_row(args: argparse.Namespace, out: Path, name: str, overrides: list[str]) -> dict[str, Any]:
  """grid_search then train of one classic baseline (read back when both finished with these settings)."""
  from freqforensics.baselines import commands  # pylint: disable=g-import-not-at-top

  spec = f"{ROOT / 'configs' / 'baselines.py'}:{name}{',tiny' if args.tiny else ''}"
  config = scripts.load_config(spec, None, overrides)  # checked here: a mistake is one line before any command
  wd = out / "baselines"
  path = wd / f"{name}.json"
  settings = commands.settings(config, Path(config.data.prepared_dir))
  saved = json.loads(path.read_text()) if path.is_file() else {}
  seconds = rss = 0.0
  for command in ("grid_search", "train"):
    if (
      saved.get("settings") != json.loads(json.dumps(settings))
      or command not in saved
      or (command == "grid_search" and "best" not in saved[command])
    ):
      t, r = _run(
        ["-m", "freqforensics.tools.classic_baselines", command, f"--config={spec}", f"--workdir={wd}", *overrides]
      )
      seconds, rss = seconds + t, max(rss, r)
      saved = json.loads(path.read_text())
  grid, trained = saved["grid_search"], saved["train"]
  best_row = next(r for r in grid["rows"] if all(r.get(k) == v for k, v in grid["best"].items()))
  return {
    "method": BASELINES[name],
    "input": "pixels (noise residual)" if name == "prnu" else FEATURES.get(config.features, config.features),
    "points": len(grid["rows"]),
    "best": ", ".join(f"{k}={v}" for k, v in grid["best"].items()) + f" ({best_row['accuracy']:.3f})",
    "test": trained["test"]["accuracy"],
    "per_class": _per_class(trained["test"]),
    "per_class_accuracy": trained["test"]["per_class_accuracy"],
    "seconds": seconds or None,
    "rss": rss or None,
  }


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.add_argument("--pca_subset", type=int, default=1000, help="Eigenfaces: class-balanced images for the PCA")
  parser.add_argument("--n_jobs", type=int, default=0, help="baseline worker processes; 0 = one per core")
  args = scripts.parse_args(parser, argv)
  config = scripts.script_config(args)
  out = scripts.output_dir(args, "baselines")
  from freqforensics.data import loading  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  prepared = loading.prepare_from_config(config, progress=False)  # generate + prepare once, timed apart
  print(f"data prepared (or found) in {time.perf_counter() - start:.0f} s: {prepared.path}", file=sys.stderr)
  size, _, channels = prepared.image_shape
  # The baselines' config is configs/baselines.py; the data, seed and the script's overrides are the script config's.
  data = [
    *args.overrides,
    f"--config.data.prepared_dir={prepared.path}",
    f"--config.data.image_size={size}",
    f"--config.data.channels={channels}",
    f"--config.seed={config.seed}",
    "--config.progress=False",
    f"--config.baseline.n_jobs={args.n_jobs}",
  ]
  pca = min(args.pca_subset, 200) if args.tiny else args.pca_subset  # as configs/baselines.py:tiny
  rows = [
    baseline_row(args, out, "knn", data),
    baseline_row(args, out, "eigenfaces", data + [f"--config.baseline.eigenfaces.pca_subset={pca}"]),
    baseline_row(args, out, "prnu", data),
    log2_row(args, out, "pixel"),
    log2_row(args, out, "dct_log"),
  ]
  columns = [
    ("method", "method", "s"),
    ("input", "input", "s"),
    ("points", "grid points", "d"),
    ("best", "best (val accuracy)", "s"),
    ("test", "test accuracy", ".3f"),
    ("per_class", f"per class ({' / '.join(prepared.label_names)})", "s"),
    ("seconds", "wall time (s)", ".0f"),
    ("rss", "peak RSS (MiB)", ",.0f"),
  ]
  title = "Attribution: the classic baselines beside log2, each as its own command"
  notes = (
    f"Config {scripts.config_label(args)}; test split ({prepared.num_examples['test']} images); Eigenfaces"
    f" PCA subset {pca}; {platform.machine()}, {os.cpu_count()} cores; wall time and peak RSS of the whole"
    " commands (- for results read back); ours."
  )
  scripts.write_results(out, "baselines", rows, columns, title=title, notes=notes, show=True)
  return out


if __name__ == "__main__":
  scripts.script_main(main, sys.argv[1:])
