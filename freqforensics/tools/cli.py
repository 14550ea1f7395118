"""What every command line of freqforensics shares: one-line errors with exit code 2.

A mistake a user can fix (a bad flag, an unknown config key, a missing file) ends with a single
`error: ...` line on stderr naming the problem and the fix, and exit code 2, never a traceback.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import ml_collections
from absl import app, flags

from freqforensics import text
from freqforensics.errors import UserError


def fail(message: str) -> NoReturn:
  """Prints `error: <message>` on one line (names in it escaped, `text.for_terminal`) and exits with code 2."""
  print(f"error: {text.for_terminal(' '.join(message.split()))}", file=sys.stderr)
  sys.exit(UserError.exit_code)


def flags_only(argv: Sequence[str]) -> None:
  """Fails with one line when a command that takes only --flags is given other arguments."""
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])}: options take the form --name=value")


def define_copy_flags(f: dict[str, flags.FlagHolder]) -> None:
  """Defines the flags a command that writes a copy of a folder shares (perturb, process) into `f`:
  --num_threads, --overwrite and --progress, filed under the calling command's module as absl files
  its own flags, so that they show in its --help."""
  caller = sys._getframe(1).f_globals["__name__"]  # pylint: disable=protected-access
  module = sys.argv[0] if caller == "__main__" else caller  # absl's name for the main module
  f["num_threads"] = flags.DEFINE_integer(
    "num_threads", 0, "Threads; 0 = one per core.", lower_bound=0, module_name=module
  )
  f["overwrite"] = flags.DEFINE_bool(
    "overwrite", False, "Replace a copy of other settings in --out_dir.", module_name=module
  )
  f["progress"] = flags.DEFINE_bool("progress", True, "Progress bar on stderr.", module_name=module)


def copy_options(f: dict[str, flags.FlagHolder]) -> dict[str, Any]:
  """The keyword arguments of a folder copy (`folder_copy.copy_folder`'s callers) from a command's flags:
  `seed` and those of `define_copy_flags`."""
  return {name: f[name].value for name in ("seed", "num_threads", "overwrite", "progress")}


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that turns flag and config mistakes into one clear line and exit code 2.

  The config file is loaded (executed) while flags are parsed, so its mistakes land here too: a
  syntax error, an exception it raises, an unknown `:argument`.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    text = str(e)
    if "Traceback (most recent call last)" in text:  # config_flags flattens the config file's traceback
      raised = re.findall(r"(\w+(?:Error|Exception)): (.*?)(?= \(see --helpfull\)|$)", text)
      flag = text.split(":", 1)[0].removeprefix("flag ")
      detail = raised[-1][1] if raised else text.rsplit("Traceback", 1)[-1]
      fail(f"cannot load {flag}: {detail}")
    fail(f"{text} (see --helpfull)")
  except (AttributeError, KeyError) as e:
    fail(f"unknown config key: {config_key_error(e)}; check the spelling against the config file")
  except SyntaxError as e:
    fail(f"cannot load the config file {e.filename}: syntax error on line {e.lineno} ({e.msg}); fix the file")
  except (FileNotFoundError, ValueError, TypeError) as e:
    fail(f"bad --config: {e}")
  except Exception as e:  # pylint: disable=broad-except  (a config file may raise anything while it loads)
    fail(f"cannot load the --config file: it raised {type(e).__name__}: {e}")


def loaded_config(holder: flags.FlagHolder, example: str) -> ml_collections.ConfigDict | None:
  """The value of a `config_flags.DEFINE_config_file` flag, loaded now: a config file that fails to load
  (it is parsed lazily) ends in one line naming it, with `example` as the fix."""
  try:
    config = holder.value
    if config is not None:
      config.to_dict()  # a config that failed to load raises here, not when it was parsed
    return config
  except (OSError, ValueError, TypeError, AttributeError, KeyError) as e:
    detail = [line.strip() for line in str(e).splitlines() if line.strip()][-1]
    fail(
      f"cannot load --{holder.name}={flags.FLAGS[holder.name].config_filename}: {detail}; give a file such as {example}"
    )


def config_key_error(e: Exception) -> str:
  """The key and hint of ml_collections' unknown-key error, without the layers of quoting it carries.

  `str(e)` is like `'\\'lerning_rate\\'\\nDid you mean "learning_rate" instead of "lerning_rate"?'`.
  """
  text = str(e)
  with contextlib.suppress(ValueError, SyntaxError):
    text = str(ast.literal_eval(text))
  key, _, hint = text.replace("'", "").partition("\n")
  return " ".join(f"{key}{'; ' + hint if hint else ''}".split())


def _quiet_environment_faults(args: threading.ExceptHookArgs) -> None:
  """A library's worker thread (orbax writes checkpoints in one) that dies of a full disk re-raises in
  the main thread, which reports it in one line: its own traceback would only repeat it."""
  from freqforensics.files import faults  # pylint: disable=g-import-not-at-top

  if args.exc_value is None or faults.environment_fault(args.exc_value) is None:
    threading.__excepthook__(args)


def _closed_loop(exc: BaseException | None) -> bool:
  return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def _quiet_closed_loop(excepthook: Callable, unraisablehook: Callable) -> tuple[Callable, Callable]:
  """`sys.excepthook` and `sys.unraisablehook` without asyncio's "Event loop is closed": when a write
  fails (a full disk), orbax closes its event loop while tensorstore's C++ threads still call into it,
  and each such call prints this traceback. It says nothing the one-line error does not; every other
  exception is printed as before."""

  def quiet_excepthook(exc_type, exc, tb) -> None:
    if not _closed_loop(exc):
      excepthook(exc_type, exc, tb)

  def quiet_unraisablehook(unraisable) -> None:
    if not _closed_loop(unraisable.exc_value):
      unraisablehook(unraisable)

  return quiet_excepthook, quiet_unraisablehook


class _DropEnvironmentFaults(logging.Filter):
  """Drops a library's log record of an exception that is an environment fault (orbax logs the full disk of
  its writer thread with a traceback before the main thread re-raises it), for the same reason."""

  def filter(self, record: logging.LogRecord) -> bool:
    from freqforensics.files import faults  # pylint: disable=g-import-not-at-top

    exc = record.exc_info[1] if record.exc_info else None
    return exc is None or faults.environment_fault(exc) is None


def guarded(main: Callable[[Sequence[str]], None]) -> Callable[[Sequence[str]], None]:
  """`main` with the faults a user can fix turned into one line and exit code 2: a `UserError`, and
  an environment fault (disk full, read-only or missing folder, permissions: `OSError`)."""

  def run_main(argv: Sequence[str]) -> None:
    threading.excepthook = _quiet_environment_faults
    sys.excepthook, sys.unraisablehook = _quiet_closed_loop(sys.excepthook, sys.unraisablehook)
    logging.getLogger("absl").addFilter(_DropEnvironmentFaults())
    try:
      main(argv)
    except UserError as e:
      fail(str(e))
    except Exception as e:  # pylint: disable=broad-except  (re-raised unless it is an environment fault)
      from freqforensics.files import faults  # pylint: disable=g-import-not-at-top

      fault = faults.environment_fault(e)
      if fault is None:
        raise
      # Out now: library threads (orbax's writers) failing on the same disk would print tracebacks while
      # the interpreter shuts down. Every file the project writes is whole or absent, so nothing is lost.
      print(
        f"error: {text.for_terminal(' '.join(faults.describe_os_error(fault).split()))}", file=sys.stderr, flush=True
      )
      sys.stdout.flush()
      with contextlib.suppress(OSError):  # nothing a dying library thread prints after the one line
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
      os._exit(UserError.exit_code)

  return run_main


def run(
  main: Callable[[Sequence[str]], None], define_flags: Callable[[], None] | None = None, *, all_cores: bool = False
) -> None:
  """`absl.app.run(main)` with the one-line flag, config, user and environment errors.

  `define_flags` is called first (commands define their flags when they run, not on import); with
  `all_cores` XLA gets one CPU device per core before JAX starts (`host_devices`), for commands whose
  batches split over the device mesh.
  """
  if all_cores:
    from freqforensics import host_devices  # pylint: disable=g-import-not-at-top

    host_devices.use_all_cores()
  if define_flags is not None:
    define_flags()
  app.run(guarded(main), flags_parser=parse_flags)
