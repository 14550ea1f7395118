"""Config files and the README: documented commands exist, `:tiny` shrinks, keys are locked."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import ml_collections
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.py"))


def _load(path: Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_documents_its_command_and_shrinks(path):
  module = _load(path)
  entry = "tools.classic_baselines" if path.name == "baselines.py" else "main"  # the classic baselines' own command
  assert f"python -m freqforensics.{entry}" in module.__doc__ and f"--config=configs/{path.name}" in module.__doc__
  assert re.search(r"\d+ s", module.__doc__), "the docstring gives a measured time"
  full, tiny = module.get_config(), module.get_config("tiny")
  assert isinstance(full, ml_collections.ConfigDict)
  assert tiny.data.image_size < full.data.image_size and tiny.train.epochs < full.train.epochs
  with pytest.raises(ValueError, match="unknown config argument"):
    module.get_config("huge")
  locked = ml_collections.ConfigDict(full.to_dict())
  locked.lock()
  with pytest.raises(AttributeError):
    locked.train.lerning_rate = 1.0


def test_readme_commands_are_what_ci_runs():
  readme = (ROOT / "README.md").read_text()
  blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
  setup, tests = blocks[0].strip(), blocks[1].strip()
  assert "pip install -r requirements.txt" in setup and "freqforensics.main --config=configs/demo.py" in setup
  assert "pytest" in tests
  ci = (ROOT / ".ci" / "run").read_text().splitlines()
  assert setup in ci and tests in ci


def test_requirements_are_pinned_exactly():
  lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
  assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][A-Za-z0-9_.+\-]*", line) for line in lines), lines
  names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
  for needed in (
    "jax",
    "flax",
    "optax",
    "orbax-checkpoint",
    "tensorflow-datasets",
    "grain",
    "scikit-image",
    "importlib-resources",
    "ml-collections",
    "pytest",
  ):
    assert needed in names
