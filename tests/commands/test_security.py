"""Nothing run: a dataset folder or a bundle from anywhere makes no command import a module it names.

tfds rebuilds a dataset's features from `features.json` and imports the module of a feature class it
does not know. Each test here builds such a folder itself, with the module beside it and in the
command's working directory (the first place `python -m` looks), runs the command as a user would,
and asserts one `error:` line, exit code 2, and that the module never ran (its marker file is absent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import one_line_error, write_class_folders

ROOT = Path(__file__).resolve().parents[2]


def _evil_dataset(root: Path) -> tuple[Path, Path]:
  """A dataset prepared by freqforensics whose `features.json` names `qa_evilmod_<random>.Text`, with that module
  in the folder (it writes a marker file when imported): (the folder, the marker)."""
  from freqforensics.data import preparation

  src = write_class_folders(root / "src", {"A_real": 5, "B_gan": 5}, size=(16, 16))
  path = preparation.prepare_to(src, root / "evil", preparation.PrepareOptions(16, 3, (3, 1, 1)), progress=False).path
  name = f"qa_evilmod_{uuid.uuid4().hex[:12]}"
  marker = root / f"{name}.imported"
  (path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
  features = json.loads((path / "features.json").read_text())
  features["featuresDict"]["features"]["path"]["pythonClassName"] = f"{name}.Text"
  (path / "features.json").write_text(json.dumps(features))
  return path, marker


def _run(module: str, *args: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(ROOT), FREQFORENSICS_DATA=str(tmp_path / "data"), JAX_PLATFORMS="cpu")
  return subprocess.run(
    [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
  )


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
  return _evil_dataset(tmp_path_factory.mktemp("security"))


def test_a_dataset_naming_a_module_is_refused_by_audit_without_importing_it(evil, tmp_path):
  path, marker = evil
  line = one_line_error(_run("freqforensics.tools.audit", f"--source_dir={path}", cwd=path, tmp_path=tmp_path))
  assert "is not a dataset prepared by freqforensics" in line and "features.json" in line
  assert not marker.exists()


def test_a_bundle_naming_such_a_dataset_is_refused_by_robustness_without_importing_it(evil, tmp_path):
  from freqforensics import bundle, models

  path, marker = evil
  info = {
    "model": "log2",
    "features": "pixel",
    "input_shape": [16, 16, 3],
    "outputs": 1,
    "label_names": ["A_real", "B_gan"],
    "dataset": str(path),  # bundle.json's path to the training data: robustness opens it
  }
  bundle.save(tmp_path / "wd" / "bundle", models.create_model("log2", (16, 16, 3), 1), bundle.BundleInfo(**info), None)
  r = _run(
    "freqforensics.tools.robustness", f"--workdir={tmp_path / 'wd'}", "--progress=false", cwd=path, tmp_path=tmp_path
  )
  line = one_line_error(r)
  assert f"{path} is not a dataset prepared by freqforensics" in line
  assert not marker.exists() and not (tmp_path / "wd" / "robustness_test").exists()
