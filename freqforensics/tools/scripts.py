"""The paper's experiments as code: run configs, collect their numbers, write tables and figures.

Each experiment script under `launch/` (`paper_*.py`, `robustness.py`, `compare_features.py`,
`baselines_table.py`) builds configs (the synthetic data set by default, any config file by
`--config`), runs them with `run`, and writes a markdown table, the same rows as JSON, and its
figures into `output_dir(...)`: a new folder per run, so a result is never overwritten, or with
`--resume=FOLDER` an earlier one, whose finished runs are read back and interrupted ones resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from freqforensics.errors import UserError
from freqforensics.files import atomic, output_paths, ownership


def results_dir(root: str | os.PathLike, name: str) -> Path:
  """`root/name/<timestamp>[_k]`, created new: two runs never share a folder (`output_paths.fresh_dir`)."""
  return output_paths.fresh_dir(Path(root).expanduser() / name)


def load_config(path: str, arg: str | None = None, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file (as `--config=path[:arg]` does), then `--config.KEY=VALUE` overrides.

  `path` may carry its own argument (`configs/celeba_log2.py:pixel`); with `arg` too they are
  joined by a comma (the paper configs take `pixel,tiny`). The overrides are parsed exactly as
  main parses them (ml_collections' config flags: types, tuples, unknown keys); a mistake is a
  one-line `UserError`.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top

  path, _, own_arg = path.partition(":")
  arg = ",".join(a for a in (own_arg, arg) if a) or None
  spec = importlib.util.spec_from_file_location(Path(path).stem, path)
  if spec is None or not Path(path).is_file():
    raise UserError(f"config file {path} does not exist")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # type: ignore[union-attr]
  try:
    config = module.get_config(arg)
  except ValueError as e:
    raise UserError(f"{path}: {e}") from e
  return override(config, overrides) if overrides else config


def override(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
  """`config` with `--config.KEY=VALUE` arguments applied, parsed as main's command line parses them."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from freqforensics.tools import cli  # pylint: disable=g-import-not-at-top

  argv = ["experiments", *overrides]
  values = flags.FlagValues()
  try:
    # The override flags are defined from `sys_argv` (sys.argv otherwise): one per --config.KEY.
    config_flags.DEFINE_config_dict("config", config, flag_values=values, lock_config=False, sys_argv=argv)
    values(argv)
  except (AttributeError, KeyError) as e:
    raise UserError(f"unknown config key in {' '.join(overrides)}: {cli.config_key_error(e)}") from e
  except (flags.Error, TypeError, ValueError) as e:
    raise UserError(f"bad config override in {' '.join(overrides)}: {e}") from e
  return values.config


def script_parser(doc: str) -> argparse.ArgumentParser:
  """A paper script's parser with the arguments `script_config` and `config_label` read:
  `--config` (a config file, `path[:arg]`), `--results` (the folder of results folders) and `--tiny`."""
  parser = argparse.ArgumentParser(
    description=doc.splitlines()[0],
    epilog="Any --config.KEY=VALUE argument overrides that key in every config the script runs, as on main's"
    " command line.",
  )
  parser.add_argument("--config", default="configs/demo.py", help="config file, path[:arg]")
  parser.add_argument("--results", default="runs/results", help="a new results folder is made under this one")
  parser.add_argument("--tiny", action="store_true", help="the smoke version: the config's :tiny form")
  parser.add_argument(
    "--resume",
    default="",
    metavar="FOLDER",
    help="an earlier results folder of this script to finish (instead of a new one under --results)",
  )
  return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
  """A script's own arguments plus `--config.KEY=VALUE` overrides (main's syntax), kept in `overrides`.

  Every config the script loads (`script_config`) gets them, so the paper scripts run on real data
  with the same overrides as training, e.g. `--config.data.prepared_dir=PREPARED`. The config is
  loaded once here, so a mistake in it is a `UserError` before the script writes anything.
  """
  args, rest = parser.parse_known_args(argv)
  unknown = [a for a in rest if not a.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognized arguments: {' '.join(unknown)} (config overrides are --config.KEY=VALUE)")
  args.overrides = rest
  script_config(args)  # a mistake in --config or an override: one line now, before the script makes a folder
  return args


def output_dir(args: argparse.Namespace, name: str) -> Path:
  """Where a script writes: `--resume=FOLDER` (an earlier results folder of script `name`), else a new
  `results_dir(--results, name)`. Its runs' work dirs sit at fixed places inside, so a resumed script
  reads back the runs that finished and resumes the one that was interrupted."""
  if not args.resume:
    return results_dir(args.results, name)
  out = Path(args.resume).expanduser()
  if not out.is_dir():
    raise UserError(f"--resume={args.resume} is not a folder: give a results folder of an earlier run")
  if out.resolve().parent.name != name:
    raise UserError(
      f"--resume={args.resume} is not a results folder of this script: give one like RESULTS/{name}/<time>"
    )
  return out


def script_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
  """A fresh config of a script's `--config` (`:tiny` with `--tiny`) with its overrides applied."""
  return load_config(args.config, "tiny" if args.tiny else None, args.overrides)


def config_spec(args: argparse.Namespace) -> str:
  """The `--config=` value of main's command line for a script's config: `path[:arg]`, `tiny` joined as
  `load_config` joins it (`configs/demo.py:tiny`, `configs/celeba_log2.py:pixel,tiny`)."""
  path, _, arg = args.config.partition(":")
  arg = ",".join(a for a in (arg, "tiny" if args.tiny else "") if a)
  return f"{path}:{arg}" if arg else path


def config_label(args: argparse.Namespace) -> str:
  """How a results file names the config it ran: file, argument and overrides."""
  return " ".join([config_spec(args), *args.overrides])


def script_main(main: Callable[[list[str]], Any], argv: list[str]) -> None:
  """Runs a script's `main(argv)`; a `UserError` ends it with one line and exit code 2, not a traceback."""
  from freqforensics.tools import cli  # pylint: disable=g-import-not-at-top

  try:
    main(argv)
  except UserError as e:
    cli.fail(str(e))


def launch(main: Callable[[list[str]], Any]) -> None:
  """How a launch script that trains starts: one CPU device per core before JAX starts, then `script_main`."""
  from freqforensics import host_devices  # pylint: disable=g-import-not-at-top

  host_devices.use_all_cores()
  script_main(main, sys.argv[1:])


RUN_SECONDS = "run_seconds.json"  # the wall time of the call that trained a run, read back when it is reused


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, Any]:
  """Trains and tests `config` in `workdir` (a finished run there is reused, an interrupted one resumed).

  Returns the test metrics plus `seconds` (wall time of the call that trained it, kept in
  `RUN_SECONDS`, so a resumed script's table still shows what each run cost; for a run reused from
  before that file existed, the time of this call) and `parameters` (trainable parameters of the model).
  """
  from freqforensics import bundle, models, train  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  workdir = Path(workdir)
  metrics_file, seconds_file = workdir / "test_metrics.json", workdir / RUN_SECONDS
  if (
    metrics_file.is_file()
    and (workdir / "config.json").is_file()
    and json.loads((workdir / "config.json").read_text()) == json.loads(config.to_json())
  ):
    metrics = json.loads(metrics_file.read_text())
    seconds = json.loads(seconds_file.read_text())["seconds"] if seconds_file.is_file() else None
  else:
    metrics = train.train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - start
    atomic.write_json(seconds_file, {"seconds": seconds})
  if seconds is None:  # reused, from before RUN_SECONDS was kept
    seconds = time.perf_counter() - start
  _, trainable = models.count_params(bundle.load(workdir / "bundle").model)
  return dict(metrics, seconds=seconds, parameters=trainable)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
  """A markdown table: `columns` are (key, header, format spec); missing values print as `-`."""
  lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    cells = []
    for key, _, fmt in columns:
      value = row.get(key)
      cells.append("-" if value is None else format(value, fmt))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_results(
  out: Path,
  name: str,
  rows: Sequence[dict[str, Any]],
  columns: Sequence[tuple[str, str, str]],
  *,
  title: str,
  notes: str = "",
  show: bool = False,
) -> Path:
  """Writes `name.md` (title, table, notes) and `name.json` (the rows) into `out`; returns the .md path.

  Args:
    out: the results folder; the files are recorded as its own (`ownership.OwnershipRecord`).
    name: the files' stem: `name.md` and `name.json`.
    rows: one dict a table row, keyed by the columns' keys; written whole to the JSON file.
    columns: (key, header, format spec) per table column, as `markdown_table` takes them.
    title: the markdown file's heading.
    notes: a paragraph under the table (config, split, machine, figures); none when empty.
    show: also print the markdown file, as every experiment script does at its end.
  """
  record = ownership.OwnershipRecord(out)  # the results folder's own files, as every folder the project fills
  record.write_text(f"{name}.json", json.dumps(list(rows), indent=2, default=float) + "\n")
  md = record.write_text(
    f"{name}.md", f"# {title}\n\n{markdown_table(rows, columns)}" + (f"\n{notes}\n" if notes else "")
  )
  if show:
    print(md.read_text())
  return md


# --- Benchmarks (`launch/bench_*.py`) ----------------------------------------------------------------


def median_seconds(fn: Callable[[], Any], reps: int, *, warmups: int = 1) -> float:
  """The median wall time of `reps` calls of `fn` (which must wait for its result), after `warmups` calls
  that pay for compilation and FFT plans."""
  for _ in range(warmups):
    fn()
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def bench_parser(doc: str, *, reps: int, sizes: str) -> argparse.ArgumentParser:
  """A transform benchmark's parser: `--reps` (timed runs, median) and `--sizes` (SIZE:BATCH pairs)."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--reps", type=int, default=reps)
  parser.add_argument("--sizes", default=sizes, help="comma-separated SIZE:BATCH pairs")
  return parser


def size_batches(sizes: str) -> list[tuple[int, int]]:
  """The (size, batch) pairs of a `--sizes` value such as `128:256,1024:8`."""
  return [tuple(map(int, pair.split(":"))) for pair in sizes.split(",")]


def devices() -> str:
  """JAX's devices, backend and version, as results notes and benchmark headers name the machine's share."""
  import jax  # pylint: disable=g-import-not-at-top  (after the caller's XLA flags)

  return f"{jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__}"


def machine_line(*versions: str) -> str:
  """A benchmark's first output line: the CPU, JAX's devices and backend, and the versions compared."""
  return ", ".join([f"# {platform.processor() or platform.machine()}", devices(), *versions])
