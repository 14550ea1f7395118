"""The notebooks run top to bottom on the `:tiny` synthetic data, hold no logic and are stored without outputs."""

from __future__ import annotations

import ast
import base64
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("01_spectra", "02_train_and_explain", "03_classify_your_images")


def _read(name: str) -> nbformat.NotebookNode:
  return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean(name):
  nb = _read(name)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(not c.outputs and c.execution_count is None for c in code), "store notebooks without outputs"
  # Paths come from the first code cell, and only from there: it assigns constants, nothing else.
  first = ast.parse(code[0].source)
  assert first.body and all(isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant) for s in first.body)
  names = {t.id for s in first.body for t in s.targets}
  for cell in code[1:]:
    tree = ast.parse(cell.source)
    # No logic of its own: no functions or classes (they belong in the package, with tests) ...
    assert not any(
      isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda) for n in ast.walk(tree)
    ), f"{name}: a cell defines a function or class"
    # ... and no path set anywhere but the first cell.
    assigned = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert not assigned & names, f"{name}: {assigned & names} reassigned below the first cell"


def _pngs(nb: nbformat.NotebookNode) -> list[bytes]:
  return [
    base64.b64decode(o.data["image/png"])
    for c in nb.cells
    if c.cell_type == "code"
    for o in c.outputs
    if o.output_type == "display_data" and "image/png" in o.data
  ]


def _text(nb: nbformat.NotebookNode) -> str:
  return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_notebooks_run_in_order(tmp_path, monkeypatch):
  """All three in one folder, as a user runs them: 03 reuses the run that 02 trained."""
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  executed = {}
  for name in NOTEBOOKS:
    nb = _read(name)
    # Raises CellExecutionError, with the cell and the traceback, on any error.
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    executed[name] = nb
  for name, nb in executed.items():
    pngs = _pngs(nb)
    assert pngs and all(p.startswith(b"\x89PNG") for p in pngs), name
  spectra_text = _text(executed["01_spectra"])
  for cls in ("A_real", "B_nearest", "C_bilinear", "D_transposed"):
    assert cls in spectra_text
  assert len(_pngs(executed["01_spectra"])) == 5  # examples, mean spectra, differences, radial power, other views
  train_text = _text(executed["02_train_and_explain"])
  assert "accuracy" in train_text and "test: " in train_text and "misclassified" in train_text
  assert (tmp_path / "runs/notebook_log2_tiny/bundle/bundle.json").is_file()
  assert (tmp_path / "runs/notebook_log2_tiny/weight_map.png").is_file()
  classify_text = _text(executed["03_classify_your_images"])
  assert "240 images classified, 0 unreadable" in classify_text  # 4 classes x 60 images of the :tiny synthetic data set
  assert (tmp_path / "runs/notebook_log2_tiny/classified.png").is_file()
