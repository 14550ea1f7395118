r"""Benchmark: preparing N image files, ours against the release's approach, images/s and peak memory.

  python launch/bench_prepare.py [--num=20000] [--size=128] [--classes=5] [--workers=0]

Generates N PNG files (`--classes` class folders, SIZE x SIZE, smooth random colour fields with a
little noise: they compress and decode like natural images, about 25 KB each at 128x128), once,
cached beside the results. Then each method runs in its own process, timed from the start of the
work (imports excluded) to the output on disk; peak memory is the largest sum of resident memory
(RSS) over the process and all its children, sampled every 100 ms:
- `naive`: the release's loop: one process, Pillow + numpy per file, every image kept in a list,
  then one `np.stack` and one `.npy` file per split (70/10/20 per class).
- `freqforensics`: `freqforensics.data.preparation.prepare_to` with the same split, crop `center`: the
  decoding tasks in worker processes on all cores, then the records packed into array_record shards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image


def generate(root: Path, num: int, size: int, classes: int) -> Path:
  """`num` PNG files in `classes` folders (reused when complete)."""
  src = root / f"png_n{num}_s{size}_c{classes}"
  done = src / ".complete"
  if done.is_file():
    return src
  rng = np.random.default_rng(0)
  for i in range(num):
    folder = src / f"class_{i % classes}"
    folder.mkdir(parents=True, exist_ok=True)
    coarse = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), np.int16)
    image = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(folder / f"{i // classes:06d}.png")
  done.write_text("")
  return src


def naive(src: Path, out: Path, size: int) -> int:
  """The release's approach: everything in memory, single process, one array per split."""
  splits: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
  for folder in sorted(p for p in src.iterdir() if p.is_dir()):
    files = sorted(folder.glob("*.png"))
    n_train, n_val = int(len(files) * 0.7), int(len(files) * 0.1)
    for j, f in enumerate(files):
      image = Image.open(f).convert("RGB")
      if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
      split = "train" if j < n_train else "val" if j < n_train + n_val else "test"
      splits[split].append(np.asarray(image))
  out.mkdir(parents=True, exist_ok=True)
  for name, arrays in splits.items():
    np.save(out / f"{name}.npy", np.stack(arrays))
  return sum(len(v) for v in splits.values())


def ours(src: Path, out: Path, size: int, workers: int) -> int:
  from freqforensics.data import preparation  # pylint: disable=g-import-not-at-top

  options = preparation.PrepareOptions(image_size=size, channels=3, split=(0.7, 0.1, 0.2), num_threads=workers)
  ds = preparation.prepare_to(src, out, options, progress=False)
  return sum(ds.num_examples.values())


def _child(args) -> None:
  """Runs one method in this process and prints its result as JSON."""
  src, out = Path(args.src), Path(args.out)
  if args.method != "naive":
    from freqforensics.data import preparation, reader  # noqa: F401  (imports are not part of the work timed)
  start = time.perf_counter()
  n = naive(src, out, args.size) if args.method == "naive" else ours(src, out, args.size, args.workers)
  print(json.dumps({"images": n, "seconds": time.perf_counter() - start}))


def run_measured(cmd: list[str], env: dict[str, str] | None = None, stderr=None) -> tuple[str, int, int]:
  """Runs `cmd` (stderr to `stderr`, a file, if given); returns its stdout, its exit code and the peak RSS
  in bytes of its whole process tree.

  Peak memory is the largest sum of resident memory over the process and all its children (worker
  processes count), sampled every 100 ms.
  """
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
  peak, stop = [0], threading.Event()

  def sample() -> None:
    root = psutil.Process(proc.pid)
    while not stop.is_set():
      try:
        procs = [root] + root.children(recursive=True)
        peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs if p.is_running()))
      except psutil.Error:
        pass
      time.sleep(0.1)

  thread = threading.Thread(target=sample, daemon=True)
  thread.start()
  stdout, _ = proc.communicate()
  stop.set()
  thread.join()
  return stdout, proc.returncode, peak[0]


def _measure(method: str, src: Path, out: Path, args) -> dict:
  cmd = [
    sys.executable,
    __file__,
    "--_child",
    method,
    "--_src",
    str(src),
    "--_out",
    str(out),
    f"--size={args.size}",
    f"--workers={args.workers}",
  ]
  stdout, code, peak = run_measured(cmd)
  if code:
    raise SystemExit(f"{method} failed with exit code {code}")
  result = json.loads(stdout.strip().splitlines()[-1])
  return dict(result, method=method, peak_rss_mib=peak / 2**20, images_per_s=result["images"] / result["seconds"])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num", type=int, default=20000)
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--classes", type=int, default=5)
  parser.add_argument("--workers", type=int, default=0, help="freqforensics workers; 0 = one per core")
  parser.add_argument("--_child", dest="method", help=argparse.SUPPRESS)
  parser.add_argument("--_src", dest="src", help=argparse.SUPPRESS)
  parser.add_argument("--_out", dest="out", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.method:
    return _child(args)
  root = Path(os.environ.get("FREQFORENSICS_BENCH", Path(tempfile.gettempdir()) / "freqforensics_bench_prepare"))
  print(f"generating/reusing {args.num:,} PNG files of {args.size}x{args.size} ...", flush=True)
  src = generate(root, args.num, args.size, args.classes)
  results = []
  for method in ("naive", "freqforensics"):
    with tempfile.TemporaryDirectory(dir=root) as tmp:
      results.append(_measure(method, src, Path(tmp) / "out", args))
  print(f"\n{platform.node()}: {os.cpu_count()} cores, {args.num:,} PNG files of {args.size}x{args.size}x3")
  print("| method | images/s | seconds | peak RSS (MiB, process tree) |")
  print("|---|---|---|---|")
  for r in results:
    print(f"| {r['method']} | {r['images_per_s']:,.0f} | {r['seconds']:.1f} | {r['peak_rss_mib']:,.0f} |")
  print(
    f"\nspeed-up: {results[1]['images_per_s'] / results[0]['images_per_s']:.2f}x"
    f" (target >= 1.8x on 2 cores); peak RSS {results[1]['peak_rss_mib']:,.0f} MiB (target < 1024)"
  )


if __name__ == "__main__":
  main()
