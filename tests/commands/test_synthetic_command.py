"""The synthetic data command: its flags reach the written synthetic data; a bad value is one line and exit code 2."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from conftest import one_line_error

from freqforensics.generators import synthetic


def test_command_line_flags_and_one_line_error(tmp_path):
  root = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu")
  command = [sys.executable, "-m", "freqforensics.tools.synthetic", "--num_per_class=2"]
  out = tmp_path / "cli"
  r = subprocess.run(
    command
    + [
      f"--out_dir={out}",
      "--image_size=16",
      "--noprogress",
      "--fingerprint=0.5",
      "--jpeg_quality=80",
      "--lowpass=0.5",
    ],
    cwd=root,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert r.returncode == 0, r.stderr[-2000:]
  meta = json.loads((out / synthetic.MARKER).read_text())
  assert (meta["fingerprint"], meta["jpeg_quality"], meta["lowpass"]) == (0.5, 80, 0.5)
  r = subprocess.run(
    command + [f"--out_dir={tmp_path / 'x'}", "--fingerprint=0"],
    cwd=root,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert "fingerprint" in one_line_error(r)
