"""Issue 19's commands end to end: the format audit (on folders and on a prepared dataset, and in prepare's
output), prepare --match_format, the processed test set, classify --match_format, and the shortcut-gap
experiment (`launch/paper_format_shortcut.py --tiny`)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import one_line_error
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _cli(tool: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-m", f"freqforensics.tools.{tool}", *args],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=str(ROOT)),
    capture_output=True,
    text=True,
    timeout=300,
  )


def _biased(root: Path, n: int = 10) -> Path:
  """Reals as JPEG q75, fakes as PNG, all 20x20."""
  rng = np.random.default_rng(0)
  for name, ext in (("A_real", ".jpg"), ("B_gan", ".png")):
    (root / name).mkdir(parents=True)
    for i in range(n):
      Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / name / f"{i}{ext}", quality=75)
  return root


FORMAT_LINE = "warning: format: A_real is 100% JPEG q~75, B_gan is 100% PNG"


def test_audit_prepare_and_process_commands(tmp_path):
  src = _biased(tmp_path / "src")
  r = _cli("audit", f"--source_dir={src}", f"--out_dir={tmp_path / 'report'}")
  assert r.returncode == 0, r.stderr[-2000:]  # findings are information, not an error
  assert r.stdout.splitlines().count(FORMAT_LINE) == 1 and "| A_real | 10 | 100% JPEG | 75 |" in r.stdout
  assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["audit.json", "audit.md", "audit.png"]

  r = _cli("prepare", f"--source_dir={src}", f"--out_dir={tmp_path / 'prep'}", "--image_size=20", "--progress=false")
  assert r.returncode == 0 and FORMAT_LINE in r.stdout.splitlines(), r.stderr[-2000:]
  assert r.stdout.splitlines()[0].startswith(
    f"prepared {tmp_path / 'prep'}: train 14, val 2, test 4"
  )  # the summary as before
  r = _cli("audit", f"--source_dir={tmp_path / 'prep'}")  # a prepared dataset: the audit it recorded
  assert r.returncode == 0 and FORMAT_LINE in r.stdout.splitlines() and "decoded and stored" in r.stdout
  r = _cli(
    "prepare",
    f"--source_dir={src}",
    f"--out_dir={tmp_path / 'matched'}",
    "--image_size=20",
    "--match_format=jpeg:90",
    "--progress=false",
  )
  assert r.returncode == 0 and "every class JPEG-encoded at quality 90 before it was stored" in r.stdout

  r = _cli("process", f"--source_dir={src}", f"--out_dir={tmp_path / 'processed'}", "--progress=false")
  assert r.returncode == 0, r.stderr[-2000:]
  assert f"wrote 20 images to {tmp_path / 'processed'}" in r.stdout and (tmp_path / "processed" / "plan.csv").is_file()
  r = _cli("audit", f"--source_dir={tmp_path / 'processed'}")  # one format and one size for every class now
  assert r.returncode == 0 and "warning: format" not in r.stdout and "warning: image size" not in r.stdout

  assert "--match_format='jpeg:0' is not valid" in one_line_error(
    _cli("prepare", f"--source_dir={src}", f"--out_dir={tmp_path / 'x'}", "--match_format=jpeg:0")
  )
  assert "jpeg_quality" in one_line_error(
    _cli("process", f"--source_dir={src}", f"--out_dir={tmp_path / 'y'}", "--jpeg_quality=90,60")
  )
  assert "does not exist" in one_line_error(_cli("audit", f"--source_dir={tmp_path / 'missing'}"))
  assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _script(name: str):
  spec = importlib.util.spec_from_file_location(name, ROOT / "launch" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_shortcut_gap_script_tiny(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  out = _script("paper_format_shortcut").main(["--tiny", f"--results={tmp_path}", "--features=dct_log"])
  rows = json.loads((out / "format_shortcut.json").read_text())
  assert [(r["trained_on"], r["model"]) for r in rows] == [
    ("biased", "log2"),
    ("biased", "cnn"),
    ("matched", "log2"),
    ("matched", "cnn"),
  ]
  for r in rows:
    run = out / "runs" / f"{r['trained_on']}_{r['model']}_dct_log"
    own = json.loads((run / "test_metrics.json").read_text())["accuracy"]
    matched = json.loads((run / "eval_matched_test.json").read_text())["accuracy"]
    processed = json.loads((run / "eval_processed_test.json").read_text())["accuracy"]
    assert (r["own"], r["matched"], r["processed"]) == (own, matched, processed)
    assert r["gap"] == own - matched and 0 <= r["fakes_as_real_matched"] <= 1 and 0 <= r["fakes_as_real_processed"] <= 1
    info = json.loads((run / "bundle" / "bundle.json").read_text())
    assert info["match_format"] == ("jpeg:90" if r["trained_on"] == "matched" else "")
    if r["trained_on"] == "matched":
      assert r["gap"] == 0  # its own test split is the matched one
  audit = json.loads((out / "audit" / "audit.json").read_text())
  assert audit["findings"][0].startswith("format: A_real is 100% JPEG q~90, B_nearest is 100% PNG")
  plan = (out / "data" / "processed" / "plan.csv").read_text().splitlines()
  assert plan[0] == "file,output,width,height,side,left,top,size,quality" and len(plan) == 1 + 4 * 12
  assert (out / "format_shortcut.png").stat().st_size > 0 and "| biased | log2 | dct_log |" in (
    out / "format_shortcut.md"
  ).read_text()

  # classify --match_format: the matched model's JPEG step, and a one-line refusal for a model without one.
  matched_run = out / "runs" / "matched_log2_dct_log"
  r = _cli("classify", f"--workdir={matched_run}", "--match_format", "--output=-", str(out / "data" / "biased"))
  assert r.returncode == 0, r.stderr[-2000:]
  assert len(r.stdout.strip().splitlines()) == 1 + 4 * 60
  biased_run = out / "runs" / "biased_log2_dct_log"
  line = one_line_error(_cli("classify", f"--workdir={biased_run}", "--match_format", str(out / "data" / "biased")))
  assert "trained without format matching" in line
