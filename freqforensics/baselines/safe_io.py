"""scikit-learn estimators saved with skops: loading never runs code from the file.

A pickle can execute anything when it is loaded. skops stores an estimator as a zip of JSON and
.npy arrays and rebuilds only types on its trusted list (scikit-learn estimators, numpy arrays and
dtypes); a file naming any other type is refused before anything is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io as sio

from freqforensics.errors import UserError
from freqforensics.files import atomic


def save(estimator: Any, path: Path) -> None:
  """Writes `estimator` to `path` (`.skops`), atomically."""
  atomic.write_with(path, lambda tmp: sio.dump(estimator, tmp))


def load(path: Path) -> Any:
  """Loads an estimator saved by `save`; refuses a file holding types outside skops' trusted set."""
  if not path.is_file():
    raise UserError(f"{path} does not exist: run the train command first")
  try:
    untrusted = sio.get_untrusted_types(file=path)
  except Exception as e:  # a truncated or foreign file: zipfile/JSON errors of many kinds
    raise UserError(f"{path} is not a skops file ({type(e).__name__}: {e}): run the train command again") from e
  if untrusted:
    raise UserError(
      f"{path} names types outside the trusted set ({', '.join(untrusted)}); it was not loaded:"
      " use a model written by the train command"
    )
  return sio.load(path)
