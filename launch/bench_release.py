r"""Benchmark: freqforensics beside the release's own pipeline (TF/Keras, rebuilt from SPEC.md), one folder, one machine.

  python launch/bench_release.py --setup      # once: a separate venv with tensorflow-cpu (~1.7 GB, about a minute)
  python launch/bench_release.py [--num_images=4000] [--size=128] [--rounds=3] [--models=log2,cnn] [--json=OUT]
  python launch/bench_release.py --tiny       # seconds; without the release venv only the freqforensics half runs

Speed figures do not carry over between machines (machines of one kind differ by up to 3x), so this
answers one question on the machine it runs on: how much faster is freqforensics than the original?

One folder of N PNG files (the synthetic data set at SIZE x SIZE x 3 with five classes, real + four
simulated generators, as the paper's 5-class attribution; generated once and cached under
$FREQFORENSICS_DATA/bench_release) is read by both sides, in separate processes, alternating
(release first in odd rounds, freqforensics first in even ones) for `--rounds` rounds:
- release (`launch/release_pipeline.py`, in the venv made by `--setup`, never the project's):
  one process decodes every PNG, takes its SciPy DCT and log, runs a Welford pass over the training
  split, standardises and writes float32 TFRecords, one file per split; then Keras `model.fit` on
  the training file through tf.data, for `log2` and `cnn`.
- freqforensics: `preparation.prepare_to` (decode to uint8 array_record shards, worker processes on all
  cores) and the statistics pass of training (`stats.feature_stats`, DCT + log on device, float64
  moments); then the full training loop exactly as `train.py` runs it (grain batches, placement on
  the mesh, the jitted step with the DCT, log and standardisation inside) and the bare jitted step,
  for the same models (`launch/bench_train.py`'s `time_training`).
Both sides: 70/10/20 split per class, batch 32, Adam 1e-3, samples/s over steady-state steps after 3
untimed ones (at most `--steps`, or `--max_seconds`). Each side's peak RSS is sampled over its process
tree (worker processes included); its main process's own peak (`getrusage`) is shown too.

Printed: one markdown table, per measure the release's and freqforensics' min / median / max over the
rounds and the ratio of the medians; `--json OUT` writes the rows and every round's raw results.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_prepare import run_measured

HERE = Path(__file__).resolve().parent
RELEASE_SCRIPT = HERE / "release_pipeline.py"
# The release's environment: exact pins (resolved on PyPI, November 2026, Python 3.11), printed by --setup.
RELEASE_PINS = ("tensorflow-cpu==2.21.0", "numpy==2.4.6", "scipy==1.17.1", "pillow==13.0.0")
# Five classes, as the paper's attribution data sets: real + four generator stand-ins (synthetic.py).
GENERATORS = ("B_nearest", "C_bilinear", "D_transposed", "E_nearest")
# (key, label, better): the table's rows in order.
ROWS = (
  ("prep_stats", "preparation + statistics, images/s", "higher"),
  ("log2", "log2 training, samples/s (full loop)", "higher"),
  ("cnn", "cnn training, samples/s (full loop)", "higher"),
  ("bytes", "bytes per image on disk", "lower"),
  ("rss", "peak RSS, MiB (process tree)", "lower"),
  ("maxrss", "peak RSS, MiB (main process, getrusage)", "lower"),
  ("prep", "preparation alone, images/s", "higher"),
  ("stats", "statistics pass, s", "lower"),
  ("log2_bare", "log2 bare jitted step, samples/s", "higher"),
  ("cnn_bare", "cnn bare jitted step, samples/s", "higher"),
)
RELEASE_KEYS = ("prep_stats", "log2", "cnn", "bytes", "rss", "maxrss")  # the rows measured on both sides
TINY = {"num_images": 80, "size": 32, "rounds": 1, "steps": 3, "max_seconds": 5.0}


def fail(message: str) -> None:
  """One `error:` line on stderr and exit code 2, as the project's commands end on a user's mistake."""
  print(f"error: {message}", file=sys.stderr)
  raise SystemExit(2)


def data_root() -> Path:
  """$FREQFORENSICS_DATA, else ~/.cache/freqforensics (the project's data root)."""
  return Path(os.environ.get("FREQFORENSICS_DATA") or "~/.cache/freqforensics").expanduser()


def venv_python(venv: Path) -> Path:
  return venv / "bin" / "python"


def setup(venv: Path) -> None:
  """Creates the release's virtual environment at `venv` with `RELEASE_PINS`; prints the versions installed."""
  venv = venv.expanduser().resolve()
  if venv == Path(sys.prefix).resolve():
    fail(f"{venv} is the environment running this script: the release needs its own (--venv)")
  base = getattr(sys, "_base_executable", sys.executable)  # the interpreter behind the project's venv
  print(f"creating {venv} with {base} ...", flush=True)
  subprocess.run([base, "-m", "venv", str(venv)], check=True)
  subprocess.run(
    [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q", *RELEASE_PINS], check=True
  )
  versions = subprocess.run(
    [
      str(venv_python(venv)),
      "-c",
      "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in"
      " ('tensorflow-cpu', 'keras', 'numpy', 'scipy', 'pillow', 'protobuf')))",
    ],
    check=True,
    capture_output=True,
    text=True,
  ).stdout.strip()
  size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
  print(f"release environment ready: {venv} ({size / 2**30:.1f} GiB): {versions}")


def machine_line() -> str:
  """The machine the numbers belong to: CPU model, cores, memory, load, Python and JAX versions."""
  cpu = platform.processor() or platform.machine()
  try:
    cpu = next(
      line.split(":", 1)[1].strip()
      for line in Path("/proc/cpuinfo").read_text().splitlines()
      if line.startswith("model name")
    )
  except (OSError, StopIteration):
    pass
  mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
  load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
  return (
    f"# {platform.node()}: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; load average {load};"
    f" Python {platform.python_version()}, jax {importlib.metadata.version('jax')}"
  )


def source_folder(num_images: int, size: int) -> Path:
  """N PNG files (N // 5 per class, five classes) of the synthetic data set at SIZE, generated once."""
  from freqforensics.generators import synthetic  # pylint: disable=g-import-not-at-top

  per_class = max(1, num_images // (1 + len(GENERATORS)))
  out = data_root() / "bench_release" / f"png-{per_class}x5-s{size}"
  synthetic.generate(out, num_per_class=per_class, image_size=size, generators=GENERATORS, progress=True)
  return out


def warm_page_cache(folder: Path) -> int:
  """Reads every file once, so that neither side pays for the first read from disk; returns the bytes."""
  return sum(len(f.read_bytes()) for f in sorted(folder.rglob("*.png")))


# --- freqforensics' side (a child process of this script, in the project's environment).


def run_freqforensics(src: Path, work: Path, size: int, models: list[str], *, steps: int, max_seconds: float) -> dict:
  """Prepare + statistics, then the training loop per model, timed as `launch/bench_train.py` does."""
  import bench_train  # pylint: disable=g-import-not-at-top  (asks XLA for one CPU device per core first)
  import jax  # pylint: disable=g-import-not-at-top

  from freqforensics import sharding, stats  # pylint: disable=g-import-not-at-top
  from freqforensics import steps as ff_steps  # pylint: disable=g-import-not-at-top
  from freqforensics.data import preparation  # pylint: disable=g-import-not-at-top

  options = preparation.PrepareOptions(image_size=size, channels=3, split=(0.7, 0.1, 0.2))
  start = time.perf_counter()
  prepared = preparation.prepare_to(src, work / "prepared", options, progress=False)
  prep_s = time.perf_counter() - start
  on_disk = sum(f.stat().st_size for f in prepared.path.rglob("*") if f.is_file())
  config = bench_train.config_for(models[0] if models else "log2", size)
  start = time.perf_counter()
  mesh = sharding.make_mesh(ff_steps.num_devices(config))
  stats.feature_stats(prepared, "dct_log", mesh, batch_size=config.eval.batch_size, progress=False)
  stats_s = time.perf_counter() - start
  n = sum(prepared.num_examples.values())
  train = {
    m: bench_train.time_training(bench_train.config_for(m, size), prepared, steps, warmup=2, max_seconds=max_seconds)
    for m in models
  }
  return {
    "side": "freqforensics",
    "train": train,
    "devices": jax.device_count(),
    "prep": {"images": n, "prep_seconds": prep_s, "stats_seconds": stats_s, "bytes_per_image": on_disk / n},
    "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "versions": {p: importlib.metadata.version(p) for p in ("jax", "flax", "optax", "grain", "numpy")},
  }


# --- One round of one side, measured from here.


def measure(side: str, src: Path, args, venv: Path) -> dict:
  """Runs one side on `src` in its own process (a fresh work folder); returns its measures by row key."""
  models = [m for m in args.models.split(",") if m]
  common = ["--steps", str(args.steps), "--max_seconds", str(args.max_seconds), "--models", ",".join(models)]
  root = data_root() / "bench_release"
  root.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=root, prefix=f"{side}-") as tmp:
    if side == "release":
      cmd = [
        str(venv_python(venv)),
        str(RELEASE_SCRIPT),
        "--src",
        str(src),
        "--work",
        str(Path(tmp) / "records"),
        "--warmup",
        "3",
        *common,
      ]
      env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}  # nothing of ours there
    else:
      cmd = [
        sys.executable,
        __file__,
        "--_child",
        "--_src",
        str(src),
        "--_work",
        tmp,
        "--size",
        str(args.size),
        *common,
      ]
      env = None
    with open(Path(tmp) / "stderr.txt", "w") as err:
      stdout, code, peak = run_measured(cmd, env=env, stderr=err)
    if code:
      tail = "".join((Path(tmp) / "stderr.txt").read_text().splitlines(keepends=True)[-25:])
      print(tail, file=sys.stderr)
      fail(f"the {side} side failed with exit code {code} (its stderr ends above)")
  r = json.loads(stdout.strip().splitlines()[-1])
  p = r["prep"]
  out = {"raw": r, "bytes": p["bytes_per_image"], "rss": peak / 2**20, "maxrss": r["maxrss_mib"]}
  if side == "release":
    out["prep_stats"] = p["images_per_s"]
    out.update({m: t["samples_per_s"] for m, t in r["train"].items()})
  else:
    out["prep_stats"] = p["images"] / (p["prep_seconds"] + p["stats_seconds"])
    out["prep"], out["stats"] = p["images"] / p["prep_seconds"], p["stats_seconds"]
    out.update({m: t["full"] for m, t in r["train"].items()})
    out.update({f"{m}_bare": t["bare"] for m, t in r["train"].items()})
  return out


def _fmt(x: float) -> str:
  return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _spread(values: list[float]) -> str:
  if not values:
    return "-"
  return " / ".join(_fmt(v) for v in (min(values), statistics.median(values), max(values)))


def table(runs: dict[str, list[dict]], models: list[str]) -> tuple[str, list[dict]]:
  """The markdown table (min / median / max per side, ratio of medians) and its rows as dicts.

  A release cell reads `skipped` when the release side did not run, `-` for a measure it has not
  (its preparation and statistics are one pass; Keras has no bare step apart from `fit`).
  """
  lines = [
    "| measure | release min / median / max | freqforensics min / median / max | freqforensics / release (medians) |",
    "|---|---|---|---|",
  ]
  rows = []
  for key, label, better in ROWS:
    if key.split("_")[0] in ("log2", "cnn") and key.split("_")[0] not in models:
      continue
    rel = [r[key] for r in runs["release"] if key in r]
    ff = [r[key] for r in runs["freqforensics"] if key in r]
    ratio = statistics.median(ff) / statistics.median(rel) if rel and ff else None
    rows.append({"measure": label, "key": key, "better": better, "release": rel, "freqforensics": ff, "ratio": ratio})
    rel_cell = "-" if key not in RELEASE_KEYS else _spread(rel) if rel else "skipped"
    ratio_cell = f"{ratio:.2f}x ({better} is better)" if ratio is not None else "-"
    lines.append(f"| {label} | {rel_cell} | {_spread(ff)} | {ratio_cell} |")
  return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
    description=__doc__.splitlines()[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog="\n".join(__doc__.splitlines()[1:5]),
  )
  parser.add_argument("--setup", action="store_true", help="create the release's venv (tensorflow-cpu) and exit")
  parser.add_argument(
    "--venv",
    default=None,
    help="the release's venv (default: $FREQFORENSICS_DATA/release-venv, else ~/.cache/freqforensics/release-venv)",
  )
  parser.add_argument("--num_images", type=int, default=4000, help="PNG files, five classes")
  parser.add_argument("--size", type=int, default=128, help="image side")
  parser.add_argument("--rounds", type=int, default=3, help="rounds of both sides, alternating")
  parser.add_argument("--models", default="log2,cnn", help="comma-separated, of log2 and cnn")
  parser.add_argument("--steps", type=int, default=60, help="timed training steps per model (at most)")
  parser.add_argument("--max_seconds", type=float, default=20.0, help="time limit of one model's timed steps")
  parser.add_argument("--json", default="", help="write the rows and raw results here")
  parser.add_argument("--tiny", action="store_true", help="80 images of 32x32, 1 round, 3 steps: a smoke test")
  parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--_src", help=argparse.SUPPRESS)
  parser.add_argument("--_work", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  models = [m for m in args.models.split(",") if m]
  if args._child:
    r = run_freqforensics(
      Path(args._src), Path(args._work), args.size, models, steps=args.steps, max_seconds=args.max_seconds
    )
    print(json.dumps(r), flush=True)
    return
  if bad := [m for m in models if m not in ("log2", "cnn")]:
    parser.error(f"--models: {', '.join(bad)} not benchmarked against the release (log2, cnn)")
  venv = Path(args.venv).expanduser() if args.venv else data_root() / "release-venv"
  if args.setup:
    return setup(venv)
  if args.tiny:
    for k, v in TINY.items():
      setattr(args, k, v)
  have_release = venv_python(venv).is_file()
  if not have_release and not args.tiny:
    fail(
      f"no release environment at {venv}: create it with `python launch/bench_release.py --setup` (a separate"
      " venv with tensorflow-cpu), or pass --venv"
    )
  print(machine_line(), flush=True)
  src = source_folder(args.num_images, args.size)
  n_files = sum(1 for _ in src.rglob("*.png"))
  print(
    f"# {n_files:,} PNG files of {args.size}x{args.size}x3 in 5 classes ({warm_page_cache(src) / n_files / 1024:.1f}"
    f" KiB each) at {src}; {args.rounds} round(s), batch 32, models {', '.join(models)}",
    flush=True,
  )
  runs: dict[str, list[dict]] = {"release": [], "freqforensics": []}
  for i in range(args.rounds):
    order = ("release", "freqforensics") if i % 2 == 0 else ("freqforensics", "release")
    for side in order:
      if side == "release" and not have_release:
        continue
      start = time.perf_counter()
      runs[side].append(measure(side, src, args, venv))
      print(f"# round {i + 1}/{args.rounds}: {side} done in {time.perf_counter() - start:.0f} s", flush=True)
  text, rows = table(runs, models)
  print()
  print(text)
  versions = {side: r[0]["raw"]["versions"] for side, r in runs.items() if r}
  for side, v in versions.items():
    print(f"# {side}: " + ", ".join(f"{k} {x}" for k, x in v.items()))
  print(f"# load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
  if not have_release:
    print(
      f"note: the release (TensorFlow) half was skipped: no release environment at {venv}; create it with"
      " `python launch/bench_release.py --setup` (a separate venv with tensorflow-cpu), then run again"
    )
  if args.json:
    out = {
      "machine": machine_line(),
      "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
      "rows": rows,
      "versions": versions,
      "runs": {side: [r["raw"] for r in rs] for side, rs in runs.items()},
    }
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
  main()
