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
