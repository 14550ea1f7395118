r"""Benchmark: `classify` on a folder of images, peak memory and images/s, beside the evaluation loop.

  python launch/bench_classify.py [--num_per_class=2500] [--size=128]

Generates the synthetic benchmark at SIZE (4 classes x num_per_class PNG files; 10,000 by default),
trains `log2` on `dct_log` for one epoch (any bundle will do: this measures throughput, not
accuracy), then times, on the same machine:
- the evaluation loop of training (`--config.mode=eval` on the prepared test split: records read
  from array_record, batched, on the mesh), in images/s;
- `python -m freqforensics.classify --workdir=... FOLDER` over every PNG file (decoding included),
  as a separate process: its own images/s once started (as the evaluation loop is timed), the whole
  process's wall time (imports and compilation included), and its peak resident memory (RSS).
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

from freqforensics import defaults, eval_run, train  # noqa: E402
from freqforensics.data import dataset  # noqa: E402


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
  folder = dataset.source_dir(c, progress=False)
  num_files = sum(1 for _ in folder.rglob("*.png"))

  c.mode = "eval"
  c.eval.splits = ("test",)
  start = time.perf_counter()
  m = eval_run.evaluate_workdir(c, workdir)["test"]
  eval_ips = m["num_examples"] / (time.perf_counter() - start)

  out = workdir / f"bench_{time.strftime('%Y%m%d-%H%M%S')}.csv"
  start = time.perf_counter()
  proc = subprocess.Popen([sys.executable, "-m", "freqforensics.classify", f"--workdir={workdir}", f"--output={out}",
                           str(folder)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  peak, child = 0, psutil.Process(proc.pid)
  while proc.poll() is None:  # the child's own resident memory, sampled every 20 ms
    try:
      peak = max(peak, child.memory_info().rss)
    except psutil.NoSuchProcess:
      break
    time.sleep(0.02)
  wall = time.perf_counter() - start
  summary = proc.stdout.read()
  steady = float(re.search(r"\((\d+) images/s", summary).group(1))  # classify's own timing, start-up excluded
  if proc.returncode != 0:
    raise SystemExit(f"classify failed with exit code {proc.returncode}")
  rss_mib = peak / (1 << 20)
  print(f"# {platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s), {args.size}x{args.size}x3,"
        " log2 on dct_log")
  print("| what | images | images/s | peak RSS |")
  print("|---|---|---|---|")
  print(f"| evaluation loop (prepared test split) | {m['num_examples']:,} | {eval_ips:,.0f} | (in process) |")
  print(f"| classify command: after start-up (PNG decoding included) | {num_files:,} | {steady:,.0f} | {rss_mib:,.0f} MiB |")
  print(f"| classify command: whole process, {wall:.1f} s | {num_files:,} | {num_files / wall:,.0f} | |")
  rows = sum(1 for _ in open(out)) - 1
  assert rows == num_files, f"{rows} rows for {num_files} files"


if __name__ == "__main__":
  main()
