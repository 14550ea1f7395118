"""The command line: one clear line and exit code 2 for every mistake a user can fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_line_error as _one_line_error

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
  env = dict(os.environ, FREQFORENSICS_DATA=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
  return subprocess.run(
    [sys.executable, "-m", "freqforensics.main", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
  )


def test_unknown_config_key(tmp_path):
  line = _one_line_error(
    _run("--config=configs/demo.py", f"--workdir={tmp_path}/wd", "--config.train.lerning_rate=1", tmp_path=tmp_path)
  )
  assert "lerning_rate" in line


def test_missing_source_dir(tmp_path):
  line = _one_line_error(
    _run(
      "--config=configs/folder.py:tiny",
      f"--workdir={tmp_path}/wd",
      f"--config.data.source_dir={tmp_path}/nowhere",
      tmp_path=tmp_path,
    )
  )
  assert f"{tmp_path}/nowhere does not exist" in line and "source_dir" in line


@pytest.mark.parametrize(
  "args,needle",
  [
    ((), "no config given"),
    (("--config=configs/demo.py",), "no work dir given"),
    (("--config=configs/nope.py", "--workdir=x"), "nope.py"),
  ],
)
def test_missing_flags(args, needle, tmp_path):
  assert needle in _one_line_error(_run(*args, tmp_path=tmp_path))


def test_workdir_of_another_config(tmp_path):
  import json

  from freqforensics import defaults

  wd = tmp_path / "wd"
  wd.mkdir()
  stored = json.loads(defaults.base_config().to_json())
  stored["features"] = "pixel"  # a run's config (without an ownership record: of an older version), of other features
  (wd / "config.json").write_text(json.dumps(stored))
  line = _one_line_error(_run("--config=configs/folder.py:tiny", f"--workdir={wd}", tmp_path=tmp_path))
  assert "holds a run of another config" in line and "--overwrite" in line


@pytest.mark.parametrize(
  "case,needle",
  [
    ("empty", "holds no class folders"),
    ("no_images", "holds no images"),
    ("too_few", "fewer than the requested split"),
  ],
)
def test_bad_source_folders(case, needle, tmp_path):
  src = tmp_path / "src"
  (src / "A_real").mkdir(parents=True)
  if case == "empty":
    (src / "A_real").rmdir()
  else:
    from PIL import Image

    for i in range(3):
      Image.new("RGB", (8, 8)).save(src / "A_real" / f"{i}.png")
    (src / "B_gan").mkdir()
    if case == "too_few":
      Image.new("RGB", (8, 8)).save(src / "B_gan" / "0.png")
  line = _one_line_error(
    _run(
      "--config=configs/folder.py:tiny",
      f"--workdir={tmp_path}/wd",
      f"--config.data.source_dir={src}",
      "--config.data.split=(1, 1, 1)",
      tmp_path=tmp_path,
    )
  )
  assert needle in line
