"""`launch/bench_release.py --tiny`: the freqforensics half of the side-by-side benchmark runs and prints its table.

The release half needs TensorFlow in a separate venv (`--setup`); here `--venv` names a folder that
does not exist, so that half is skipped with a note, whatever this machine has installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import one_line_error

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_prints_the_freqforensics_rows_and_the_skip_note(tmp_path):
  env = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    FREQFORENSICS_DATA=str(tmp_path / "data"),
  )
  out = tmp_path / "rows.json"
  r = subprocess.run(
    [sys.executable, "launch/bench_release.py", "--tiny", f"--venv={tmp_path / 'no-venv'}", f"--json={out}"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
  lines = r.stdout.splitlines()
  assert lines[0].startswith("# ") and "cores" in lines[0]  # the machine line first
  rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
  for measure in (
    "preparation + statistics, images/s",
    "log2 training, samples/s (full loop)",
    "cnn training, samples/s (full loop)",
    "bytes per image on disk",
    "peak RSS, MiB (process tree)",
  ):
    cells = [c.strip() for c in rows[measure].strip("|").split("|")]
    assert cells[1] == "skipped" and cells[3] == "-", cells  # no release numbers, so no ratio
    low, median, high = (float(x.replace(",", "")) for x in cells[2].split(" / "))
    assert 0 < low <= median <= high
  note = [line for line in lines if line.startswith("note: the release (TensorFlow) half was skipped")]
  assert len(note) == 1 and "--setup" in note[0] and str(tmp_path / "no-venv") in note[0]
  saved = json.loads(out.read_text())
  assert saved["runs"]["release"] == [] and len(saved["runs"]["freqforensics"]) == 1
  ff = saved["runs"]["freqforensics"][0]
  assert ff["prep"]["images"] == 80 and set(ff["train"]) == {"log2", "cnn"}


def test_a_full_run_without_the_release_venv_is_one_error_line(tmp_path):
  r = subprocess.run(
    [sys.executable, "launch/bench_release.py", f"--venv={tmp_path / 'no-venv'}"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  line = one_line_error(r)
  assert line.startswith("error: no release environment") and "--setup" in line
