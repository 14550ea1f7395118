"""Folder locks: one process at a time, a holder named, a bounded wait."""

from __future__ import annotations

import os

import pytest

from freqforensics.errors import UserError
from freqforensics.files import locks


def test_lock_names_the_holder_and_is_released(tmp_path):
  first = locks.DirLock(tmp_path).acquire("--workdir")
  with pytest.raises(UserError, match=f"in use by process {os.getpid()}"):
    locks.DirLock(tmp_path).acquire("--workdir")
  first.release()
  locks.DirLock(tmp_path).acquire("--workdir").release()


def test_a_lock_waited_for_is_taken_when_freed_or_refused_when_the_wait_runs_out(tmp_path, capsys):
  import threading
  import time

  first = locks.DirLock(tmp_path).acquire("--out_dir")
  start = time.monotonic()
  with pytest.raises(UserError, match=f"in use by process {os.getpid()} .*\\(waited 0.3 s\\): wait for it"):
    locks.DirLock(tmp_path).acquire("--out_dir", wait=0.3)
  assert time.monotonic() - start >= 0.3
  assert capsys.readouterr().err.count(f"waiting for {tmp_path}: in use by process {os.getpid()}") == 1

  def remove_and_release():  # as a run that made the folder removes its lock file when it ends refused
    time.sleep(0.3)
    first.path.unlink()
    first.release()

  threading.Thread(target=remove_and_release).start()
  second = locks.DirLock(tmp_path).acquire("--out_dir", wait=30)
  assert os.stat(second.path).st_ino == os.fstat(second._fd).st_ino  # held on the file others open, not the old one
  with pytest.raises(UserError, match="in use"):
    locks.DirLock(tmp_path).acquire("--out_dir")
  second.release()
