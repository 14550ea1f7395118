"""What the project writes: atomic files, ownership records, locks, fresh folders, environment faults."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from freqforensics.errors import UserError
from freqforensics.files import atomic, faults, figure_marks, locks, output_paths, ownership


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "a.json"
  atomic.write_json(path, {"v": 1})

  def fail(tmp):
    tmp.write_text("half")
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

  with pytest.raises(OSError):
    atomic.write_with(path, fail)
  assert path.read_text() == '{\n  "v": 1\n}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


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


def test_fresh_dirs_never_repeat(tmp_path):
  made = {output_paths.fresh_dir(tmp_path, "run") for _ in range(5)}
  assert len(made) == 5 and all(p.is_dir() and p.name.startswith("run_") for p in made)
  (tmp_path / "file").write_text("x")
  with pytest.raises(UserError, match="is a file"):
    output_paths.fresh_dir(tmp_path / "file")


def test_environment_faults_are_found_inside_library_errors():
  e = RuntimeError("write() failed: No space left on device; writing /data/out/chunk.tmp1; at byte 9")
  fault = faults.environment_fault(e)
  assert fault.errno == errno.ENOSPC and fault.filename == "/data/out/chunk.tmp1"
  assert "no space left" in faults.describe_os_error(fault) and "/data/out/chunk.tmp1" in faults.describe_os_error(
    fault
  )
  wrapped = ValueError("could not save")
  wrapped.__cause__ = PermissionError(errno.EACCES, "Permission denied", "/ro/x")
  assert faults.environment_fault(wrapped).errno == errno.EACCES
  assert faults.environment_fault(KeyError("model")) is None


def test_outputs_that_are_inputs_or_foreign_files_are_refused(tmp_path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig = plt.figure()
  ours = figure_marks.save_figure(fig, tmp_path / "ours.png")
  theirs = tmp_path / "theirs.png"
  fig.savefig(theirs, metadata={"Software": "another program"})
  plt.close(fig)
  assert figure_marks.is_our_figure(ours) and not figure_marks.is_our_figure(theirs)
  assert output_paths.check_new_output(ours, overwrite=True) == ours
  for path, overwrite, needle in (
    (ours, False, "exists"),
    (theirs, True, "not written by freqforensics"),
    (tmp_path / "x.png", True, "also an input"),
  ):
    with pytest.raises(UserError, match=needle):
      output_paths.check_new_output(path, overwrite=overwrite, inputs=[tmp_path / "x.png"])
  (tmp_path / "data" / "A").mkdir(parents=True)
  with pytest.raises(UserError, match="overlap"):
    output_paths.check_separate(tmp_path / "data" / "A" / "out", [tmp_path / "data"])


def _killed_writer(target) -> None:
  """Runs `atomic.write_with` on `target` in a child process that is killed (SIGKILL) inside the write."""
  code = (
    "import os, signal, sys; from freqforensics.files import atomic;"
    " atomic.write_with(sys.argv[1], lambda tmp: (tmp.write_bytes(b'half'), os.kill(os.getpid(), signal.SIGKILL)))"
  )
  env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
  r = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True, timeout=120)
  assert r.returncode == -9, r.stderr


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


def test_temporary_names_are_short_hidden_and_a_killed_writers_are_removed(tmp_path):
  long_name = "a" * 246 + ".png"  # a legal 250-character name
  atomic.write_bytes(tmp_path / long_name, b"x")
  atomic.write_with(tmp_path / ("b" * 246 + ".npz"), lambda tmp: tmp.write_bytes(b"y"))
  assert sorted(p.name for p in tmp_path.iterdir()) == [long_name, "b" * 246 + ".npz"]
  (tmp_path / "sub").mkdir()
  _killed_writer(tmp_path / "sub" / "test_metrics_confusion.png")
  left = [p.name for p in (tmp_path / "sub").iterdir()]
  assert len(left) == 1 and left[0].startswith(".") and len(left[0]) < 64  # what a kill -9 leaves
  (tmp_path / "sub" / ".my.png.tmp123").write_text("a user's hidden file")
  (tmp_path / "sub" / "mine.tmp").write_text("a user's file")
  atomic.remove_stale_temps(tmp_path)
  assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [".my.png.tmp123", "mine.tmp"]


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
