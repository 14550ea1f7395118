r"""Benchmark: `classify` on a folder of PNG files, peak memory and images/s, beside evaluation and decoding.

  python launch/bench_classify.py [--num_per_class=2500] [--size=128]

Generates the synthetic data set at SIZE (4 classes x num_per_class PNG files; 10,000 by default),
trains `log2` on `dct_log` for one epoch (any bundle will do: this measures throughput, not
accuracy), then times on the same machine, every row over the same 10,000 images and with its
compilation included:
- the evaluation loop of training over the prepared records of all three splits (read from
  array_record, already decoded; batched, on the mesh), without start-up (bundle load, data check,
  JSON and plots);
- evaluation of the PNG folder itself (`--config.eval.source_dir`, whole call: the folder is
  prepared on the fly into a fresh data root, then evaluated), the other way to score a folder;
- decoding alone: the files decoded by classify's own thread pool and preprocessing, no model (the
  ceiling of any classifier that reads these files on this machine);
- `python -m freqforensics.tools.classify --workdir=... FOLDER` as a separate process: its own images/s
  once started, the whole process's wall time (imports included), and its peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from freqforensics import host_devices

host_devices.use_all_cores()

import jax  # noqa: E402  (after the XLA flag)
import psutil  # noqa: E402

from freqforensics import bundle, defaults, steps, train  # noqa: E402
from freqforensics.data import decode, loading  # noqa: E402
from freqforensics.evaluation import inference, runner  # noqa: E402


def eval_loop_ips(c, workdir: Path) -> tuple[int, float]:
  """Images and images/s of the evaluation loop over every prepared split (one evaluator, one compile)."""
  b = bundle.load(workdir / "bundle")
  run = runner.bundle_evaluator(b, num_devices=steps.num_devices(c), batch_size=c.eval.batch_size, progress=False)
  prepared = loading.prepare_from_config(c, progress=False)
  sources = [loading.relabelled_split(prepared, b.label_names, s) for s in ("train", "val", "test")]
  start = time.perf_counter()
  n = sum(run(source, name).metrics["num_examples"] for source, name in zip(sources, ("train", "val", "test")))
  return n, n / (time.perf_counter() - start)


def folder_eval_ips(c, workdir: Path, folder: Path, num_files: int) -> float:
  """images/s of `--config.mode=eval` on the PNG folder, prepared on the fly into a fresh data root."""
  with tempfile.TemporaryDirectory() as root:
    c = c.copy_and_resolve_references()
    c.eval.source_dir = str(folder)
    c.data.data_dir = root
    start = time.perf_counter()
    m = next(iter(runner.evaluate_workdir(c, workdir).values())).metrics
    seconds = time.perf_counter() - start
  assert m["num_examples"] == num_files, (m["num_examples"], num_files)
  return num_files / seconds


def decode_ips(workdir: Path, files: list[Path], batch_size: int = 64) -> float:
  """images/s of classify's decoding alone (its thread pool and the bundle's preprocessing)."""
  clf = inference.load(workdir)
  start = time.perf_counter()
  n = sum(len(paths) for paths, _ in decode.decoded_batches(files, clf.decoder(), batch_size))
  return n / (time.perf_counter() - start)


def classify_process(workdir: Path, folder: Path) -> tuple[float, float, float, Path]:
  """(images/s after start-up, whole wall seconds, peak RSS in MiB, output file) of the classify command."""
  out = workdir / f"bench_{time.strftime('%Y%m%d-%H%M%S')}.csv"
  start = time.perf_counter()
  proc = subprocess.Popen(
    [sys.executable, "-m", "freqforensics.tools.classify", f"--workdir={workdir}", f"--output={out}", str(folder)],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  peak, child = 0, psutil.Process(proc.pid)
  while proc.poll() is None:  # the child's own resident memory, sampled every 20 ms
    try:
      peak = max(peak, child.memory_info().rss)
    except psutil.NoSuchProcess:
      break
    time.sleep(0.02)
  wall = time.perf_counter() - start
  summary = proc.stdout.read()
  if proc.returncode != 0:
    raise SystemExit(f"classify failed with exit code {proc.returncode}")
  steady = float(re.search(r"\((\d+) images/s", summary).group(1))  # classify's own timing, start-up excluded
  return steady, wall, peak / (1 << 20), out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_per_class", type=int, default=2500)
  parser.add_argument("--size", type=int, default=128)
  args = parser.parse_args()
  root = Path(os.environ.get("FREQFORENSICS_DATA") or Path(tempfile.gettempdir()) / "freqforensics_bench")
  os.environ["FREQFORENSICS_DATA"] = str(root)
  c = defaults.base_config()
  c.data.image_size = c.data.synthetic.image_size = args.size
  c.data.synthetic.num_per_class = args.num_per_class
  c.data.split = (0.5, 0.1, 0.4)
  c.train.epochs = 1
  c.progress = False
  workdir = root / f"classify_bench_{args.size}_{args.num_per_class}"
  train.train_and_evaluate(c, workdir)
  folder = loading.source_dir(c, progress=False)
  files = sorted(folder.rglob("*.png"))
  c.mode = "eval"

  n_eval, eval_ips = eval_loop_ips(c, workdir)
  folder_ips = folder_eval_ips(c, workdir, folder, len(files))
  dec_ips = decode_ips(workdir, files)
  steady, wall, rss_mib, out = classify_process(workdir, folder)
  rows = sum(1 for _ in open(out)) - 1
  assert rows == len(files), f"{rows} rows for {len(files)} files"

  print(
    f"# {platform.machine()}, {os.cpu_count()} cores, {jax.device_count()} {jax.default_backend()} device(s),"
    f" {args.size}x{args.size}x3 PNG files, log2 on dct_log"
  )
  print("| what | images | images/s | classify's share | peak RSS |")
  print("|---|---|---|---|---|")
  share = lambda ips: f"{steady / ips:.0%}"
  print(
    f"| evaluation loop over the prepared records (decoded already) | {n_eval:,} | {eval_ips:,.0f} |"
    f" {share(eval_ips)} | |"
  )
  print(
    f"| evaluation of the PNG folder (prepared on the fly) | {len(files):,} | {folder_ips:,.0f} |"
    f" {share(folder_ips)} | |"
  )
  print(f"| decoding alone (classify's threads, no model) | {len(files):,} | {dec_ips:,.0f} | {share(dec_ips)} | |")
  print(f"| classify command, after start-up | {len(files):,} | {steady:,.0f} | | {rss_mib:,.0f} MiB |")
  print(f"| classify command, whole process ({wall:.1f} s) | {len(files):,} | {len(files) / wall:,.0f} | | |")


if __name__ == "__main__":
  main()
