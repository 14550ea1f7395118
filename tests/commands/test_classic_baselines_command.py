"""The classic baselines' command: grid search, train and test from the command line, one-line errors."""

from __future__ import annotations

import json

import pytest
from conftest import baseline_config, write_fingerprinted_folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  root = tmp_path_factory.mktemp("baselines")
  return write_fingerprinted_folders(root / "src", 24, size=16), root


def _config(folders, name: str, **baseline):
  src, root = folders
  return baseline_config(src, root / "data", name, **baseline)


def _cli(*args, tmp_path):
  import os
  import subprocess
  import sys
  from pathlib import Path

  root = Path(__file__).resolve().parents[2]
  env = dict(os.environ, FREQFORENSICS_DATA=str(tmp_path / "cache"), PYTHONPATH=str(root))
  return subprocess.run(
    [sys.executable, "-m", "freqforensics.tools.classic_baselines", *args],
    cwd=root,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_command_line_trains_and_reports_one_line_errors(folders, tmp_path):
  from conftest import one_line_error

  src, _ = folders
  common = [
    "--config=configs/baselines.py:knn,tiny",
    f"--workdir={tmp_path}/wd",
    "--config.data.source=folder",
    f"--config.data.source_dir={src}",
    "--config.data.image_size=16",
    "--config.data.split=(12, 6, 6)",
    "--config.progress=False",
  ]
  r = _cli("train", *common, "--config.baseline.knn.n_neighbors=3", tmp_path=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "knn (n_neighbors=3) on the test split: accuracy" in r.stdout and "peak RSS:" in r.stdout
  saved = json.loads((tmp_path / "wd" / "knn.json").read_text())
  assert saved["train"]["test"]["num_examples"] == 12 and saved["train"]["peak_rss_mib"]["process"] > 0
  assert "grid_search" in one_line_error(_cli("fit", *common, tmp_path=tmp_path))
  line = one_line_error(_cli("train", *common, "--config.baseline.knn.n_neighbors=50", tmp_path=tmp_path))
  assert "n_neighbors=50 exceeds the 24 training examples" in line
