"""Whole runs through the command line: SIGKILL and resume, and two processes on localhost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def source(make_folders):
  src = make_folders({"A_real": 40, "B_gan": 40}, size=(16, 16))
  for p in sorted((src / "B_gan").glob("*.png")):  # a spectral fingerprint to learn
    a = np.asarray(Image.open(p))[::2, ::2]
    Image.fromarray(a.repeat(2, axis=0).repeat(2, axis=1)).save(p)
  return src


def _command(src: Path, workdir: Path, *extra: str) -> list[str]:
  return [
    sys.executable,
    "-m",
    "freqforensics.main",
    "--config=configs/folder.py:tiny",
    f"--workdir={workdir}",
    f"--config.data.source_dir={src}",
    "--config.data.image_size=16",
    "--config.data.split=(24, 8, 8)",
    "--config.train.batch_size=8",
    "--config.eval.batch_size=8",
    "--config.train.epochs=5",
    "--config.train.patience=10",
    "--config.progress=false",
    *extra,
  ]


def _env(tmp_path: Path, devices: int = 4) -> dict[str, str]:
  env = dict(os.environ, FREQFORENSICS_DATA=str(tmp_path / "data"), PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def _params(workdir: Path) -> dict[str, np.ndarray]:
  with np.load(workdir / "bundle" / "params.npz") as f:
    return dict(f)


def _assert_same_params(a: dict, b: dict) -> None:
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_sigkill_at_any_point_then_the_same_command_ends_as_an_uninterrupted_run(source, tmp_path):
  env = _env(tmp_path)
  subprocess.run(
    _command(source, tmp_path / "full", "--config.train.checkpoint_every_steps=1"),
    cwd=ROOT,
    env=env,
    check=True,
    capture_output=True,
    timeout=300,
  )
  cut = tmp_path / "cut"
  cmd = _command(source, cut, "--config.train.checkpoint_every_steps=1")
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline:  # kill once a mid-run checkpoint exists: wherever the run then is
    steps = [int(p.name) for p in (cut / "checkpoints").glob("*") if p.name.isdigit()]
    if steps and max(steps) >= 5:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
  assert not (cut / "test_metrics.json").exists()
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "resumed at epoch" in done.stderr
  _assert_same_params(_params(tmp_path / "full"), _params(cut))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_train_to_the_same_result_as_one(source, tmp_path):
  one = subprocess.run(
    _command(source, tmp_path / "one"), cwd=ROOT, env=_env(tmp_path, 4), capture_output=True, text=True, timeout=300
  )
  assert one.returncode == 0, one.stderr[-3000:]
  port = _free_port()
  procs = [
    subprocess.Popen(
      _command(
        source,
        tmp_path / "two",
        "--config.distributed=True",
        f"--config.coordinator_address=127.0.0.1:{port}",
        "--config.num_processes=2",
        f"--config.process_id={i}",
      ),
      cwd=ROOT,
      env=_env(tmp_path, 2),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "4 device(s) on 2 process(es)" in outs[0][1]
  _assert_same_params(_params(tmp_path / "one"), _params(tmp_path / "two"))
  assert (tmp_path / "two" / "test_metrics.json").read_text() != ""
