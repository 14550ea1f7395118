"""The classify command: mixed folders, broken files, output formats, never overwriting, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import good_images
from conftest import one_line_error as _one_line_error
from PIL import Image

from freqforensics.errors import UserError
from freqforensics.evaluation import inference, predictions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(classify_run) -> Path:
  return classify_run


@pytest.fixture(scope="module")
def clf(workdir) -> inference.Classifier:
  return inference.load(workdir)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run(
    [sys.executable, "-m", "freqforensics.tools.classify", *args],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
  return {row["path"]: row for row in csv.DictReader(io.StringIO(path.read_text()))}


def test_cli_classifies_a_mixed_folder_and_reports_broken_files(workdir, clf, tmp_path):
  folder = tmp_path / "in"
  good = good_images(folder)
  (folder / "broken.png").write_bytes(np.random.default_rng(0).bytes(200))
  (folder / "notes.txt").write_text("not an image")
  r = _run(f"--workdir={workdir}", f"--output={tmp_path / 'out.csv'}", "--batch_size=4", str(folder), cwd=tmp_path)
  assert r.returncode == 1, r.stderr[-2000:]
  rows = _read_csv(tmp_path / "out.csv")
  assert sorted(rows) == sorted(str(p) for p in good + [folder / "broken.png"])
  broken = rows[str(folder / "broken.png")]
  assert broken["error"] and not broken["predicted"] and "broken.png" in r.stderr
  expected = clf.predict(np.stack([clf.prepare_file(p) for p in good]))
  for path, probs in zip(good, expected):
    row = rows[str(path)]
    assert not row["error"]
    got = [float(row["p_A_real"]), float(row["p_B_gan"])]
    np.testing.assert_allclose(got, probs, atol=1e-5)
    assert row["predicted"] == clf.label_names[int(np.argmax(probs))]
  assert "ignored 1 files" in r.stdout and "skipped 1" in r.stdout and str(tmp_path / "out.csv") in r.stdout
  assert "A_real" in r.stdout and "B_gan" in r.stdout


def test_cli_all_good_jsonl_to_stdout(workdir, tmp_path):
  good = good_images(tmp_path / "in")
  r = _run(
    f"--workdir={workdir}/bundle", "--format=jsonl", "--output=-", str(tmp_path / "in"), str(good[0]), cwd=tmp_path
  )
  assert r.returncode == 0, r.stderr[-2000:]
  records = [json.loads(line) for line in r.stdout.splitlines()]
  assert [rec["path"] for rec in records] == [str(p) for p in good + [good[0]]]
  for rec in records:
    assert rec["predicted"] in ("A_real", "B_gan") and "error" not in rec
    assert rec["p_A_real"] + rec["p_B_gan"] == pytest.approx(1.0, abs=1e-6)
  assert "results: stdout" in r.stderr


def test_default_output_is_never_overwritten(workdir, tmp_path):
  good_images(tmp_path / "in")
  before = set(workdir.glob("classify_*.csv"))
  out = predictions.OutputFile(None, workdir, "csv")
  out.stream.write("keep me")
  other = predictions.OutputFile(None, workdir, "csv")  # opened while the first is still being written
  out.finish()
  other.finish()
  first, second = out.name, other.name
  assert first != second and Path(first).read_text() == "keep me"
  with pytest.raises(UserError, match="exists"):
    predictions.OutputFile(first, workdir, "csv")
  r = _run(f"--workdir={workdir}", str(tmp_path / "in"), cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  new = set(workdir.glob("classify_*.csv")) - before - {Path(first), Path(second)}
  assert len(new) == 1 and len(_read_csv(new.pop())) == 5
  assert Path(first).read_text() == "keep me"
  line = _one_line_error(_run(f"--workdir={workdir}", f"--output={first}", str(tmp_path / "in"), cwd=tmp_path))
  assert "exists" in line


@pytest.mark.parametrize(
  "case,needle",
  [
    ("missing_workdir", "does not exist"),
    ("no_path", "no images given"),
    ("missing_path", "nowhere.png does not exist"),
    ("bad_flag", "--batch_size"),
  ],
)
def test_usage_errors_are_one_line(case, needle, workdir, tmp_path):
  Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
  args = {
    "missing_workdir": (f"--workdir={tmp_path}/nope", "a.png"),
    "no_path": (f"--workdir={workdir}",),
    "missing_path": (f"--workdir={workdir}", "nowhere.png"),
    "bad_flag": (f"--workdir={workdir}", "--batch_size=0", "a.png"),
  }[case]
  assert needle in _one_line_error(_run(*args, cwd=tmp_path))
