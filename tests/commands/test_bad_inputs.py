"""A table of bad inputs, faults and mistakes through the real commands: one line, exit 2, nothing changed.

Every case runs a command as a user would (a subprocess) in a folder of its own, and asserts: the
exit code (2 for a mistake; 0 or 1 with counted skips where the README says so), exactly one
`error:` line naming the problem, no `Traceback`, and that no file outside the command's own outputs
changed (a snapshot of the case's folder before and after). The cases run a few at a time in one
fixture (they are independent processes) and each is then checked by its own test.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_folder_config, write_fingerprinted_folders

ROOT = Path(__file__).resolve().parents[2]
LOCK = ".freqforensics.lock"  # each command that locks a work dir writes its process id there


COMMANDS = {
  "main": "freqforensics.main",
  "prepare": "freqforensics.tools.prepare",
  "classify": "freqforensics.tools.classify",
  "explain": "freqforensics.tools.explain",
  "spectra": "freqforensics.tools.compare_spectra",
  "perturb": "freqforensics.tools.perturb",
  "robustness": "freqforensics.tools.robustness",
}


def tool(name: str) -> list[str]:
  """The command line of a command (`main`, `prepare`, `classify`, ...)."""
  return [sys.executable, "-m", COMMANDS[name]]


@dataclasses.dataclass
class Case:
  argv: list[str]
  expect: str  # a piece of the one error line (rc 2), or of the output for rc 0/1
  rc: int = 2
  outputs: tuple[str, ...] = ()  # paths (relative to the case folder) the command may create or change
  preexec: Callable[[], None] | None = None
  after: Callable[[Path], None] | None = None  # extra checks on the case folder


def _edit_bundle(case: Path, edit: Callable[[dict], None]) -> None:
  path = case / "run" / "bundle" / "bundle.json"
  info = json.loads(path.read_text())
  edit(info)
  path.write_text(json.dumps(info))


def _truncate(path: Path) -> None:
  path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _params_with(case: Path, change: Callable[[dict], None]) -> None:
  path = case / "run" / "bundle" / "params.npz"
  with np.load(path) as f:
    arrays = {k: f[k] for k in f.files}
  change(arrays)
  with open(path, "wb") as f:
    np.savez(f, **arrays)


def _limit_file_size() -> None:
  # Without a root-only tmpfs, a disk that fills up: writes past 64 KiB fail (EFBIG) instead of killing.
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def _mount_tmpfs(path: Path, *options: str) -> bool:
  path.mkdir(parents=True, exist_ok=True)
  if os.geteuid() != 0:
    return False
  r = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", ",".join(("size=256k",) + options), "tmpfs", str(path)], capture_output=True
  )
  return r.returncode == 0


def _full_disk(path: Path) -> Callable[[], None] | None:
  """Makes `path` a tiny file system (a fault like a full disk); returns the preexec to use instead if it cannot."""
  return None if _mount_tmpfs(path) else _limit_file_size


def _read_only(path: Path) -> None:
  """Makes `path` a read-only folder: a read-only tmpfs as root, permissions otherwise."""
  if not _mount_tmpfs(path, "ro"):
    path.chmod(0o555)


# --- The cases: name -> builder(case folder, shared materials) -> Case.


def _cases() -> dict[str, Callable[[Path, dict], Case]]:
  def main(case: Path, m: dict, *extra: str, workdir: str = "wd", config: str = "configs/folder.py:tiny") -> list[str]:
    return tool("main") + [
      f"--config={config}",
      f"--workdir={case / workdir}",
      f"--config.data.source_dir={m['src']}",
      "--config.data.image_size=16",
      "--config.progress=false",
      "--config.data.split=(12, 4, 4)",
      "--config.train.batch_size=8",
      "--config.eval.batch_size=8",
      *extra,
    ]

  def run_copy(case: Path, m: dict) -> Path:
    shutil.copytree(m["run"], case / "run")
    return case / "run"

  def classify(case: Path, m: dict, *extra: str) -> list[str]:
    return tool("classify") + [f"--workdir={case / 'run'}", f"--output={case / 'out.csv'}", *extra, str(m["images"])]

  def bundle_case(edit: Callable[[Path], None], needle: str, command: str = "classify") -> Callable[[Path, dict], Case]:
    def build(case: Path, m: dict) -> Case:
      run_copy(case, m)
      edit(case)
      if command == "classify":
        return Case(classify(case, m), needle)
      if command == "explain":
        return Case(tool("explain") + [f"--workdir={case / 'run'}", f"--out={case / 'w.png'}"], needle)
      return Case(
        tool("main")
        + [
          "--config=configs/folder.py:tiny",
          f"--workdir={case / 'run'}",
          "--config.mode=eval",
          f"--config.eval.source_dir={m['src']}",
          "--config.data.image_size=16",
          "--config.progress=false",
        ],
        needle,
      )

    return build

  def syntax_error(case: Path, m: dict) -> Case:
    (case / "bad.py").write_text("def get_config(arg=None:\n  pass\n")
    return Case(main(case, m, config=str(case / "bad.py")), "syntax error on line 1")

  def raises(case: Path, m: dict) -> Case:
    (case / "raises.py").write_text("def get_config(arg=None):\n  raise RuntimeError('boom')\n")
    return Case(main(case, m, config=str(case / "raises.py")), "RuntimeError: boom")

  def workdir_is_file(case: Path, m: dict) -> Case:
    (case / "wd").write_text("a file")
    return Case(main(case, m), "is a file")

  def corrupt_config(case: Path, m: dict) -> Case:
    run = run_copy(case, m)
    _truncate(run / "config.json")
    return Case(main(case, m, workdir="run"), "config.json is damaged")

  def foreign_workdir(case: Path, m: dict) -> Case:
    (case / "wd").mkdir()
    (case / "wd" / "thesis.tex").write_text("mine")
    return Case(main(case, m), "not empty and holds no freqforensics run")

  def overwrite_typo(case: Path, m: dict) -> Case:
    run_copy(case, m)
    return Case(
      main(case, m, "--overwrite", f"--config.data.source_dir={case / 'typo'}", workdir="run"), "does not exist"
    )

  def prepared_mismatch(case: Path, m: dict) -> Case:
    return Case(
      main(case, m, f"--config.data.prepared_dir={m['prepared']}", "--config.data.image_size=32"),
      "holds 16x16x3 images, but the config says data.image_size=32",
    )

  def read_only_workdir(case: Path, m: dict) -> Case:
    _read_only(case / "ro")
    return Case(main(case, m, workdir="ro/wd"), "ro/wd")

  def read_only_data_dir(case: Path, m: dict) -> Case:
    _read_only(case / "ro")
    return Case(main(case, m, f"--config.data.data_dir={case / 'ro'}"), "ro")

  def spectra_read_only(case: Path, m: dict) -> Case:
    _read_only(case / "ro")
    return Case(tool("spectra") + [f"--out_dir={case / 'ro' / 'out'}", "--size=16", str(m["src"] / "A_real")], "ro/out")

  def full_disk_training(case: Path, m: dict) -> Case:
    preexec = _full_disk(case / "small")
    # nn: a hidden layer of 98,304 weights, so its checkpoint and bundle outgrow the small disk (or file limit).
    return Case(
      main(
        case, m, "--config.train.epochs=2", "--config.model.name=nn", "--config.model.variant=paper", workdir="small/wd"
      ),
      "while writing",
      outputs=("small",),
      preexec=preexec,
    )

  def prepare(case: Path, m: dict, *extra: str, out: str = "out") -> list[str]:
    return tool("prepare") + [f"--out_dir={case / out}", "--image_size=16", "--progress=false", *extra]

  def prepare_missing(case: Path, m: dict) -> Case:
    return Case(prepare(case, m, f"--source_dir={case / 'nope'}"), "--source_dir")

  def fraction_shortfall(case: Path, m: dict) -> Case:
    src = write_fingerprinted_folders(case / "src", 20)
    for p in sorted((src / "B_gan").glob("*.png"))[2:]:
      p.unlink()
    return Case(prepare(case, m, f"--source_dir={src}", "--split=0.5,0.25,0.25"), "class B_gan has 2 images")

  def prepare_out_is_file(case: Path, m: dict) -> Case:
    (case / "out").write_text("x")
    return Case(prepare(case, m, f"--source_dir={m['src']}"), "not a dataset prepared by freqforensics")

  def prepare_read_only(case: Path, m: dict) -> Case:
    _read_only(case / "ro")
    return Case(prepare(case, m, f"--source_dir={m['src']}", out="ro/out"), "ro/out")

  def prepare_full_disk(case: Path, m: dict) -> Case:
    preexec = _full_disk(case / "small")
    return Case(
      prepare(case, m, f"--source_dir={m['src']}", out="small/out"),
      "while writing",
      outputs=("small",),
      preexec=preexec,
    )

  def links(case: Path, m: dict) -> Path:
    src = case / "src"
    shutil.copytree(m["src"], src)
    os.symlink(src / "A_real" / "loop", src / "A_real" / "loop")
    os.symlink(case / "missing.png", src / "B_gan" / "broken.png")
    (src / "A_real" / ".hidden.png").write_bytes((src / "A_real" / "img_0000.png").read_bytes())
    (src / "B_gan" / "._img_0000.png").write_bytes(b"\0\5\26\7 AppleDouble")
    return src

  def prepare_links(case: Path, m: dict) -> Case:
    src = links(case, m)

    def after(case: Path) -> None:
      from freqforensics.data import reader

      rows = {r["path"]: r["reason"] for r in reader.read_report(case / "out")}
      assert rows == {
        "A_real/loop": "link loop",
        "B_gan/broken.png": "broken link",
        "A_real/.hidden.png": "hidden",
        "B_gan/._img_0000.png": "hidden",
      }

    return Case(
      prepare(case, m, f"--source_dir={src}", "--split=0.5,0.25,0.25"),
      "skipped 4 files",
      rc=0,
      outputs=("out",),
      after=after,
    )

  def classify_links(case: Path, m: dict) -> Case:
    run_copy(case, m)
    src = links(case, m)
    return Case(
      tool("classify") + [f"--workdir={case / 'run'}", f"--output={case / 'out.csv'}", str(src)],
      "ignored 4 files",
      rc=0,
      outputs=("out.csv",),
    )

  def classify_missing_workdir(case: Path, m: dict) -> Case:
    return Case(tool("classify") + [f"--workdir={case / 'nope'}", str(m["images"])], "does not exist")

  def classify_output_exists(case: Path, m: dict) -> Case:
    run_copy(case, m)
    (case / "out.csv").write_text("my results")
    return Case(classify(case, m), "exists")

  def pickled(case: Path) -> None:
    _params_with(case, lambda a: a.update({next(iter(a)): np.array([{"x": 1}], dtype=object)}))

  def stats_outside(case: Path) -> None:
    shutil.copy(case / "run" / "bundle" / "stats_dct_log.npz", case / "stats_elsewhere.npz")
    _edit_bundle(case, lambda i: i.update(stats="../../stats_elsewhere.npz"))

  def explain_existing(case: Path, m: dict) -> Case:
    run_copy(case, m)
    (case / "w.png").write_bytes((m["images"] / "a_00.png").read_bytes())
    return Case(
      tool("explain") + [f"--workdir={case / 'run'}", f"--out={case / 'w.png'}", "--overwrite"],
      "not written by freqforensics",
    )

  def explain_into_its_image(case: Path, m: dict) -> Case:
    run_copy(case, m)
    shutil.copy(m["images"] / "a_00.png", case / "x.png")
    return Case(
      tool("explain")
      + [f"--workdir={case / 'run'}", f"--image={case / 'x.png'}", f"--out={case / 'x.png'}", "--overwrite"],
      "also an input",
    )

  def explain_csv(case: Path, m: dict) -> Case:
    run_copy(case, m)
    return Case(tool("explain") + [f"--workdir={case / 'run'}", f"--out={case / 'w.csv'}"], "give a figure file")

  def spectra_inside(case: Path, m: dict) -> Case:
    src = case / "src"
    shutil.copytree(m["src"], src)
    return Case(
      tool("spectra")
      + [f"--out_dir={src / 'A_real' / 'spectra'}", "--size=16", str(src / "A_real"), str(src / "B_gan")],
      "overlap",
    )

  def spectra_small(case: Path, m: dict) -> Case:
    return Case(
      tool("spectra") + [f"--out_dir={case / 'out'}", "--size=64", str(m["src"] / "A_real")],
      "could be used at --size=64",
    )

  def perturb_inside(case: Path, m: dict) -> Case:
    src = case / "src"
    shutil.copytree(m["src"], src)
    return Case(tool("perturb") + [f"--source_dir={src}", f"--out_dir={src / 'A_real' / 'p'}"], "overlap")

  def robustness_split(case: Path, m: dict) -> Case:
    return Case(
      tool("robustness") + [f"--workdir={m['run']}", "--split=tset", f"--out_dir={case / 'out'}"], "--split=tset"
    )

  def robustness_source(case: Path, m: dict) -> Case:
    return Case(
      tool("robustness") + [f"--workdir={m['run']}", f"--source_dir={case / 'nope'}", f"--out_dir={case / 'out'}"],
      "set --source_dir",
    )

  def value(key: str, v: str, needle: str) -> Callable[[Path, dict], Case]:
    return lambda case, m: Case(main(case, m, f"--config.{key}={v}"), needle)

  def protocol_without_fakes(case: Path, m: dict) -> Case:
    run_copy(case, m)
    for cls, folder in (("0_real", "A_real"), ("1_fake", "B_gan")):
      shutil.copytree(m["src"] / folder, case / "gens" / "gan_a" / cls)
    shutil.copytree(m["src"] / "A_real", case / "gens" / "gan_b" / "0_real")
    argv = tool("main") + [
      "--config=configs/folder.py:tiny",
      f"--workdir={case / 'run'}",
      "--config.mode=eval",
      f"--config.eval.source_dir={case / 'gens'}",
      "--config.data.image_size=16",
      "--config.progress=false",
    ]
    return Case(argv, "generator gan_b has no fake images")

  return {
    "main: batch size 0": value("train.batch_size", "0", "train.batch_size=0 is out of range"),
    "main: batch size -4": value("train.batch_size", "-4", "train.batch_size=-4 is out of range"),
    "main: image size 0": value("data.image_size", "0", "data.image_size=0 is out of range"),
    "main: image size -16": value("data.image_size", "-16", "data.image_size=-16 is out of range"),
    "main: image size too small for cnn": lambda case, m: Case(
      main(case, m, "--config.model.name=cnn", "--config.data.image_size=2"), "at least 4x4"
    ),
    "main: epochs 0": value("train.epochs", "0", "train.epochs=0 is out of range"),
    "main: learning rate 0": value("train.learning_rate", "0", "train.learning_rate=0"),
    "main: unknown key": value("train.lerning_rate", "1", "unknown config key"),
    "main: threshold policy": value("eval.threshold", "often", "eval.threshold='often' is not a threshold policy"),
    "main: outlier rate 1": value("eval.outlier_fpr", "1.0", "eval.outlier_fpr=1.0 is out of range"),
    "main: real class not a class": value("data.real_class", "Z_real", "data.real_class='Z_real' is not a class"),
    "eval: protocol generator without fakes": protocol_without_fakes,
    "main: config syntax error": syntax_error,
    "main: config raises": raises,
    "main: config argument": lambda case, m: Case(
      main(case, m, config="configs/demo.py:bogus"), "unknown config argument 'bogus'"
    ),
    "main: work dir is a file": workdir_is_file,
    "main: damaged config.json": corrupt_config,
    "main: work dir of someone else": foreign_workdir,
    "main: --overwrite with a typo": overwrite_typo,
    "main: prepared_dir of another size": prepared_mismatch,
    "main: read-only work dir": read_only_workdir,
    "main: disk full while training": full_disk_training,
    "main: read-only data dir": read_only_data_dir,
    "spectra: read-only --out_dir": spectra_read_only,
    "eval: truncated bundle.json": bundle_case(
      lambda c: _truncate(c / "run" / "bundle" / "bundle.json"), "is damaged", command="eval"
    ),
    "prepare: missing source": prepare_missing,
    "prepare: fraction split shortfall": fraction_shortfall,
    "prepare: out_dir is a file": prepare_out_is_file,
    "prepare: read-only out_dir": prepare_read_only,
    "prepare: disk full": prepare_full_disk,
    "prepare: links, hidden and resource-fork files": prepare_links,
    "classify: links, hidden and resource-fork files": classify_links,
    "classify: missing work dir": classify_missing_workdir,
    "classify: output exists": classify_output_exists,
    "classify: truncated bundle.json": bundle_case(
      lambda c: _truncate(c / "run" / "bundle" / "bundle.json"), "is damaged"
    ),
    "classify: no model": bundle_case(lambda c: _edit_bundle(c, lambda i: i.pop("model")), "model None"),
    "classify: unknown model": bundle_case(lambda c: _edit_bundle(c, lambda i: i.update(model="vit")), "model 'vit'"),
    "classify: empty labels": bundle_case(
      lambda c: _edit_bundle(c, lambda i: i.update(label_names=[])), "label_names []"
    ),
    "classify: repeated labels": bundle_case(
      lambda c: _edit_bundle(c, lambda i: i.update(label_names=["A_real", "A_real"])), "repeats a name"
    ),
    "classify: labels and outputs differ": bundle_case(
      lambda c: _edit_bundle(c, lambda i: i.update(label_names=["A_real", "B_gan", "C_other"])), "outputs is 1"
    ),
    "classify: shapes differ from params.npz": bundle_case(
      lambda c: _edit_bundle(c, lambda i: i.update(input_shape=[8, 8, 3], feature_shape=[8, 8, 3], image_size=8)),
      "params.npz has",
    ),
    "classify: unknown crop": bundle_case(
      lambda c: _edit_bundle(c, lambda i: i.update(crop="fancy")), "crop rule 'fancy'"
    ),
    "classify: pickled array": bundle_case(pickled, "plain arrays"),
    "classify: stats outside the bundle": bundle_case(stats_outside, "inside the bundle folder"),
    "classify: truncated outliers.npz": bundle_case(
      lambda c: _truncate(c / "run" / "bundle" / "outliers.npz"), "outliers.npz cannot be used"
    ),
    "classify: calibration without temperature": bundle_case(
      lambda c: _edit_bundle(c, lambda i: i["calibration"].pop("temperature")), "needs a positive temperature"
    ),
    "explain: unknown model": bundle_case(
      lambda c: _edit_bundle(c, lambda i: i.update(model="vit")), "model 'vit'", command="explain"
    ),
    "explain: --out is a user's file": explain_existing,
    "explain: --out is its --image": explain_into_its_image,
    "explain: --out is not a figure": explain_csv,
    "spectra: --out_dir inside a data set": spectra_inside,
    "spectra: images smaller than --size": spectra_small,
    "perturb: --out_dir inside the source": perturb_inside,
    "robustness: unknown --split": robustness_split,
    "robustness: missing --source_dir": robustness_source,
  }


CASES = _cases()


def _snapshot(root: Path) -> dict[str, str]:
  out = {}
  for dirpath, dirnames, filenames in os.walk(root):
    for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
      p = Path(dirpath) / name
      rel = str(p.relative_to(root))
      if p.is_symlink():
        out[rel] = "link:" + os.readlink(p)
      elif name != LOCK:
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
  return out


@pytest.fixture(scope="module")
def materials(tmp_path_factory):
  """A class-folder source, a finished tiny run, a prepared dataset and a folder of images to classify."""
  from PIL import Image

  from freqforensics import train
  from freqforensics.data import preparation

  root = tmp_path_factory.mktemp("materials")
  src = write_fingerprinted_folders(root / "src", 20)
  c = tiny_folder_config(src, root / "data", split=(12, 4, 4), epochs=1)
  train.train_and_evaluate(c, root / "run")
  prepared = preparation.prepare_to(
    src, root / "prepared", preparation.PrepareOptions(16, 3, (12, 4, 4)), progress=False
  )
  images = root / "images"
  images.mkdir()
  for i, p in enumerate(sorted((src / "A_real").glob("*.png"))[:3]):
    Image.open(p).save(images / f"a_{i:02d}.png")
  return {"src": src, "run": root / "run", "prepared": prepared.path, "images": images}


@pytest.fixture(scope="module")
def results(materials, tmp_path_factory):
  """Runs every case (three at a time); name -> (case, folder, completed process, before, after)."""
  root = tmp_path_factory.mktemp("cases")
  shared_before = {k: _snapshot(Path(v)) for k, v in materials.items() if Path(v).is_dir()}
  built = {}
  for i, (name, build) in enumerate(CASES.items()):
    folder = root / f"case{i:02d}"
    folder.mkdir()
    built[name] = (build(folder, materials), folder)
  befores = {name: _snapshot(folder) for name, (_, folder) in built.items()}
  env = dict(
    os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2"
  )

  def run(name: str):
    case, folder = built[name]
    return subprocess.run(
      case.argv,
      cwd=ROOT,
      env=dict(env, FREQFORENSICS_DATA=str(folder / "data")),
      capture_output=True,
      text=True,
      timeout=600,
      preexec_fn=case.preexec,
    )

  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    done = dict(zip(built, pool.map(run, built)))
  out = {}
  for name, (case, folder) in built.items():
    out[name] = (case, folder, done[name], befores[name], _snapshot(folder))
  for mount in root.glob("case*/*"):
    with contextlib.suppress(Exception):
      subprocess.run(["umount", str(mount)], capture_output=True)
  out["shared"] = (shared_before, {k: _snapshot(Path(v)) for k, v in materials.items() if Path(v).is_dir()})
  return out


def test_no_case_changed_the_shared_materials(results):
  before, after = results["shared"]
  assert after == before


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, results):
  case, folder, r, before, after = results[name]
  output = r.stdout + r.stderr
  assert "Traceback" not in output, output[-3000:]
  assert r.returncode == case.rc, output[-3000:]
  errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  if case.rc == 2:
    assert len(errors) == 1, output[-3000:]
    assert case.expect in errors[0], errors[0]
  else:
    assert not errors and case.expect in output, output[-3000:]
  allowed = ("data",) + case.outputs  # the command's own outputs: its cache and what the case names
  changed = sorted(
    k
    for k in set(before) | set(after)
    if before.get(k) != after.get(k) and not any(k == a or k.startswith(a + "/") for a in allowed)
  )
  assert not changed, f"files outside the command's outputs changed: {changed[:10]}"
  if case.after is not None:
    case.after(folder)
