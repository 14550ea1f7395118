"""The prepare command and its runners: idempotent re-runs, --overwrite, worker processes and Apache
Beam writing the same bytes as the local run, and grayscale from folders to a classified file."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, tiny_folder_config, write_fingerprinted_folders

from freqforensics.data import preparation, reader

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run(
    [sys.executable, "-m", "freqforensics.tools.prepare", "--progress=false", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def _shards(path: Path) -> list[str]:
  return sorted(p.name for p in path.glob("freqforensics-*.array_record-*"))


def _same_dataset(a: Path, b: Path) -> None:
  assert _shards(a) and _shards(a) == _shards(b)
  for name in _shards(a):
    assert filecmp.cmp(a / name, b / name, shallow=False), name
  ma, mb = reader.open_prepared(a).metadata, reader.open_prepared(b).metadata
  assert ma["content_fingerprint"] == mb["content_fingerprint"] and ma["counts"] == mb["counts"]


def test_cli_prepares_reruns_as_a_no_op_and_refuses_other_arguments_without_overwrite(make_folders, tmp_path):
  src = make_folders({"A_real": 8, "B_gan": 8})
  (src / "B_gan" / "img_0000.png").write_bytes(b"")
  out = tmp_path / "out"
  args = (f"--source_dir={src}", f"--out_dir={out}", "--image_size=16", "--split=5,1,1")
  r = _cli(*args)
  assert r.returncode == 0, r.stderr[-2000:]
  assert (
    f"prepared {out}: train 10, val 2, test 2 images of 2 classes (A_real, B_gan), 16x16x3, crop center" in r.stdout
  )
  assert "skipped 1 files (empty file: 1)" in r.stdout
  stamp = (out / "dataset_info.json").stat().st_mtime_ns
  assert _cli(*args).returncode == 0 and (out / "dataset_info.json").stat().st_mtime_ns == stamp  # no-op
  line = one_line_error(_cli(*args[:2], "--image_size=8", "--split=5,1,1"))
  assert f"{out} holds a dataset prepared from" in line and "--overwrite" in line
  assert (out / "dataset_info.json").stat().st_mtime_ns == stamp  # untouched
  r = _cli(*args[:2], "--image_size=8", "--split=5,1,1", "--overwrite")
  assert r.returncode == 0 and reader.open_prepared(out).image_shape == (8, 8, 3)


def test_a_folder_that_is_not_a_prepared_dataset_is_never_touched(make_folders, tmp_path):
  src = make_folders({"A_real": 4, "B_gan": 4})
  out = tmp_path / "mine"
  out.mkdir()
  (out / "thesis.tex").write_text("precious")
  for extra in ((), ("--overwrite",)):
    line = one_line_error(_cli(f"--source_dir={src}", f"--out_dir={out}", "--image_size=16", "--split=2,1,1", *extra))
    assert "is not a dataset prepared by freqforensics" in line
  assert (out / "thesis.tex").read_text() == "precious" and sorted(os.listdir(out)) == ["thesis.tex"]


@pytest.mark.parametrize(
  "args,needle",
  [
    (("--split=0.7,0.1",), "must be three non-negative numbers"),
    (("--split=a,b,c",), "is not three numbers"),
    (("--crop=lsun",), "crop"),
    ((), "pass --source_dir"),
  ],
)
def test_cli_usage_errors_are_one_line(args, needle, make_folders, tmp_path):
  src = make_folders({"A_real": 4, "B_gan": 4})
  base = () if needle == "pass --source_dir" else (f"--source_dir={src}", f"--out_dir={tmp_path / 'o'}")
  assert needle in one_line_error(_cli(*base, *args))


def test_worker_processes_and_beam_write_the_same_bytes_as_threads(make_folders, tmp_path, monkeypatch):
  from freqforensics.data import beam

  src = make_folders({"A_real": 14, "B_gan": 14, "C_gan": 14}, size=(20, 20))
  (src / "B_gan" / "img_0003.png").write_bytes(b"broken")
  monkeypatch.setattr(preparation, "_CHUNK_FILES", (4, 4))  # several decoding tasks per class
  base = dict(image_size=16, channels=3, split=(8, 2, 3))
  threads = preparation.prepare_to(
    src, tmp_path / "threads", preparation.PrepareOptions(**base, parallel="thread"), progress=False
  )
  assert threads.num_examples == {"train": 24, "val": 6, "test": 9}
  processes = preparation.prepare_to(
    src, tmp_path / "processes", preparation.PrepareOptions(**base, parallel="process", num_threads=2), progress=False
  )
  beam = preparation.prepare_to(
    src,
    tmp_path / "beam",
    preparation.PrepareOptions(**base),
    progress=False,
    runner=beam.beam_runner("--runner=DirectRunner"),
  )
  _same_dataset(threads.path, processes.path)
  _same_dataset(threads.path, beam.path)
  assert beam.metadata["skipped_by_reason"] == {"not an image": 1}


def test_kill_9_during_prepare_then_rerun_gives_the_uninterrupted_bytes(tmp_path):
  import signal
  import time

  from conftest import write_class_folders

  src = write_class_folders(tmp_path / "src", {"A_real": 400, "B_gan": 400}, size=(24, 24))
  args = [f"--source_dir={src}", "--image_size=16", "--split=0.7,0.1,0.2", "--num_workers=2"]
  assert _cli(*args, f"--out_dir={tmp_path / 'clean'}").returncode == 0
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "freqforensics.tools.prepare",
      "--progress=false",
      *args,
      f"--out_dir={tmp_path / 'killed'}",
    ],
    cwd=ROOT,
    env=env,
    start_new_session=True,
  )
  while not (tmp_path / "killed" / ".chunks").exists() and proc.poll() is None:
    time.sleep(0.02)
  os.killpg(proc.pid, signal.SIGKILL)  # the command and its workers, mid-run
  proc.wait()
  r = _cli(*args, f"--out_dir={tmp_path / 'killed'}")
  assert r.returncode == 0, r.stderr[-2000:]
  _same_dataset(tmp_path / "clean", tmp_path / "killed")


def test_grayscale_end_to_end_from_folders_to_classify(tmp_path):
  from freqforensics import train
  from freqforensics.evaluation import inference

  src = write_fingerprinted_folders(tmp_path / "src", 24)
  out = tmp_path / "prepared"
  assert (
    _cli(f"--source_dir={src}", f"--out_dir={out}", "--image_size=16", "--channels=1", "--split=16,4,4").returncode == 0
  )
  c = tiny_folder_config(src, tmp_path / "data", epochs=1)
  c.data.source_dir, c.data.prepared_dir = "", str(out)  # train on the dataset the command prepared
  c.data.channels = 1  # as prepared (a mismatch is refused)
  metrics = train.train_and_evaluate(c, tmp_path / "wd")  # the release crashed here on grayscale
  assert metrics["label_names"] == ["A_real", "B_gan"] and sum(map(sum, metrics["confusion_matrix"])) == 8
  clf = inference.load(tmp_path / "wd")
  assert clf.input_shape == (16, 16, 1)
  image = clf.prepare_file(src / "B_gan" / "img_0000.png")
  from PIL import Image

  want = np.asarray(Image.open(src / "B_gan" / "img_0000.png").convert("L"))[..., None]
  np.testing.assert_array_equal(image, want)
  probs = clf.predict(image[None])
  assert probs.shape == (1, 2) and abs(float(probs.sum()) - 1) < 1e-5
