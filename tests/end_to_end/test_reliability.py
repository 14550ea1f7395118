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
from conftest import killed_writer, one_line_error, write_class_folders
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


# --- Ownership records and manifests (issue 24: items 1, 5, 14 and 17).


def _copy_cmd(tool: str, src: Path, out: Path, *extra: str) -> list[str]:
  return [sys.executable, "-m", f"freqforensics.tools.{tool}", f"--source_dir={src}", f"--out_dir={out}"] + [
    "--progress=false",
    "--num_threads=2",
    *extra,
  ]


def _victims(tmp_path: Path) -> dict[Path, str]:
  """Files beside the folder under test that no command may touch: path -> content."""
  victims = {tmp_path / "victim.txt": "the user's file", tmp_path / "victim_dir" / "notes.txt": "the user's notes"}
  for path, text in victims.items():
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  return victims


def test_overwrite_never_deletes_what_a_work_dirs_record_names_outside_it(finished_run, tmp_path):
  import shutil

  from freqforensics import train
  from freqforensics.errors import UserError

  tmp, _, c = finished_run
  wd = tmp_path / "wd"
  shutil.copytree(tmp / "wd", wd)
  victims = _victims(tmp_path)
  with open(wd / ".freqforensics_outputs.jsonl", "a") as f:  # an edited (or received) record
    f.write(json.dumps({"path": "../victim.txt", "kind": "file"}) + "\n")
    f.write(json.dumps({"path": str(tmp_path / "victim_dir"), "kind": "tree"}) + "\n")
  before = _tree(wd)
  c = c.copy_and_resolve_references()
  c.train.epochs = 1  # another config: --overwrite replaces the run
  with pytest.raises(UserError, match="outputs.jsonl names '../victim.txt'.*nothing was deleted"):
    train.train_and_evaluate(c, wd, overwrite=True)
  assert _tree(wd) == before
  assert {p: p.read_text() for p in victims} == victims


@pytest.mark.parametrize("tool,options", [("process", ("--size=16",)), ("perturb", ("--kind=jpeg",))])
def test_overwrite_never_deletes_what_a_copys_manifest_names_outside_it(tmp_path, tool, options):
  src = _tiny_source(tmp_path, n=4)
  out = tmp_path / "copy"
  r = subprocess.run(
    _copy_cmd(tool, src, out, *options), cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300
  )
  assert r.returncode == 0, r.stderr[-2000:]
  victims = _victims(tmp_path)
  with open(out / "manifest.jsonl", "a") as f:  # a copy received from someone else
    f.write(json.dumps({"source": "A_real/x.png", "output": "../victim.txt"}) + "\n")
    f.write(json.dumps({"source": "A_real/y.png", "output": str(tmp_path / "victim_dir" / "notes.txt")}) + "\n")
  before = _tree(out)
  r = subprocess.run(
    _copy_cmd(tool, src, out, *options, "--seed=1", "--overwrite"),
    cwd=ROOT,
    env=_env(tmp_path),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert "manifest.jsonl names '../victim.txt'" in one_line_error(r)
  assert _tree(out) == before
  assert {p: p.read_text() for p in victims} == victims


def test_a_processed_copy_takes_long_names_kills_cut_manifests_and_damaged_settings(tmp_path):

  from freqforensics.files import ownership

  src = _tiny_source(tmp_path, n=4)
  long_name = "x" * 246 + ".png"  # a legal 250-character name
  (src / "A_real" / long_name).write_bytes((src / "A_real" / "img_0000.png").read_bytes())
  out = tmp_path / "copy"
  env = _env(tmp_path)

  def run(*extra):
    return subprocess.run(
      _copy_cmd("process", src, out, "--size=16", *extra),
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
    )

  r = run()
  assert r.returncode == 0, r.stderr[-2000:]
  assert (out / "A_real" / ("x" * 246 + ".jpg")).is_file()
  # A kill -9 while the last row was appended and its image written: a cut manifest line, a temporary file.
  lines = (out / "manifest.jsonl").read_text().splitlines()
  last = json.loads(lines[-1])
  (out / last["output"]).unlink()
  (out / "manifest.jsonl").write_text("".join(line + "\n" for line in lines[:-1]) + lines[-1][:25])
  killed_writer(out / last["output"])
  hidden = lambda: [p for p in out.rglob(".*") if p.is_file() and p.name != ownership.RECORD]  # noqa: E731
  assert len(hidden()) == 1
  r = run()
  assert r.returncode == 0, r.stderr[-2000:]
  assert "interrupted" in r.stdout
  assert (out / last["output"]).is_file() and not hidden()
  rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
  assert sorted(row["source"] for row in rows) == sorted(
    str(p.relative_to(src)) for p in src.rglob("*.png")
  )  # one row per image, none cut, none repeated
  r = run()  # a finished copy
  assert r.returncode == 0, r.stderr[-2000:]
  assert "already holds the finished copy of 9 images" in r.stdout and "interrupted" not in r.stdout
  (out / "process.json").write_text('{"version": 1, "se')
  line = one_line_error(run())
  assert "process.json" in line and "damaged" in line and "--overwrite" in line
  r = run("--overwrite")
  assert r.returncode == 0, r.stderr[-2000:]
  assert json.loads((out / "process.json").read_text())["seed"] == 0


def test_perturb_names_its_own_flags(tmp_path):
  r = subprocess.run(
    _copy_cmd("perturb", tmp_path / "no_such_folder", tmp_path / "copy"),
    cwd=ROOT,
    env=_env(tmp_path),
    capture_output=True,
    text=True,
    timeout=300,
  )
  line = one_line_error(r)
  assert "--source_dir" in line and "--config" not in line


# --- Pixel bombs, locks (issue 24, items 6, 7 and 17) --------------------------------------------------------


def _with_bomb(src: Path, tmp_path: Path) -> Path:
  """A copy of `src` with a 69-byte PNG header of 30000x30000 pixels in `B_gan` (a decompression bomb to Pillow)."""
  import shutil

  from conftest import pixel_bomb_png

  out = tmp_path / "src_bomb"
  shutil.copytree(src, out)
  (out / "B_gan" / "bomb.png").write_bytes(pixel_bomb_png())
  return out


def test_a_pixel_bomb_in_a_class_folder_is_skipped_and_training_finishes(tmp_path):
  """Preparation skips the bomb; training used to train every epoch and then die in the model card (Pillow's
  DecompressionBombError), on every rerun. The card lists the sizes of the prepared files only: not the bomb,
  not an image preparation skipped as too small, not the files beyond the split's counts."""
  from conftest import tiny_folder_config

  from freqforensics import train
  from freqforensics.data import reader

  src = _with_bomb(_tiny_source(tmp_path), tmp_path)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "A_real" / "a_small.png")  # sorts first: decoded
  c = tiny_folder_config(src, tmp_path / "data", split=(16, 4, 4), epochs=1)
  train.train_and_evaluate(c, tmp_path / "wd")
  assert (tmp_path / "wd" / "test_metrics.json").is_file()
  (prepared,) = (tmp_path / "data" / "prepared").iterdir()
  assert {r["path"]: r["reason"] for r in reader.read_report(prepared)} == {
    "A_real/a_small.png": "too small",
    "B_gan/bomb.png": "pixel limit",
  }
  data = json.loads((tmp_path / "wd" / "bundle" / "bundle.json").read_text())["model_card"]["data"]
  # 16 + 4 + 4 prepared images of each class, all 16x16 PNGs (of 31 files in each class folder).
  assert (data["files"], data["headers_sampled"]) == (48, 48)
  assert data["image_sizes"] == {"16x16": 48} and data["formats"] == {"PNG": 48}


def test_audit_process_and_classify_report_a_pixel_bomb_as_skipped(finished_run, tmp_path):
  tmp, src0, _ = finished_run
  src = _with_bomb(src0, tmp_path)
  env = _env(tmp_path)
  run = lambda *cmd: subprocess.run(  # noqa: E731
    [sys.executable, "-m", *cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  audit = run("freqforensics.tools.audit", f"--source_dir={src}")
  assert audit.returncode == 0 and "Traceback" not in audit.stderr, audit.stderr[-2000:]
  assert "Skipped (header refused, as preparation would skip them): B_gan: 1 pixel limit." in audit.stdout
  process = run("freqforensics.tools.process", f"--source_dir={src}", f"--out_dir={tmp_path / 'processed'}")
  assert process.returncode == 0 and "Traceback" not in process.stderr, process.stderr[-2000:]
  assert "wrote 60 images" in process.stdout and "skipped 1 unreadable files" in process.stdout
  manifest = [json.loads(line) for line in (tmp_path / "processed" / "manifest.jsonl").read_text().splitlines()]
  (bomb,) = [row for row in manifest if row.get("source") == "B_gan/bomb.png"]
  assert "exceeds limit" in bomb["error"]
  out = tmp_path / "scores.csv"
  classify = run("freqforensics.tools.classify", f"--workdir={tmp / 'wd'}", f"--output={out}", str(src / "B_gan"))
  assert classify.returncode == 1 and "Traceback" not in classify.stderr, classify.stderr[-2000:]  # 1: a file unused
  assert "classified 30 of 31 image files" in classify.stdout and "skipped 1 unreadable files" in classify.stdout
  (row,) = [line for line in out.read_text().splitlines() if "bomb.png" in line]
  assert "exceeds limit" in row


def _held(folder: Path):
  """The lock a running preparation holds on `folder`, taken by this test (as that other process would)."""
  from freqforensics.data import preparation
  from freqforensics.files import locks

  folder.mkdir(parents=True, exist_ok=True)
  return locks.DirLock(folder, preparation.LOCK).acquire("test")


def _wait_for_line(paths: list[Path], text: str, procs: list[subprocess.Popen], timeout: float = 120) -> None:
  deadline = time.time() + timeout
  while time.time() < deadline and not all(text in p.read_text() for p in paths):
    assert all(proc.poll() is None for proc in procs), [p.read_text()[-2000:] for p in paths]
    time.sleep(0.1)
  assert all(text in p.read_text() for p in paths), [p.read_text()[-2000:] for p in paths]


def test_two_prepares_into_one_folder_wait_for_each_other(tmp_path):
  """Two `prepare` runs into one fresh --out_dir, started while a third holds it: each says once that it waits,
  then one prepares and the other reuses that dataset. Unlocked, they wrote the same chunks at once."""
  from freqforensics.data import reader

  src = write_class_folders(tmp_path / "src", {"A_real": 12, "B_gan": 12}, size=(16, 16))
  out = tmp_path / "out"
  lock = _held(out)
  cmd = [
    sys.executable,
    "-m",
    "freqforensics.tools.prepare",
    f"--source_dir={src}",
    f"--out_dir={out}",
    "--image_size=16",
    "--split=8,2,2",
    "--progress=false",
  ]
  logs = [tmp_path / f"prepare{i}.err" for i in range(2)]
  procs = [
    subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    for log in logs
  ]
  try:
    _wait_for_line(logs, f"waiting for {out}: in use by process {os.getpid()}", procs)
  finally:
    lock.release()
  for proc, log in zip(procs, logs):
    assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text() and log.read_text().count("waiting for") <= 2
  ds = reader.open_prepared(out)
  assert ds.num_examples == {"train": 16, "val": 4, "test": 4} and ds.metadata["skipped"] == 0
  assert not [p.name for p in out.iterdir() if ".tmp" in p.name or p.name == ".chunks"]


def test_parallel_training_runs_share_one_prepared_cache(tmp_path):
  """Two training runs on the same data into a fresh data cache (a parallel sweep): both wait while the cache
  folder is busy, then one prepares it and the other reuses it; both finish, with one prepared dataset."""
  from freqforensics.data import images, preparation

  src = _tiny_source(tmp_path, n=20)
  # The cache folder training prepares this source into (the config below: 16x16 RGB, split 12/4/4).
  options = preparation.PrepareOptions(16, 3, (12, 4, 4))
  folder = images.list_class_folders(src)
  cache = tmp_path / "data" / "prepared" / f"src-{preparation.fingerprint(folder, options)[:12]}"
  lock = _held(cache)
  logs = [tmp_path / f"train{i}.err" for i in range(2)]
  procs = [
    subprocess.Popen(
      _main(src, tmp_path / f"wd{i}", "--config.train.epochs=1", split="(12, 4, 4)"),
      cwd=ROOT,
      env=_env(tmp_path),
      stdout=subprocess.DEVNULL,
      stderr=open(log, "w"),
    )
    for i, log in enumerate(logs)
  ]
  try:
    _wait_for_line(logs, f"waiting for {cache}: in use by process {os.getpid()}", procs, timeout=240)
  finally:
    lock.release()
  for i, (proc, log) in enumerate(zip(procs, logs)):
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    assert (tmp_path / f"wd{i}" / "test_metrics.json").is_file()
  assert [p.name for p in (tmp_path / "data" / "prepared").iterdir()] == [cache.name]


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
