"""Names in prose point to code that exists: no comment, docstring or page names a deleted module.

Modules get merged and renamed; the comments that name them do not fail when they go stale (issue 25
named `eval_run.py` and `data/perturb.py`, gone for a while). Checked here, without importing anything:
- every dotted `freqforensics.a.b[.attr]` in the comments and strings of the package, `launch/` and
  `configs/`, and anywhere in README.md and docs/*.md, is a module or package of this repository,
  optionally followed by a name defined at its top level (and a name in that class's body);
- every `something.py` file named in those comments, strings and pages is a file of the repository
  (matched by its trailing path: `data/augment.py`, `evaluation/runner.py`, `launch/robustness.py`);
- a name in backticks that starts with a subpackage (`data.reader`, `evaluation.inference.load`)
  resolves as `freqforensics.` + it, unless it is a key of the base config (`data.split`); and one
  that ends with a class of the package (`reader.RecordSource`) is qualified by (the tail of) the
  module that defines it.
Placeholders (`freqforensics.tools.NAME`, `launch/X.py`) and file names (`baselines.md`) are skipped.
"""

from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDERS = {"NAME", "X", "Y", "Z", "MODULE"}
DOTTED = re.compile(r"(?<![\w./-])freqforensics(?:\.[A-Za-z_]\w*)+")
PY_FILE = re.compile(r"(?<![\w./-])([\w/.-]*\w\.py)\b")
SOURCES = sorted(
  p
  for folder in ("freqforensics", "launch", "configs")
  for p in (ROOT / folder).rglob("*.py")
  if "weights" not in p.parts
)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUALIFIED = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?`")
FILE_SUFFIXES = {"py", "md", "json", "jsonl", "png", "npz", "csv", "txt", "ipynb", "sh", "toml", "yaml", "lock"}


def prose_of_source(path: Path) -> str:
  """The comments and string literals of a Python file (docstrings, messages), one per line."""
  kinds = {tokenize.COMMENT, tokenize.STRING}
  return "\n".join(
    t.string for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline) if t.type in kinds
  )


@functools.cache
def _top_level_names(path: Path) -> dict[str, ast.AST]:
  names: dict[str, ast.AST] = {}
  for node in ast.parse(path.read_text()).body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      names[node.name] = node
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
      for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
        for name in ast.walk(target):
          if isinstance(name, ast.Name):
            names[name.id] = node
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      for alias in node.names:
        names[(alias.asname or alias.name).split(".")[0]] = node
  return names


def _module_path(parts: list[str]) -> Path | None:
  base = ROOT.joinpath(*parts)
  for candidate in (base.with_suffix(".py"), base / "__init__.py"):
    if candidate.is_file():
      return candidate
  return None


def resolves(dotted: str) -> bool:
  """Whether `freqforensics.a.b[.attr[.member]]` names a module of the repository (and what it defines)."""
  parts = dotted.split(".")
  if any(part in PLACEHOLDERS for part in parts):
    return True
  cut = next((i for i in range(len(parts), 0, -1) if _module_path(parts[:i])), 0)
  if cut == 0:
    return False
  rest = parts[cut:]
  if not rest:
    return True
  names = _top_level_names(_module_path(parts[:cut]))
  if rest[0] not in names:
    return False
  node = names[rest[0]]
  if len(rest) > 1 and isinstance(node, ast.ClassDef):
    members = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    members |= {
      t.id
      for n in node.body
      if isinstance(n, (ast.Assign, ast.AnnAssign))
      for t in ast.walk(n)
      if isinstance(t, ast.Name)
    }
    return rest[1] in members
  return True


@functools.cache
def _repository_files() -> frozenset[str]:
  return frozenset(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if ".venv" not in p.parts)


def file_exists(name: str) -> bool:
  """Whether `name` (`x.py`, `dir/x.py`) is the trailing path of a Python file of the repository."""
  if Path(name).stem in PLACEHOLDERS:
    return True
  return any(f == name or f.endswith("/" + name) for f in _repository_files())


@functools.cache
def _subpackages() -> frozenset[str]:
  return frozenset(p.name for p in (ROOT / "freqforensics").iterdir() if p.is_dir() and any(p.glob("*.py")))


@functools.cache
def _classes() -> dict[str, tuple[str, ...]]:
  """Class name -> the dotted paths of the modules that define it."""
  out: dict[str, tuple[str, ...]] = {}
  for path in sorted((ROOT / "freqforensics").rglob("*.py")):
    dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for name, node in _top_level_names(path).items():
      if isinstance(node, ast.ClassDef):
        out[name] = out.get(name, ()) + (dotted,)
  return out


@functools.cache
def _base_config():
  from freqforensics import defaults  # only ml_collections: no JAX

  return defaults.base_config()


def _is_config_key(parts: list[str]) -> bool:
  node = _base_config()
  for part in parts[1:] if parts[0] == "config" else parts:
    if not hasattr(node, "keys") or part not in node:
      return False
    node = node[part]
  return True


def stale_qualified(name: str) -> bool:
  """Whether a backticked `a.b.c` names code of the package that does not exist (see the docstring)."""
  parts = name.split(".")
  if parts[0] == "freqforensics" or parts[-1] in FILE_SUFFIXES or _is_config_key(parts):
    return False
  if parts[0] in _subpackages():
    return not resolves("freqforensics." + name)
  if parts[-1] in _classes():
    prefix = "." + ".".join(parts[:-1])
    return not any(("." + module).endswith(prefix) for module in _classes()[parts[-1]])
  return False


def stale_names(text: str) -> list[str]:
  found = [m.group(0) for m in DOTTED.finditer(text) if not resolves(m.group(0))]
  found += [m.group(1) for m in PY_FILE.finditer(text) if not file_exists(m.group(1))]
  found += [m.group(1) for m in QUALIFIED.finditer(text) if stale_qualified(m.group(1))]
  return found


@pytest.mark.parametrize("path", SOURCES + PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_names_in_comments_docstrings_and_pages_exist(path):
  text = path.read_text() if path.suffix == ".md" else prose_of_source(path)
  stale = stale_names(text)
  assert not stale, f"{path.relative_to(ROOT)} names what does not exist: {sorted(set(stale))}"


def test_the_check_finds_stale_names():
  assert resolves("freqforensics.evaluation.inference.load") and resolves("freqforensics.data.images.LISTING_RULE")
  assert resolves("freqforensics.tools.NAME") and resolves("freqforensics.main")
  assert not resolves("freqforensics.eval_run") and not resolves("freqforensics.evaluation.inference.lod")
  text = "see eval_run.py, `freqforensics.eval_run.bundle_evaluator` and data/perturb.py; not data/augment.py"
  assert stale_names(text) == ["freqforensics.eval_run.bundle_evaluator", "eval_run.py", "data/perturb.py"]
  assert stale_names(".freqforensics.lock, freqforensics.main, launch/X.py, `evaluation/runner.py`") == []
  assert stale_names("`data.records`, `records.RecordSource`, `evaluation.inference.lod`") == [
    "data.records",
    "records.RecordSource",
    "evaluation.inference.lod",
  ]
  fine = "`data.reader`, `reader.RecordSource`, `data.split`, `config.train.epochs`, `baselines.md`, `model.fit`"
  assert stale_names(fine) == []
