"""The robustness and perturb commands: the report, the perturbed copy, resume, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, tiny_folder_config, write_class_folders, write_fingerprinted_folders
from PIL import Image

from freqforensics import train
from freqforensics.data import distortions as P

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny model trained with augmentation (every image perturbed by one of the four)."""
  root = tmp_path_factory.mktemp("robust")
  c = tiny_folder_config(write_fingerprinted_folders(root / "src", 16), root / "data", split=(8, 4, 4), epochs=2)
  c.augment.kind, c.augment.probability = "combined", 1.0
  train.train_and_evaluate(c, root / "wd")
  return c, root


def _env(tmp_path: Path) -> dict[str, str]:
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", FREQFORENSICS_DATA=str(tmp_path / "data"))
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
  return env


def test_robustness_command_writes_the_report_and_fails_in_one_line(trained, tmp_path):
  _, root = trained
  cmd = [
    sys.executable,
    "-m",
    "freqforensics.tools.robustness",
    f"--workdir={root / 'wd'}",
    "--batch_size=8",
    "--jpeg_quality=50",
    "--blur_sigma=1",
    "--noise_std=",
    "--crop_fraction=0.1",
    "--progress=false",
    f"--out_dir={tmp_path / 'out'}",
  ]
  r = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  saved = json.loads((tmp_path / "out" / "robustness.json").read_text())
  assert sorted(saved["results"]) == ["blur", "crop", "jpeg"] and saved["settings"]["split"] == "test"
  assert "| jpeg quality 50 |" in r.stdout and "| blur sigma 1 |" in r.stdout
  r = subprocess.run(
    cmd[:4] + ["--jpeg_quality=fifty"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120
  )
  assert "--jpeg_quality must be a comma-separated list of numbers" in one_line_error(r)


def _perturb(tmp_path: Path, src: Path, out: Path, *extra: str):
  cmd = [
    sys.executable,
    "-m",
    "freqforensics.tools.perturb",
    f"--source_dir={src}",
    f"--out_dir={out}",
    "--progress=false",
    *extra,
  ]
  return subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=60)


def test_perturb_command_writes_png_or_the_jpeg_itself_and_resumes(tmp_path):
  src = write_class_folders(tmp_path / "src", {"A_real": 4, "B_gan": 4}, size=(20, 28))
  r = _perturb(tmp_path, src, tmp_path / "jpeg", "--kind=jpeg", "--probability=1", "--jpeg_quality=30")
  assert r.returncode == 0, r.stderr[-2000:]
  for p in sorted(src.rglob("*.png")):
    out = tmp_path / "jpeg" / p.relative_to(src).with_suffix(".jpg")
    with Image.open(out) as im:
      assert im.format == "JPEG"
      np.testing.assert_array_equal(np.asarray(im), P.jpeg(np.asarray(Image.open(p)), 30))
  out = tmp_path / "mixed"
  r = _perturb(tmp_path, src, out, "--kind=combined", "--probability=0.5", "--seed=4")
  assert r.returncode == 0, r.stderr[-2000:]
  rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
  assert len(rows) == 8 and {r["output"][-4:] for r in rows} <= {".png", ".jpg"}
  first = {r["output"]: (out / r["output"]).read_bytes() for r in rows}
  for r_ in rows:  # non-JPEG outputs are lossless PNGs of the perturbed (or untouched) image
    if not r_["perturbations"]:
      np.testing.assert_array_equal(
        np.asarray(Image.open(out / r_["output"])), np.asarray(Image.open(src / r_["source"]))
      )
  # Interrupted: two images lost, the manifest cut short. The same command completes it identically.
  (out / rows[-1]["output"]).unlink()
  (out / rows[0]["output"]).unlink()
  (out / "manifest.jsonl").write_text("".join(json.dumps(r_) + "\n" for r_ in rows[:-1]))
  r = _perturb(tmp_path, src, out, "--kind=combined", "--probability=0.5", "--seed=4")
  assert r.returncode == 0 and "2 from an earlier" not in r.stdout and "6 from an earlier" in r.stdout, r.stdout
  assert {p: (out / p).read_bytes() for p in first} == first
  # Other settings are refused (nothing overwritten) unless --overwrite; a folder of other files always.
  assert "holds a perturbed copy of other settings" in one_line_error(_perturb(tmp_path, src, out, "--seed=5"))
  assert _perturb(tmp_path, src, out, "--seed=5", "--overwrite").returncode == 0
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "notes.txt").write_text("mine")
  assert "is not empty" in one_line_error(_perturb(tmp_path, src, tmp_path / "mine", "--overwrite"))
  assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_an_exif_rotated_photo_stays_upright_in_the_perturbed_copy(tmp_path):
  """The copy reads images as prepare does (one reader): a phone photo stored sideways with an EXIF
  orientation comes out upright, as `ImageOps.exif_transpose` turns it, not as its stored pixels lie."""
  from PIL import ImageOps

  src = tmp_path / "src"
  (src / "A_real").mkdir(parents=True)
  stored = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)  # 24 rows x 40 columns
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: the camera was turned; viewers rotate 90 degrees clockwise
  Image.fromarray(stored).save(src / "A_real" / "phone.jpg", quality=95, exif=exif)
  with Image.open(src / "A_real" / "phone.jpg") as im:
    upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
  assert upright.shape == (40, 24, 3)
  r = _perturb(tmp_path, src, tmp_path / "copy", "--kind=noise", "--probability=0")
  assert r.returncode == 0, r.stderr[-2000:]
  copied = np.asarray(Image.open(tmp_path / "copy" / "A_real" / "phone.png"))
  np.testing.assert_array_equal(copied, upright)


def test_robustness_never_replaces_a_users_files_and_registers_only_its_own(trained, tmp_path):
  import shutil

  from freqforensics import workdir as wd

  _, root = trained
  work = tmp_path / "wd"
  shutil.copytree(root / "wd", work)
  base = [sys.executable, "-m", "freqforensics.tools.robustness", f"--workdir={work}", "--batch_size=8"]
  base += ["--jpeg_quality=50", "--blur_sigma=", "--noise_std=", "--crop_fraction=", "--progress=false"]

  def run(*extra: str):
    return subprocess.run(base + list(extra), cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=180)

  out = tmp_path / "out"
  out.mkdir()
  Image.new("RGB", (8, 8), "red").save(out / "robustness.png")  # the user's own image
  mine = (out / "robustness.png").read_bytes()
  for extra in ((), ("--overwrite",)):
    assert "robustness.png exists and was not written by freqforensics" in one_line_error(
      run(f"--out_dir={out}", *extra)
    )
  assert (out / "robustness.png").read_bytes() == mine and not (out / "robustness.json").exists()
  (out / "robustness.png").unlink()
  for notes in ("[1, 2]", '{"my": "notes"}', "not json"):  # a user's robustness.json: no traceback, never replaced
    (out / "robustness.json").write_text(notes)
    for extra in ((), ("--overwrite",)):
      error = one_line_error(run(f"--out_dir={out}", *extra))
      assert "robustness.json exists and is not a robustness report written by freqforensics" in error
    assert (out / "robustness.json").read_text() == notes
  # The default folder in the work dir: its two files are the run's, a user's notes beside them are not.
  r = run()
  assert r.returncode == 0, r.stderr[-2000:]
  (work / "robustness_test" / "notes.txt").write_text("mine")
  record = wd.record(work)
  assert record.owns("robustness_test/robustness.json") and not record.owns("robustness_test/notes.txt")
  record.remove_owned()  # what `main --overwrite` does to the earlier run
  assert (work / "robustness_test" / "notes.txt").read_text() == "mine"
  assert not (work / "robustness_test" / "robustness.json").exists()
