"""What the project writes: atomic files, ownership records, locks, fresh folders, environment faults."""

from __future__ import annotations

import errno
import os

import pytest

from freqforensics import outputs
from freqforensics.errors import UserError


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "a.json"
  outputs.write_json(path, {"v": 1})

  def fail(tmp):
    tmp.write_text("half")
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

  with pytest.raises(OSError):
    outputs.write_with(path, fail)
  assert path.read_text() == '{\n  "v": 1\n}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_ownership_record_removes_exactly_what_was_registered(tmp_path):
  rec = outputs.OwnershipRecord(tmp_path, ".record.jsonl")
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
  rec = outputs.OwnershipRecord(tmp_path, ".record.jsonl")
  rec.add("a.txt")
  with open(rec.path, "a") as f:
    f.write('{"path": "b.tx')
  assert set(rec.entries()) == {".record.jsonl", "a.txt"}


def test_lock_names_the_holder_and_is_released(tmp_path):
  first = outputs.DirLock(tmp_path).acquire("--workdir")
  with pytest.raises(UserError, match=f"in use by process {os.getpid()}"):
    outputs.DirLock(tmp_path).acquire("--workdir")
  first.release()
  outputs.DirLock(tmp_path).acquire("--workdir").release()


def test_a_lock_waited_for_is_taken_when_freed_or_refused_when_the_wait_runs_out(tmp_path, capsys):
  import threading
  import time

  first = outputs.DirLock(tmp_path).acquire("--out_dir")
  start = time.monotonic()
  with pytest.raises(UserError, match=f"in use by process {os.getpid()} .*\\(waited 0.3 s\\): wait for it"):
    outputs.DirLock(tmp_path).acquire("--out_dir", wait=0.3)
  assert time.monotonic() - start >= 0.3
  assert capsys.readouterr().err.count(f"waiting for {tmp_path}: in use by process {os.getpid()}") == 1

  def remove_and_release():  # as a run that made the folder removes its lock file when it ends refused
    time.sleep(0.3)
    first.path.unlink()
    first.release()

  threading.Thread(target=remove_and_release).start()
  second = outputs.DirLock(tmp_path).acquire("--out_dir", wait=30)
  assert os.stat(second.path).st_ino == os.fstat(second._fd).st_ino  # held on the file others open, not the old one
  with pytest.raises(UserError, match="in use"):
    outputs.DirLock(tmp_path).acquire("--out_dir")
  second.release()


def test_fresh_dirs_never_repeat(tmp_path):
  made = {outputs.fresh_dir(tmp_path, "run") for _ in range(5)}
  assert len(made) == 5 and all(p.is_dir() and p.name.startswith("run_") for p in made)
  (tmp_path / "file").write_text("x")
  with pytest.raises(UserError, match="is a file"):
    outputs.fresh_dir(tmp_path / "file")


def test_environment_faults_are_found_inside_library_errors():
  e = RuntimeError("write() failed: No space left on device; writing /data/out/chunk.tmp1; at byte 9")
  fault = outputs.environment_fault(e)
  assert fault.errno == errno.ENOSPC and fault.filename == "/data/out/chunk.tmp1"
  assert "no space left" in outputs.describe_os_error(fault) and "/data/out/chunk.tmp1" in outputs.describe_os_error(
    fault
  )
  wrapped = ValueError("could not save")
  wrapped.__cause__ = PermissionError(errno.EACCES, "Permission denied", "/ro/x")
  assert outputs.environment_fault(wrapped).errno == errno.EACCES
  assert outputs.environment_fault(KeyError("model")) is None


def test_outputs_that_are_inputs_or_foreign_files_are_refused(tmp_path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig = plt.figure()
  ours = outputs.save_figure(fig, tmp_path / "ours.png")
  theirs = tmp_path / "theirs.png"
  fig.savefig(theirs, metadata={"Software": "another program"})
  plt.close(fig)
  assert outputs.is_our_figure(ours) and not outputs.is_our_figure(theirs)
  assert outputs.check_new_output(ours, overwrite=True) == ours
  for path, overwrite, needle in (
    (ours, False, "exists"),
    (theirs, True, "not written by freqforensics"),
    (tmp_path / "x.png", True, "also an input"),
  ):
    with pytest.raises(UserError, match=needle):
      outputs.check_new_output(path, overwrite=overwrite, inputs=[tmp_path / "x.png"])
  (tmp_path / "data" / "A").mkdir(parents=True)
  with pytest.raises(UserError, match="overlap"):
    outputs.check_separate(tmp_path / "data" / "A" / "out", [tmp_path / "data"])
