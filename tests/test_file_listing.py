"""Listing image folders: the fast walk equals pathlib's recursive glob, filtered as documented."""

from __future__ import annotations

import os
from pathlib import Path

from freqforensics.data import images


def _tree(root: Path) -> None:
  for rel in ["A/1.png", "A/sub/2.png", "A/sub/deeper/3.jpg", "A/.hidden.png", "A/.cache/4.png", "A/notes.txt",
              "A/Z.png", "A/a.png", "A/sub-x/5.png", "outside/6.png"]:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(b"x")
  os.symlink(root / "outside", root / "A" / "linked_dir")  # pathlib's rglob does not enter it either
  os.symlink(root / "outside" / "6.png", root / "A" / "linked_file.png")
  os.symlink(root / "missing.png", root / "A" / "broken.png")


def test_files_under_equals_rglob_without_hidden_parts(tmp_path):
  _tree(tmp_path)
  folder = tmp_path / "A"
  expected = [p for p in sorted(folder.rglob("*"))
              if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
  got = images.files_under(folder)
  assert got == expected
  names = [str(p.relative_to(folder)) for p in got]
  assert "linked_file.png" in names and "sub/deeper/3.jpg" in names and "notes.txt" in names
  assert not any(n.startswith(".") or "/." in n or n.startswith("linked_dir") or n == "broken.png" for n in names)


def test_relative_name_equals_relative_to(tmp_path, monkeypatch):
  _tree(tmp_path)
  for root in (tmp_path, tmp_path / "A", Path(str(tmp_path) + "/")):
    for path in images.files_under(tmp_path / "A"):
      assert images.relative_name(path, root) == str(path.relative_to(root))
  monkeypatch.chdir(tmp_path)
  for path in images.files_under(Path("A")):  # a relative root, also "."
    assert images.relative_name(path, Path(".")) == str(path.relative_to(Path(".")))
    assert images.relative_name(path, Path("A")) == str(path.relative_to(Path("A")))
