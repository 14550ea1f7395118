"""Nothing lost: kill -9 after the best epoch, --overwrite and ownership, locks, workers, partial outputs.

Each test here stands for a way a user's run or data could be lost or blocked; see docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, write_class_folders
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, devices: int = 2) -> dict[str, str]:
  env = dict(os.environ, FREQFORENSICS_DATA=str(tmp_path / "data"), PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def _main(src: Path, workdir: Path, *extra: str, split: str = "(100, 25, 25)") -> list[str]:
  return [
    sys.executable,
    "-m",
    "freqforensics.main",
    "--config=configs/folder.py:tiny",
    f"--workdir={workdir}",
    f"--config.data.source_dir={src}",
    "--config.data.image_size=16",
    f"--config.data.split={split}",
    "--config.train.batch_size=8",
    "--config.eval.batch_size=8",
    "--config.progress=false",
    *extra,
  ]


def _rows(workdir: Path) -> list[dict]:
  path = workdir / "metrics.jsonl"
  if not path.is_file():
    return []
  out = []
  for line in path.read_text().splitlines():
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      pass
  return out


def _tree(root: Path) -> dict[str, bytes]:
  """Every file below `root` with its bytes, but the lock file (each command writes its process id there)."""
  return {
    str(p.relative_to(root)): p.read_bytes()
    for p in sorted(root.rglob("*"))
    if p.is_file() and p.name != ".freqforensics.lock"
  }


def test_kill_inside_the_patience_window_resumes_to_the_uninterrupted_result(tmp_path):
  # Two classes of unrelated noise: the model can only memorise, so validation loss is lowest in an early
  # epoch and rises after it. 12 epochs with patience 100 then end in a long patience window, which is
  # where the run is killed (its best checkpoint is an older one, saved before the kill).
  src = write_class_folders(tmp_path / "src", {"A_real": 150, "B_gan": 150}, size=(16, 16))
  env = _env(tmp_path)
  common = (
    "--config.train.epochs=12",
    "--config.train.patience=100",
    "--config.model.name=log2",
    "--config.train.learning_rate=0.01",
    "--config.train.checkpoint_every_steps=4",
  )
  full = subprocess.run(
    _main(src, tmp_path / "full", *common), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
  )
  assert full.returncode == 0, full.stderr[-3000:]
  losses = [r["val_loss"] for r in _rows(tmp_path / "full")]
  best = int(np.argmin(losses)) + 1
  assert len(losses) == 12 and best <= 8, f"the setup needs an early best epoch, got {best} of {losses}"

  cut = tmp_path / "cut"
  cmd = _main(src, cut, *common)
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline and len(_rows(cut)) < best + 1:  # one epoch past the best: inside the window
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
  assert best < len(_rows(cut)) < 12 and not (cut / "test_metrics.json").exists()

  again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resumed at epoch" in again.stderr
  with np.load(tmp_path / "full" / "bundle" / "params.npz") as a, np.load(cut / "bundle" / "params.npz") as b:
    assert a.files == b.files
    for k in a.files:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
  want, got = (json.loads((d / "test_metrics.json").read_text()) for d in (tmp_path / "full", cut))
  assert got["epoch"] == want["epoch"] == best
  assert got["confusion_matrix"] == want["confusion_matrix"]
  assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
  assert [r["epoch"] for r in _rows(cut)] == list(range(1, 13))  # one row per epoch, none repeated


def _tiny_source(tmp_path: Path, n: int = 30) -> Path:
  src = write_class_folders(tmp_path / "src", {"A_real": n, "B_gan": n}, size=(16, 16))
  for p in sorted((src / "B_gan").glob("*.png")):
    a = np.asarray(Image.open(p))[::2, ::2]
    Image.fromarray(a.repeat(2, axis=0).repeat(2, axis=1)).save(p)
  return src


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A finished tiny run (in-process) that tests copy before changing."""
  from conftest import tiny_folder_config

  from freqforensics import train

  tmp = tmp_path_factory.mktemp("finished")
  src = _tiny_source(tmp)
  c = tiny_folder_config(src, tmp / "data", epochs=2)
  train.train_and_evaluate(c, tmp / "wd")
  return tmp, src, c


def test_overwrite_with_a_mistyped_config_keeps_the_earlier_run(finished_run, tmp_path):
  import shutil

  tmp, src, _ = finished_run
  wd = tmp_path / "wd"
  shutil.copytree(tmp / "wd", wd)
  before = _tree(wd)
  r = subprocess.run(
    _main(src, wd, "--overwrite", f"--config.data.source_dir={tmp / 'no_such_folder'}"),
    cwd=ROOT,
    env=_env(tmp),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert "does not exist" in one_line_error(r)
  assert _tree(wd) == before


def test_overwrite_deletes_only_what_the_run_wrote(finished_run, tmp_path):
  import shutil

  from freqforensics import train
  from freqforensics.errors import UserError

  tmp, _, c = finished_run
  wd = tmp_path / "wd"
  shutil.copytree(tmp / "wd", wd)
  (wd / "my_notes.txt").write_text("mine")
  (wd / "checkpoints" / "README.txt").write_text("my notes on these checkpoints")
  c = c.copy_and_resolve_references()
  c.train.epochs = 1  # another config: --overwrite replaces the run
  before = _tree(wd)
  with pytest.raises(UserError, match=r"checkpoints/README.txt inside it was not written by freqforensics"):
    train.train_and_evaluate(c, wd, overwrite=True)
  assert _tree(wd) == before  # refused before anything was deleted
  (wd / "checkpoints" / "README.txt").unlink()
  (wd / "bundle" / "mine.json").write_text("{}")
  with pytest.raises(UserError, match=r"bundle/mine.json inside it"):
    train.train_and_evaluate(c, wd, overwrite=True)
  (wd / "bundle" / "mine.json").unlink()
  train.train_and_evaluate(c, wd, overwrite=True)
  assert (wd / "my_notes.txt").read_text() == "mine"
  assert json.loads((wd / "config.json").read_text())["train"]["epochs"] == 1
  assert [r["epoch"] for r in _rows(wd)] == [1]


def test_a_folder_that_is_not_a_run_is_refused_and_left_as_it_was(finished_run, tmp_path):
  from freqforensics import train
  from freqforensics.errors import UserError

  _, _, c = finished_run
  wd = tmp_path / "photos"
  wd.mkdir()
  (wd / "holiday.jpg").write_bytes(b"x")
  with pytest.raises(UserError, match="not empty and holds no freqforensics run"):
    train.train_and_evaluate(c, wd, overwrite=True)
  assert sorted(p.name for p in wd.iterdir()) == ["holiday.jpg"]
  with pytest.raises(UserError, match="is a file"):
    train.train_and_evaluate(c, wd / "holiday.jpg")


def test_a_refused_run_leaves_no_trace(finished_run, tmp_path):
  from freqforensics import train
  from freqforensics.errors import UserError

  _, _, c = finished_run
  c = c.copy_and_resolve_references()
  c.data.split = (1000, 4, 4)  # more training images than a class has: found only once the data are listed
  with pytest.raises(UserError, match="fewer than the requested split"):
    train.train_and_evaluate(c, tmp_path / "new")
  assert not (tmp_path / "new").exists()  # no config.json (a corrected command is not "another config")


def test_prepare_overwrite_keeps_the_users_files(tmp_path):
  src = _tiny_source(tmp_path, n=12)
  out = tmp_path / "prepared"
  cmd = [
    sys.executable,
    "-m",
    "freqforensics.tools.prepare",
    f"--source_dir={src}",
    f"--out_dir={out}",
    "--image_size=16",
    "--split=6,3,3",
    "--progress=false",
  ]
  assert subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, timeout=300).returncode == 0
  (out / "NOTES.md").write_text("where these images came from")
  r = subprocess.run(
    cmd[:-2] + ["--split=8,2,2", "--overwrite", "--progress=false"],
    cwd=ROOT,
    env=_env(tmp_path),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert r.returncode == 0, r.stderr[-2000:]
  assert (out / "NOTES.md").read_text() == "where these images came from"
  assert "train 16" in r.stdout


def test_a_second_run_on_the_same_work_dir_is_refused_naming_the_first(tmp_path):
  src = _tiny_source(tmp_path, n=40)
  env = _env(tmp_path)
  wd = tmp_path / "wd"
  cmd = _main(
    src,
    wd,
    "--config.train.epochs=30",
    "--config.train.patience=100",
    "--config.train.checkpoint_every_steps=1",
    split="(24, 8, 8)",
  )
  first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 240
    while time.time() < deadline and not _rows(wd):
      time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second started"
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    line = one_line_error(second)
    assert f"is in use by process {first.pid}" in line
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  rows = _rows(wd)
  assert len({r["epoch"] for r in rows}) == len(rows)  # the second run wrote nothing


def test_prepare_workers_die_with_their_parent(tmp_path):
  import psutil

  src = write_class_folders(tmp_path / "src", {"A_real": 1500, "B_gan": 1500}, size=(96, 96))
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "freqforensics.tools.prepare",
      f"--source_dir={src}",
      f"--out_dir={tmp_path / 'out'}",
      "--image_size=64",
      "--num_workers=2",
      "--progress=false",
    ],
    cwd=ROOT,
    env=_env(tmp_path),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  parent = psutil.Process(proc.pid)
  deadline = time.time() + 120
  workers: list[int] = []
  # The decoding workers (spawned), beside multiprocessing's resource tracker: wait until two run.
  while time.time() < deadline and proc.poll() is None and len(workers) < 3:
    workers = [c.pid for c in parent.children(recursive=True)]
    time.sleep(0.05)
  time.sleep(0.5)  # the workers are decoding
  assert proc.poll() is None, "prepare finished before it could be killed"
  workers = [c.pid for c in parent.children(recursive=True)]
  assert len(workers) >= 2
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  deadline = time.time() + 10
  alive = workers
  while time.time() < deadline and alive:
    alive = [w for w in alive if Path(f"/proc/{w}").exists() and "Z" not in _state(w)]
    time.sleep(0.1)
  assert not alive, f"worker processes {alive} outlived their parent"


def _state(pid: int) -> str:
  try:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
  except (FileNotFoundError, IndexError):
    return "Z"


def test_prepare_and_classify_see_the_same_files(finished_run, tmp_path):
  """One listing rule: hidden files, macOS resource forks, broken links, loops and linked folders are
  skipped (and listed) by prepare and classify alike."""
  import shutil

  from freqforensics.data import preparation, reader
  from freqforensics.evaluation import inference

  tmp, src0, _ = finished_run
  src = tmp_path / "src"
  shutil.copytree(src0, src)
  (src / "A_real" / ".x.png").write_bytes((src / "A_real" / "img_0000.png").read_bytes())
  (src / "B_gan" / "._img_0001.png").write_bytes(b"\0\5\26\7 AppleDouble resource fork")
  (src / "B_gan" / ".cache").mkdir()
  (src / "B_gan" / ".cache" / "img_9.png").write_bytes((src / "A_real" / "img_0001.png").read_bytes())
  os.symlink(tmp_path / "nowhere.png", src / "A_real" / "broken.png")
  os.symlink(src / "A_real" / "loop.png", src / "A_real" / "loop.png")
  os.symlink(src / "B_gan", src / "A_real" / "linked_folder")
  ds = preparation.prepare_to(
    src, tmp_path / "prepared", preparation.PrepareOptions(16, 3, (1.0, 0.0, 0.0)), progress=False
  )
  train = ds.source("train")
  prepared = sorted(train[i]["path"].decode() for i in range(len(train)))
  clf = inference.load(tmp / "wd")
  got = inference.predict_files(clf, [src])
  classified = sorted(str(p.relative_to(src)) for p in got.paths)
  assert prepared == classified == sorted(f"{c}/img_{i:04d}.png" for c in ("A_real", "B_gan") for i in range(30))
  skipped = {str(p.relative_to(src)): reason for p, reason in got.skipped}
  assert skipped == {
    "A_real/.x.png": "hidden",
    "B_gan/._img_0001.png": "hidden",
    "B_gan/.cache": "hidden",
    "A_real/broken.png": "broken link",
    "A_real/loop.png": "link loop",
    "A_real/linked_folder": "link to a folder",
  }
  assert {r["path"]: r["reason"] for r in reader.read_report(ds.path)} == skipped


def test_a_killed_classify_does_not_block_the_same_command(finished_run, tmp_path):
  tmp, src, _ = finished_run
  folder = tmp_path / "many"
  folder.mkdir()
  data = (src / "A_real" / "img_0000.png").read_bytes()
  for i in range(6000):
    (folder / f"{i:05d}.png").write_bytes(data)
  out = tmp_path / "out.csv"
  cmd = [
    sys.executable,
    "-m",
    "freqforensics.tools.classify",
    f"--workdir={tmp / 'wd'}",
    f"--output={out}",
    "--batch_size=8",
    str(folder),
  ]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  partial = tmp_path / ".out.csv.partial"
  deadline = time.time() + 120
  while time.time() < deadline and not (partial.is_file() and partial.stat().st_size > 2000):
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "classify finished before it could be killed"
  assert not out.exists()
  r = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert len(out.read_text().splitlines()) == 6001 and not partial.exists()


def test_explain_replaces_only_its_own_figure(finished_run, tmp_path):
  tmp, src, _ = finished_run
  out = tmp_path / "w.png"
  cmd = [sys.executable, "-m", "freqforensics.tools.explain", f"--workdir={tmp / 'wd'}", f"--out={out}"]
  env = _env(tmp_path)
  assert subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=120).returncode == 0
  first = out.stat().st_ino
  assert "exists" in one_line_error(subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120))
  assert out.stat().st_ino == first
  r = subprocess.run(cmd + ["--overwrite"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  assert out.stat().st_ino != first  # replaced (atomically: a new file renamed into place)
  users = tmp_path / "photo.png"
  users.write_bytes((src / "A_real" / "img_0000.png").read_bytes())
  kept = users.read_bytes()
  r = subprocess.run(
    cmd[:-1] + [f"--out={users}", "--overwrite"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
  )
  assert "not written by freqforensics" in one_line_error(r)
  assert users.read_bytes() == kept


# --- Names from folders and bundles reach the terminal escaped; a class name with control characters is refused.
def test_a_class_folder_named_with_a_newline_or_escape_is_refused_before_any_work(tmp_path):
  for name in ("B\ngan", "B\x1b[2Jgan"):
    src = _tiny_source(tmp_path / name.encode("unicode_escape").decode().replace("\\", "_"), n=12)
    (src / "B_gan").rename(src / name)
    workdir = tmp_path / "wd"
    r = subprocess.run(
      _main(src, workdir, split="(8, 2, 2)"), cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    error = one_line_error(r)
    assert "has control characters in its name" in error and name.encode("unicode_escape").decode() in error
    assert "\x1b" not in r.stderr + r.stdout and not workdir.exists()
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.array_record*"))


def test_label_names_from_a_bundle_are_printed_escaped(finished_run, tmp_path):
  import shutil

  tmp, src, _ = finished_run
  shutil.copytree(tmp / "wd" / "bundle", tmp_path / "wd" / "bundle")
  path = tmp_path / "wd" / "bundle" / "bundle.json"
  info = json.loads(path.read_text())
  info["label_names"] = ["A_real\nerror: this line is fake", "B\x1b[2Jgan"]
  info["model_card"]["summary"] = "tiny\x1b[2J\nerror: so is this one"
  path.write_text(json.dumps(info))
  cmd = [sys.executable, "-m", "freqforensics.tools.classify", f"--workdir={tmp_path / 'wd'}"]
  cmd += [f"--output={tmp_path / 'out.csv'}", str(src / "B_gan")]
  r = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  shown = r.stdout + r.stderr
  assert "\x1b" not in shown and not [line for line in shown.splitlines() if line.startswith("error:")]
  assert "A_real\\nerror: this line is fake" in r.stdout and "B\\x1b[2Jgan" in r.stdout
  assert "model: tiny\\x1b[2J\\nerror: so is this one" in r.stdout
