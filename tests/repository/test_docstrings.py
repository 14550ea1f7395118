"""Docstrings of the package: a short one per module, and an `Args:` section where arguments are many."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "freqforensics"
MAX_MODULE_DOC_LINES = 12  # what the module holds; usage belongs in the README and docs/
MIN_DOCUMENTED_PARAMS = 5  # a public function with this many parameters documents them


def _modules() -> list[tuple[str, ast.Module]]:
  return [(str(p.relative_to(PACKAGE.parent)), ast.parse(p.read_text())) for p in sorted(PACKAGE.rglob("*.py"))]


def _num_params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
  a = fn.args
  names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
  return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def test_every_module_has_a_short_docstring():
  bad = []
  for path, tree in _modules():
    doc = ast.get_docstring(tree)
    if doc is None:
      bad.append(f"{path}: no module docstring")
    elif len(doc.splitlines()) > MAX_MODULE_DOC_LINES:
      bad.append(f"{path}: {len(doc.splitlines())} lines")
  assert not bad, (
    f"module docstrings say what the module holds in at most {MAX_MODULE_DOC_LINES} lines (usage goes to the"
    " README and docs/):\n" + "\n".join(bad)
  )


def test_public_functions_with_many_parameters_document_them():
  bad = []
  for path, tree in _modules():
    for node in ast.walk(tree):
      if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
        continue
      if _num_params(node) >= MIN_DOCUMENTED_PARAMS and "Args:" not in (ast.get_docstring(node) or ""):
        bad.append(f"{path}:{node.lineno} {node.name} ({_num_params(node)} parameters)")
  assert not bad, (
    f"a public function with {MIN_DOCUMENTED_PARAMS} or more parameters has an `Args:` section:\n" + "\n".join(bad)
  )


def test_the_checks_see_the_package():
  modules = _modules()
  assert len(modules) > 50, "the package was not found where the checks look"
  assert any(path.endswith("tools/cli.py") for path, _ in modules)
