"""What every command line of freqforensics shares: one-line errors with exit code 2.

A mistake a user can fix (a bad flag, an unknown config key, a missing file) ends with a single
`error: ...` line on stderr naming the problem and the fix, and exit code 2, never a traceback.
"""

from __future__ import annotations

import ast
import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from absl import app, flags

from freqforensics.errors import UserError


def fail(message: str) -> NoReturn:
  """Prints `error: <message>` on one line and exits with code 2."""
  print(f"error: {' '.join(message.split())}", file=sys.stderr)
  sys.exit(UserError.exit_code)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that turns flag and config mistakes into one clear line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{e} (see --helpfull)")
  except (AttributeError, KeyError) as e:
    fail(f"unknown config key: {config_key_error(e)}; check the spelling against the config file")
  except (FileNotFoundError, ValueError, TypeError) as e:
    fail(f"bad --config: {e}")


def config_key_error(e: Exception) -> str:
  """The key and hint of ml_collections' unknown-key error, without the layers of quoting it carries.

  `str(e)` is like `'\\'lerning_rate\\'\\nDid you mean "learning_rate" instead of "lerning_rate"?'`.
  """
  text = str(e)
  with contextlib.suppress(ValueError, SyntaxError):
    text = str(ast.literal_eval(text))
  key, _, hint = text.replace("'", "").partition("\n")
  return " ".join(f"{key}{'; ' + hint if hint else ''}".split())


def run(main: Callable[[Sequence[str]], None]) -> None:
  """`absl.app.run(main)` with the one-line flag errors."""
  app.run(main, flags_parser=parse_flags)
