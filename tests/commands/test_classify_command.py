"""The classify command: mixed folders, broken files, output formats, never overwriting, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
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
  warned = [line for line in r.stderr.splitlines() if "are resized to it" in line]  # sub/big.png is 20x24
  assert len(warned) == 1 and warned[0].startswith("warning: 1 of 6 inputs checked are larger than the model's 16x16")


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
    ("bad_read", "--read"),
    ("bad_aggregate", "unknown aggregation rule 'median'"),
    ("stride_above_side", "patch_stride=17 must lie in 1..16"),
    ("no_patches", "--max_patches"),
    ("patch_logits_in_csv", "--patch_logits writes lists of logits: it needs --format=jsonl"),
    ("patch_options_resizing", "aggregate apply to native reading only"),
  ],
)
def test_usage_errors_are_one_line(case, needle, workdir, tmp_path):
  Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
  run = (f"--workdir={workdir}", f"--output={tmp_path / 'out.csv'}")
  args = {
    "missing_workdir": (f"--workdir={tmp_path}/nope", "a.png"),
    "no_path": (f"--workdir={workdir}",),
    "missing_path": (f"--workdir={workdir}", "nowhere.png"),
    "bad_flag": (f"--workdir={workdir}", "--batch_size=0", "a.png"),
    "bad_read": (*run, "--read=tiles", "a.png"),
    "bad_aggregate": (*run, "--read=native", "--aggregate=median", "a.png"),
    "stride_above_side": (*run, "--read=native", "--patch_stride=17", "a.png"),
    "no_patches": (*run, "--read=native", "--max_patches=0", "a.png"),
    "patch_logits_in_csv": (*run, "--read=native", "--patch_logits", "a.png"),
    "patch_options_resizing": (*run, "--aggregate=max", "a.png"),
  }[case]
  assert needle in _one_line_error(_run(*args, cwd=tmp_path))


def _layout(src: Path, root: Path) -> Path:
  """Two generators in the protocol's layout, one with subsets, linking the run's class folders."""
  for gen, subsets in (("flat", [""]), ("nested", ["s1", "s2"])):
    for k, sub in enumerate(subsets):
      for cls, folder in (("0_real", "A_real"), ("1_fake", "B_gan")):
        d = root / gen / sub / cls
        d.mkdir(parents=True)
        files = sorted((src / folder).glob("*.png"))
        for f in files[::2] if gen == "flat" else files[1::2][k :: len(subsets)]:
          os.symlink(f, d / f.name)
  return root


def test_the_new_columns_agree_with_mode_eval(workdir, tmp_path):
  from conftest import tiny_folder_config
  from sklearn import metrics as skm

  from freqforensics.evaluation import runner

  wd = tmp_path / "wd"
  shutil.copytree(workdir / "bundle", wd / "bundle")  # the session's run stays as it was
  layout = _layout(workdir.parent / "src", tmp_path / "gens")
  c = tiny_folder_config(workdir.parent / "src", tmp_path / "data")
  c.eval.source_dir = str(layout)
  report = next(iter(runner.evaluate_workdir(c, wd).values())).metrics
  for gen, row in report["by_generator"].items():
    r = _run(f"--workdir={wd}", "--format=jsonl", "--output=-", str(layout / gen), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert {"p_fake", "decision", "outlier_score", "outlier"} <= set(recs[0])
    is_fake = np.array(["1_fake" in rec["path"] for rec in recs])
    fake = np.array([rec["decision"] == "fake" for rec in recs])
    either = fake | np.array([rec["outlier"] == 1 for rec in recs])
    assert row["real_accuracy"] == np.mean(~fake[~is_fake]) and row["fake_accuracy"] == np.mean(fake[is_fake])
    assert row["detected"] == np.mean(either[is_fake]) and row["real_flagged"] == np.mean(either[~is_fake])
    p_fake = np.array([rec["p_fake"] for rec in recs])
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(is_fake, p_fake), abs=1e-9)
    np.testing.assert_array_equal(fake, p_fake > report["threshold"])
    assert f"p_fake > {report['threshold']:.4g}" in r.stderr  # says which threshold it used
  assert "model: log2 on dct_log features" in r.stderr  # the card's summary line


def test_an_old_bundle_is_classified_with_a_note(workdir, tmp_path):
  shutil.copytree(workdir / "bundle", tmp_path / "old")
  info = json.loads((tmp_path / "old" / "bundle.json").read_text())
  for key in ("real_label", "calibration", "outliers", "model_card"):
    del info[key]
  (tmp_path / "old" / "bundle.json").write_text(json.dumps(info))
  for name in ("outliers.npz", "MODEL_CARD.md"):
    (tmp_path / "old" / name).unlink()
  good_images(tmp_path / "in")
  r = _run(f"--workdir={tmp_path / 'old'}", f"--output={tmp_path / 'out.csv'}", str(tmp_path / "in"), cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.count("note: this bundle was written before calibration") == 1
  rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
  assert list(rows[0]) == ["path", "predicted", "p_A_real", "p_B_gan", "p_fake", "decision", "error"]
  for row in rows:  # the old rule: fake when p_fake > 0.5, probabilities as the model gives them
    assert row["decision"] == ("fake" if float(row["p_fake"]) > 0.5 else "real")
    assert float(row["p_fake"]) == pytest.approx(float(row["p_B_gan"]))


def test_inputs_unlike_the_training_data_are_warned_about_once(workdir, tmp_path):
  rng = np.random.default_rng(0)
  (tmp_path / "in").mkdir()
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(tmp_path / "in" / f"{i}.jpg")
  r = _run(f"--workdir={workdir}", f"--output={tmp_path / 'out.csv'}", str(tmp_path / "in"), cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: inputs differ")]
  assert len(warnings) == 1 and "formats JPEG (trained on PNG)" in warnings[0] and "sizes 20x24" in warnings[0]
  good = tmp_path / "same"
  good.mkdir()
  Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(good / "a.png")
  r = _run(f"--workdir={workdir}", f"--output={tmp_path / 'out2.csv'}", str(good), cwd=tmp_path)
  assert "warning: inputs differ" not in r.stderr


def _unfinished_copy(workdir: Path, to: Path) -> Path:
  """The run's bundle as training leaves it before the run has finished (killed, crashed or still training):
  the best epoch's description, parameters and statistics, without what the end of the run adds."""
  shutil.copytree(workdir / "bundle", to / "bundle")
  info = json.loads((to / "bundle" / "bundle.json").read_text())
  for key in ("calibration", "outliers", "model_card"):
    del info[key]
  (to / "bundle" / "bundle.json").write_text(json.dumps(info))
  for name in ("outliers.npz", "MODEL_CARD.md"):
    (to / "bundle" / name).unlink()
  return to


def _explain(*args: str, cwd: Path) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run(
    [sys.executable, "-m", "freqforensics.tools.explain", *args],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_the_bundle_of_an_unfinished_run_is_refused_unless_allowed(workdir, tmp_path):
  wd = _unfinished_copy(workdir, tmp_path / "wd")
  good_images(tmp_path / "in")
  args = (f"--workdir={wd}", f"--output={tmp_path / 'out.csv'}", str(tmp_path / "in"))
  line = _one_line_error(_run(*args, cwd=tmp_path))
  assert "has not finished" in line and "--allow_unfinished" in line and not (tmp_path / "out.csv").exists()
  r = _run("--allow_unfinished", *args, cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "note: the run that wrote this bundle has not finished" in r.stdout
  assert "written before calibration" not in r.stdout + r.stderr
  line = _one_line_error(_explain(f"--workdir={wd}", f"--out={tmp_path / 'w.png'}", cwd=tmp_path))
  assert "has not finished" in line and not (tmp_path / "w.png").exists()
  r = _explain(f"--workdir={wd}", f"--out={tmp_path / 'w.png'}", "--allow_unfinished", cwd=tmp_path)
  assert r.returncode == 0 and (tmp_path / "w.png").is_file(), r.stderr[-2000:]


def test_a_file_given_as_the_work_dir_is_named_a_file(tmp_path):
  (tmp_path / "run.txt").write_text("not a run")
  Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
  for r in (
    _run(f"--workdir={tmp_path / 'run.txt'}", "a.png", cwd=tmp_path),
    _explain(f"--workdir={tmp_path / 'run.txt'}", cwd=tmp_path),
    _explain(f"--workdir={tmp_path / 'run.txt'}", "--image=a.png", cwd=tmp_path),
  ):
    line = _one_line_error(r)
    assert "run.txt is a file, not a work dir or bundle folder" in line and "bundle/" not in line.split(":")[1]


def test_a_bundle_with_nan_parameters_is_refused_not_called_real(workdir, tmp_path):
  shutil.copytree(workdir / "bundle", tmp_path / "b")
  with np.load(tmp_path / "b" / "params.npz") as f:
    arrays = {k: f[k] for k in f.files}
  arrays = {k: np.full_like(v, np.nan) for k, v in arrays.items()}
  with open(tmp_path / "b" / "params.npz", "wb") as f:
    np.savez(f, **arrays)
  good_images(tmp_path / "in")
  r = _run(f"--workdir={tmp_path / 'b'}", f"--output={tmp_path / 'out.csv'}", str(tmp_path / "in"), cwd=tmp_path)
  line = _one_line_error(r)
  assert "params.npz has non-finite values" in line and not (tmp_path / "out.csv").exists()


def test_native_reading_scores_every_patch_and_lists_small_images(workdir, tmp_path):
  good = good_images(tmp_path / "in")  # 16x16 images and a 20x24 one
  Image.new("RGB", (40, 12)).save(tmp_path / "in" / "small.png")
  args = ("--read=native", "--patch_stride=8", "--aggregate=max", "--format=jsonl", "--output=-", "--patch_logits")
  r = _run(f"--workdir={workdir}", *args, str(tmp_path / "in"), cwd=tmp_path)
  assert r.returncode == 1, r.stderr[-2000:]  # the small image could not be used
  records = {rec["path"]: rec for rec in map(json.loads, r.stdout.splitlines())}
  small = records.pop(str(tmp_path / "in" / "small.png"))
  assert "is 40x12 pixels, below the model's side 16 (images are never upsampled)" in small["error"]
  assert "small.png" in r.stderr and "reading: native 16x16 patches, stride 8, at most 256" in r.stderr
  clf = inference.load(workdir, read="native", aggregate="max", patch_stride=8)
  want = inference.predict_files(clf, good)
  assert sorted(records) == sorted(map(str, want.paths)) and want.patches == [1, 1, 1, 1, 4]
  for path, probs, n in zip(want.paths, want.probs, want.patches):
    rec = records[str(path)]
    assert rec["patches"] == n == len(rec["patch_logits"]) == len(rec["patch_corners"])
    np.testing.assert_allclose([rec["p_A_real"], rec["p_B_gan"]], probs, atol=1e-5)
    np.testing.assert_allclose(
      rec["p_fake"], clf.detector.p_fake(np.max(rec["patch_logits"], axis=0)[None])[0], atol=1e-5
    )
  assert records[str(good[-1])]["patch_corners"] == [[0, 0], [0, 4], [8, 0], [8, 4]]
