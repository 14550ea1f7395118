"""Every command in the README and docs/*.md names a real module, config, config argument, flag and config key.

Checked: the ```bash (sh, shell, console) blocks, and inline code spans that are a
`python -m freqforensics...` or `python launch/...` command (not lone `--config.x` spans: prose may
show a wrong key on purpose, as in "`--config.train.lerning_rate` is an error"). In a command:
- `python -m freqforensics.X` must be a module of the package that runs as a script;
- every `--flag` must be one that module accepts (absl `--helpfull` or argparse `--help` of the module
  itself, so flags defined anywhere count; `--noflag` for an absl boolean);
- `--config=configs/Y.py[:ARG]` must be a config file whose `get_config(ARG)` succeeds, and every
  `--config.a.b=...` a key of that config (of the base config when no file is named);
- a script run by path (`launch/X.py`, `launch/docker.sh`, `.ci/run`) must exist, with its flags (for
  Python) or subcommand (for docker.sh; `demo` / `run` arguments are checked as the main command's).
Placeholders (`DIR`, `/path/to/images`, `[--format=csv|jsonl]`) are fine: only names are checked.
The checker is tested on a small synthetic README, with each kind of mistake.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", re.S | re.M)
ANY_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")
INLINE_COMMAND = (
  r"(\S+=\S+ )*(srun )?python[\d.]* (-m freqforensics|launch/)"  # an inline span that is one of our commands
)
SEPARATORS = {"&&", "||", ";", "|"}
PREFIXES = {"srun", "mpirun", "exec", "time", "sudo", "env", "nohup"}


def commands(markdown: str) -> list[list[str]]:
  """The shell commands of a Markdown text, as token lists (continuations joined, comments dropped)."""
  texts = [m.group(1) for m in SHELL_BLOCK.finditer(markdown)]
  prose = ANY_BLOCK.sub("", markdown)
  texts += [span for span in INLINE.findall(prose) if re.match(INLINE_COMMAND, span)]
  out = []
  for text in texts:
    for line in re.sub(r"\\\n", " ", text).splitlines():
      line = line.strip()
      if line.startswith("$ "):  # console prompts
        line = line[2:]
      try:
        tokens = shlex.split(line, comments=True)
      except ValueError:  # an unbalanced quote: check the words anyway
        tokens = line.split()
      current: list[str] = []
      for token in tokens + [";"]:
        if token in SEPARATORS:
          if current:
            out.append(current)
          current = []
        else:
          current.append(token)
  return out


@functools.cache
def module_flags(target: tuple[str, ...]) -> frozenset[str]:
  """Flags the command line `python *target` accepts, read from its own help output."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  run = lambda flag: subprocess.run(
    [sys.executable, *target, flag], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
  )
  r = run("--helpfull")  # absl: every flag; argparse rejects it with its usage
  if "usage:" in r.stdout + r.stderr:
    r = run("--help")
  names = set()
  for no, name in re.findall(r"(?m)^\s+(?:-\w,? )?--(\[no\])?([A-Za-z0-9_][\w.-]*)", r.stdout + r.stderr):
    names.add(name)
    if no:
      names.add("no" + name)
  return frozenset(names)


def _module_file(name: str) -> Path | None:
  """The source file `python -m name` runs, if `name` is a module of this repository."""
  parts = name.split(".")
  for candidate in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__main__.py")):
    if candidate.is_file():
      return candidate
  return None


@functools.cache
def _load_config(spec: str) -> tuple[ml_collections.ConfigDict | None, str | None]:
  """`configs/Y.py[:ARG]` -> (config, None), or (None, the problem)."""
  path, _, arg = spec.partition(":")
  file = ROOT / path
  if not file.is_file() or file.suffix != ".py":
    return None, f"config file {path} does not exist"
  module_spec = importlib.util.spec_from_file_location(f"_readme_config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    return module.get_config(arg or None), None
  except (ValueError, KeyError) as e:
    return None, f"{spec}: {e}"


def _has_key(config: ml_collections.ConfigDict, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def _flag_name(token: str) -> str | None:
  token = token.strip("[]")
  if not token.startswith("--") or token == "--":
    return None
  return token[2:].split("=", 1)[0]


def check_flags(tokens: list[str], target: tuple[str, ...], what: str) -> list[str]:
  """Problems with the flags in `tokens` for the command line `python *target`."""
  problems = []
  known = module_flags(target)
  names = [n for n in map(_flag_name, tokens) if n]
  config = None
  config_spec = next((t.strip("[]").split("=", 1)[1] for t in tokens if t.strip("[]").startswith("--config=")), None)
  if config_spec is not None and "config" in known:
    config, problem = _load_config(config_spec)
    if problem:
      problems.append(f"{what}: {problem}")
  for name in names:
    if name.startswith("config.") and "config" in known:
      base = config if config is not None else _load_config("configs/demo.py")[0]
      if base is not None and not _has_key(base, name[len("config.") :]):
        problems.append(f"{what}: --{name} is not a config key")
    elif name not in known:
      problems.append(f"{what}: --{name} is not a flag of {' '.join(target)}")
  return problems


def _docker_subcommands() -> set[str]:
  text = (ROOT / "launch" / "docker.sh").read_text()
  body = text[text.index('case "$cmd" in') :]
  return {name for labels in re.findall(r"(?m)^  ([\w|-]+)\)", body) for name in labels.split("|")}


def check_command(tokens: list[str]) -> list[str]:
  """Problems with one command (an empty list when it names only things that exist)."""
  while tokens and (tokens[0] in PREFIXES or re.fullmatch(r"\w+=\S*", tokens[0])):
    tokens = tokens[1:]  # srun, env assignments, ...
  if not tokens:
    return []
  what = " ".join(tokens)[:100]
  head = tokens[0]
  if re.fullmatch(r"(.*/)?python[\d.]*", head):
    if len(tokens) > 2 and tokens[1] == "-m":
      module = tokens[2]
      if not module.startswith("freqforensics"):
        return []  # pytest, venv, pip: not ours
      if _module_file(module) is None:
        return [f"{what}: no module {module}"]
      if "__main__" not in _module_file(module).read_text():
        return [f"{what}: {module} is not a command (no __main__)"]
      return check_flags(tokens[3:], ("-m", module), what)
    script = next((t for t in tokens[1:] if not t.startswith("-")), None)
    if script and script.endswith(".py"):
      if not (ROOT / script).is_file():
        return [f"{what}: no script {script}"]
      return check_flags(tokens[2:], (str(ROOT / script),), what)
    return []
  if "/" in head and not head.startswith(("/", "$", "~")) and re.fullmatch(r"[\w./-]+", head):
    path = ROOT / head
    if not path.is_file():
      return [f"{what}: no script {head}"]
    if head.endswith("docker.sh") and len(tokens) > 1:
      sub = tokens[1]
      if sub not in _docker_subcommands():
        return [f"{what}: docker.sh has no subcommand {sub}"]
      if sub in ("demo", "run"):
        return check_flags(tokens[2:], ("-m", "freqforensics.main"), what)
  return []


def problems(markdown: str) -> tuple[list[str], int]:
  """(problems, number of commands checked) of a Markdown text."""
  found, checked = [], 0
  for tokens in commands(markdown):
    checked += 1
    found += check_command(tokens)
  return found, checked


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_in_the_readme_and_docs_exist(page):
  found, _ = problems(page.read_text())
  assert not found, "\n".join(found)


def _named(markdown: str) -> set[str]:
  return {t[2] for t in commands(markdown) if len(t) > 2 and t[1] == "-m"}


def test_the_checker_sees_the_commands():
  # The extractor sees the pages' commands (a regex that matched nothing would pass vacuously), and
  # the README itself holds the commands a user needs first: train, classify, prepare.
  readme = (ROOT / "README.md").read_text()
  assert len(commands(readme)) >= 15
  assert {"freqforensics.main", "freqforensics.tools.classify", "freqforensics.tools.prepare"} <= _named(readme)
  every = [(ROOT / "README.md").read_text()] + [p.read_text() for p in PAGES[1:]]
  named = set().union(*map(_named, every))
  assert sum(len(commands(text)) for text in every) >= 100
  assert {
    "freqforensics.main",
    "freqforensics.tools.classify",
    "freqforensics.tools.prepare",
    "freqforensics.tools.compare_spectra",
    "freqforensics.tools.explain",
    "freqforensics.tools.audit",
    "freqforensics.tools.perturb",
  } <= named, named


def test_readme_is_a_front_door():
  # At most 300 lines: tables, benchmark outputs and long explanations live in docs/ (issue 25).
  lines = (ROOT / "README.md").read_text().splitlines()
  assert len(lines) <= 300, f"README.md has {len(lines)} lines; move the detail to a page under docs/"
  assert "[docs/README.md](docs/README.md)" in "\n".join(lines)


def test_every_docs_page_is_in_the_index():
  index = (ROOT / "docs" / "README.md").read_text()
  linked = set(re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", index))
  pages = {p.name for p in PAGES[1:]} - {"README.md"}
  assert pages and pages <= linked, f"docs/README.md does not link {sorted(pages - linked)}"


GOOD = """
# A readme

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
python -m freqforensics.main --config=configs/demo.py:tiny --workdir=runs/x \\
    --config.train.learning_rate=1e-3 --config.data.split="(0.7, 0.1, 0.2)"   # a comment --not_a_flag
srun python -m freqforensics.main --config=configs/celeba_log2.py:pixel,tiny --workdir=/shared --nooverwrite
python -m freqforensics.tools.classify --workdir=runs/demo [--format=csv|jsonl] [--output=FILE|-] PATH [PATH ...]
python -m freqforensics.tools.synthetic --out_dir=DIR --num_per_class=10
python launch/bench_train.py --help
launch/docker.sh demo --config=configs/demo.py --workdir=/runs/demo
.ci/run
```

Inline: `python -m freqforensics.tools.compare_spectra --out_dir=x --num=5 DIR` and
`python -m freqforensics.main --config=configs/folder.py --config.distributed=True --config.process_id=0`;
`python -m pytest` is not ours, and `--config.train.lerning_rate=1` is prose about a wrong key.

```
python -m freqforensics.nothing   (not a shell block: output, not checked)
```
"""

MISTAKES = [
  ("python -m freqforensics.mian --config=configs/demo.py --workdir=x", "no module freqforensics.mian"),
  ("python -m freqforensics.main --config=configs/dmeo.py --workdir=x", "configs/dmeo.py does not exist"),
  ("python -m freqforensics.main --config=configs/demo.py:huge --workdir=x", "unknown config argument"),
  ("python -m freqforensics.main --config=configs/demo.py --wrokdir=x", "--wrokdir is not a flag"),
  (
    "python -m freqforensics.main --config=configs/demo.py --workdir=x --config.train.lerning_rate=1",
    "--config.train.lerning_rate is not a config key",
  ),
  ("python -m freqforensics.tools.classify --workdir=x --fromat=csv DIR", "--fromat is not a flag"),
  ("python -m freqforensics.tools.synthetic --out_dir=x --num=3", "--num is not a flag"),
  ("python -m freqforensics.defaults", "not a command"),
  ("python launch/bench_nothing.py", "no script launch/bench_nothing.py"),
  ("launch/docker.sh biuld", "no subcommand biuld"),
  ("launch/docker.sh demo --config=configs/demo.py --config.modle.name=cnn", "--config.modle.name is not a config"),
]


def test_checker_passes_correct_commands():
  found, checked = problems(GOOD)
  assert not found, "\n".join(found)
  assert checked == 12  # 3 + 7 in the block, 2 inline (`python -m pytest`, the lone key, the plain block: not checked)


@pytest.mark.parametrize("command,problem", MISTAKES, ids=[m[1][:30] for m in MISTAKES])
def test_checker_finds_each_mistake(command, problem):
  found, _ = problems(GOOD.replace("```bash\n", f"```bash\n{command}\n", 1))
  assert len(found) == 1 and problem in found[0], found
  inline, _ = problems(f"Run `{command}` now.")
  if command.startswith(("python -m freqforensics", "python launch/")):  # inline spans of commands are checked too
    assert len(inline) == 1 and problem in inline[0], inline


def test_links_in_the_readme_and_docs_point_to_files_that_exist():
  checked = 0
  for page in PAGES:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
      if target.startswith(("http://", "https://")):
        continue
      assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
      checked += 1
  assert checked >= 10  # the README links its figures and the pages under docs/


def _anchors(markdown: str):
  """GitHub's anchors of a page's headings (lower case, punctuation dropped, spaces to '-', '-1' for repeats)."""
  seen: dict[str, int] = {}
  for heading in re.findall(r"(?m)^#{1,6} (.+)$", ANY_BLOCK.sub("", markdown)):
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    seen[slug] = seen.get(slug, 0) + 1
    yield slug if seen[slug] == 1 else f"{slug}-{seen[slug] - 1}"


def test_anchors_in_links_name_headings():
  checked = 0
  for page in PAGES:
    for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text()):
      if target.startswith(("http://", "https://")):
        continue
      linked = page.parent / target if target else page
      assert anchor in set(_anchors(linked.read_text())), f"{page.name} links to {target}#{anchor}: no such heading"
      checked += 1
  assert checked >= 5
