"""Ownership records: what --overwrite may delete, and nothing outside the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from freqforensics.errors import UserError
from freqforensics.files import ownership


def test_ownership_record_removes_exactly_what_was_registered(tmp_path):
  rec = ownership.OwnershipRecord(tmp_path, ".record.jsonl")
  for rel in (
    "config.json",
    "bundle/params.npz",
    "tree/x/y.bin",
    "checkpoints/3/state",
    "checkpoints/12/state",
    "checkpoints/notes.txt",
    "bundle/mine.txt",
    "mine.txt",
  ):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(rel)
  rec.add("config.json", "bundle/params.npz", tmp_path / "never_written.txt")
  rec.add("tree", tree=True)
  rec.add_pattern("checkpoints", r"\d+")
  assert rec.foreign(["checkpoints", "bundle"]) == ["bundle/mine.txt", "checkpoints/notes.txt"]
  assert rec.owns("checkpoints/12/state") and not rec.owns("checkpoints/notes.txt") and rec.owns("tree/x/y.bin")
  rec.remove_owned()
  left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
  assert left == ["bundle/mine.txt", "checkpoints/notes.txt", "mine.txt"]
  assert not (tmp_path / "tree").exists() and not rec.exists()
  with pytest.raises(ValueError, match="outside"):
    rec.add(tmp_path.parent / "elsewhere.txt")


def test_a_record_line_cut_by_a_crash_is_ignored(tmp_path):
  rec = ownership.OwnershipRecord(tmp_path, ".record.jsonl")
  rec.add("a.txt")
  with open(rec.path, "a") as f:
    f.write('{"path": "b.tx')
  assert set(rec.entries()) == {".record.jsonl", "a.txt"}


@pytest.mark.parametrize(
  "entry,kind",
  [
    ("../victim.txt", "file"),  # `..`
    ("{victim}", "file"),  # an absolute path
    ("link/secret.txt", "file"),  # a file through a link to a folder outside
    ("link", "tree"),  # a tree that resolves outside
    ("sub/..", "tree"),  # a tree that is the folder itself
    (".", "tree"),
    ("out_link", "file"),  # a link to a file outside
    ("notes", "pattern:("),  # not a regular expression
    ("a.txt", "script"),  # a kind the project never writes
  ],
)
def test_a_record_that_names_anything_outside_its_folder_deletes_nothing(tmp_path, entry, kind):
  outside = tmp_path / "outside"
  (outside / "secret").mkdir(parents=True)
  victim = tmp_path / "victim.txt"
  victim.write_text("the user's")
  (outside / "secret.txt").write_text("the user's secret")
  wd = tmp_path / "wd"
  (wd / "sub").mkdir(parents=True)
  (wd / "a.txt").write_text("ours")
  (wd / "link").symlink_to(outside)
  (wd / "out_link").symlink_to(victim)
  rec = ownership.OwnershipRecord(wd, ".record.jsonl")
  rec.add("a.txt")
  with open(rec.path, "a") as f:  # the line an edited (or received) record carries
    f.write(json.dumps({"path": entry.format(victim=victim), "kind": kind}) + "\n")
  with pytest.raises(UserError, match="nothing was deleted"):
    rec.remove_owned()
  assert (wd / "a.txt").read_text() == "ours" and rec.exists()  # checked before anything was deleted
  assert victim.read_text() == "the user's" and (outside / "secret.txt").read_text() == "the user's secret"
  assert (outside / "secret").is_dir() and (wd / "link").is_symlink() and (wd / "out_link").is_symlink()


def test_a_record_registers_what_it_writes_and_adopts_an_older_folder_once(tmp_path):
  rec = ownership.OwnershipRecord(
    tmp_path / "f", adopt=lambda folder: {"old.txt": "file"} if (folder / "old.txt").is_file() else {}
  )
  assert not rec.is_ours()
  (tmp_path / "f").mkdir()
  (tmp_path / "f" / "old.txt").write_text("an earlier version's")
  assert rec.is_ours() and rec.owns("old.txt") and not rec.exists()  # adopted, nothing written yet
  rec.write_json("sub/a.json", {"a": 1})
  rec.write_bytes("b.bin", b"b")
  rec.save_figure("c.png", _Figure())
  assert rec.exists() and all(rec.owns(n) for n in ("old.txt", "sub/a.json", "b.bin", "c.png"))
  assert json.loads((tmp_path / "f" / "sub" / "a.json").read_text()) == {"a": 1}
  (tmp_path / "f" / "mine.txt").write_text("a user's")
  rec.remove_owned()
  assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["mine.txt"]
  assert rec.name_of(tmp_path / "f" / "x" / "y.txt") == os.path.join("x", "y.txt")


class _Figure:
  def savefig(self, path, dpi, metadata):
    Path(path).write_bytes(b"png")
