"""Atomic writes and temporary files."""

from __future__ import annotations

import errno

import pytest
from conftest import killed_writer

from freqforensics.files import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "a.json"
  atomic.write_json(path, {"v": 1})

  def fail(tmp):
    tmp.write_text("half")
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

  with pytest.raises(OSError):
    atomic.write_with(path, fail)
  assert path.read_text() == '{\n  "v": 1\n}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_temporary_names_are_short_hidden_and_a_killed_writers_are_removed(tmp_path):
  long_name = "a" * 246 + ".png"  # a legal 250-character name
  atomic.write_bytes(tmp_path / long_name, b"x")
  atomic.write_with(tmp_path / ("b" * 246 + ".npz"), lambda tmp: tmp.write_bytes(b"y"))
  assert sorted(p.name for p in tmp_path.iterdir()) == [long_name, "b" * 246 + ".npz"]
  (tmp_path / "sub").mkdir()
  killed_writer(tmp_path / "sub" / "test_metrics_confusion.png")
  left = [p.name for p in (tmp_path / "sub").iterdir()]
  assert len(left) == 1 and left[0].startswith(".") and len(left[0]) < 64  # what a kill -9 leaves
  (tmp_path / "sub" / ".my.png.tmp123").write_text("a user's hidden file")
  (tmp_path / "sub" / "mine.tmp").write_text("a user's file")
  atomic.remove_stale_temps(tmp_path)
  assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [".my.png.tmp123", "mine.tmp"]
