"""The folders keep their roles: `freqforensics/data/` is host side only and imports no JAX.

STYLE.md gives `data/` to reading and preparing images on the host and `generators/` to what makes
images with JAX (issue 25: 1,216 lines of `data/` were JAX before they moved). Checked without
importing anything: every `import` and `from ... import` of every module under `freqforensics/data/`,
at the top or inside a function, a class or an `if`, is parsed with `ast`. A module may still ask
`freqforensics.generators` for the synthetic images (`loading.source_dir` does, inside the function
that needs them); it may not import JAX or its libraries itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "freqforensics" / "data"
DEVICE_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax")


def device_imports(source: str) -> list[tuple[int, str]]:
  """(line, module) of every import of a JAX-side library in `source`, at any depth."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module]
    else:
      continue
    found += [(node.lineno, n) for n in names if n.split(".")[0] in DEVICE_LIBRARIES]
  return found


@pytest.mark.parametrize("path", sorted(DATA.rglob("*.py")), ids=lambda p: str(p.relative_to(DATA)))
def test_data_modules_import_no_jax(path):
  hits = device_imports(path.read_text())
  assert not hits, f"{path.relative_to(ROOT)} imports {hits}: JAX code belongs in freqforensics/generators/ (or above)"


def test_the_check_finds_jax_imports_at_any_depth():
  assert device_imports("import numpy as np\nfrom freqforensics.data import reader\n") == []
  assert device_imports("import jax.numpy as jnp") == [(1, "jax.numpy")]
  assert device_imports("from flax import nnx") == [(1, "flax")]
  nested = "def f():\n  import optax\n\nclass C:\n  if True:\n    from orbax import checkpoint\n"
  assert device_imports(nested) == [(2, "optax"), (6, "orbax")]
  assert device_imports("import numpy, jax") == [(1, "jax")]
  assert device_imports("from . import jax_free\nimport jaxtyping\n") == []  # relative; another library


def test_the_data_folder_is_there():
  assert len(list(DATA.rglob("*.py"))) > 10  # a moved folder would make the check above pass vacuously


# Test folders that hold no unit tests: whole commands, end-to-end runs and checks of the repository.
NON_UNIT_FOLDERS = {"commands", "end_to_end", "repository"}


def unit_test_misplacements(tests: Path, package: Path) -> list[str]:
  """Unit test files that do not mirror the package: `tests/[<folder>/]test_<name>.py` must test
  `freqforensics/[<folder>/]<name>.py` (or the package folder `<folder>` itself, as `test_<folder>.py`)."""
  problems = []
  for path in sorted(tests.rglob("test_*.py")):
    rel = path.relative_to(tests)
    if rel.parts[0] in NON_UNIT_FOLDERS:
      continue
    folder, name = rel.parent, path.stem[len("test_") :]
    if not ((package / folder / f"{name}.py").is_file() or (folder.parts and folder.name == name)):
      problems.append(f"{rel}: no module freqforensics/{folder / name}.py")
  for folder in sorted(p for p in tests.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
    if folder.name not in NON_UNIT_FOLDERS and not (package / folder.name).is_dir():
      problems.append(f"{folder.name}/: no package freqforensics/{folder.name}/")
  return problems


def test_unit_tests_mirror_the_package_folders():
  assert unit_test_misplacements(ROOT / "tests", ROOT / "freqforensics") == []


def test_the_mirror_check_finds_a_misplaced_test(tmp_path):
  package, tests = tmp_path / "freqforensics", tmp_path / "tests"
  for f in ("evaluation/loop.py", "models/__init__.py", "bundle.py"):
    (package / f).parent.mkdir(parents=True, exist_ok=True)
    (package / f).write_text("")
  for f in ("evaluation/test_loop.py", "models/test_models.py", "test_bundle.py", "commands/test_anything.py"):
    (tests / f).parent.mkdir(parents=True, exist_ok=True)
    (tests / f).write_text("")
  assert unit_test_misplacements(tests, package) == []
  (tests / "test_loop.py").write_text("")  # a unit test of evaluation/loop.py at the top
  (tests / "misc").mkdir()
  (tests / "misc" / "test_x.py").write_text("")
  found = unit_test_misplacements(tests, package)
  assert len(found) == 3 and "test_loop.py" in found[1] and "misc/" in found[-1], found
