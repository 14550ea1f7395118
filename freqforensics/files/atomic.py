"""Files that appear whole or not at all: a temporary name beside the target, then `os.replace`.

A kill -9 at any moment leaves the old file or the new one, never half of one; the temporary files a
killed writer left are known by their names (`is_temp_name`, `remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freqforensics.errors import UserError

OWNER = "freqforensics"

# Temporary files: hidden, beside their target, and of bounded length whatever the target's name (a
# 250-character file name is legal, 11 more characters are not), named by a hash of the target's name and
# the writer's process id, so a later run knows those a kill -9 left behind (`remove_stale_temps`).
_TMP_PREFIX = f".{OWNER}-tmp-"
_TMP_NAME = re.compile(re.escape(_TMP_PREFIX) + r"[0-9a-f]{16}-([1-9]\d*)(\.[A-Za-z0-9]{1,16})?")


def temp_name(path: Path, suffix: str = "") -> Path:
  """The temporary name of this process for `path` (for a writer of its own, such as array_record's)."""
  digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]
  return path.with_name(f"{_TMP_PREFIX}{digest}-{os.getpid()}{suffix}")


def is_temp_name(name: str) -> bool:
  """Whether `name` is a temporary file name of `write_bytes` / `write_with` (of any process)."""
  return _TMP_NAME.fullmatch(name) is not None


def _running(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # another user's process
  return True


def remove_stale_temps(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
  """Deletes the temporary files of our naming that a killed writer left in `folder` (and below it):
  those of a process that no longer runs, and this process's own (so call it before this process writes
  there). Nothing else is touched, links are not followed. Returns what was deleted."""
  removed = []
  for dirpath, _, filenames in os.walk(folder):
    for name in filenames:
      m = _TMP_NAME.fullmatch(name)
      if m and (int(m.group(1)) == os.getpid() or not _running(int(m.group(1)))):
        p = Path(dirpath) / name
        with contextlib.suppress(FileNotFoundError):
          p.unlink()
          removed.append(p)
    if not recursive:
      break
  return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
  """Writes `data` to `path` atomically: a reader (or a crash) sees the old file or the new one."""

  def write(tmp: Path) -> None:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())

  return write_with(path, write)


def write_text(path: str | os.PathLike, text: str) -> Path:
  """`write_bytes` of UTF-8 text."""
  return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
  """`write_bytes` of `obj` as JSON (indented, with a final newline)."""
  return write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
  """Atomic output of a writer that takes a file name (`np.savez`, `fig.savefig`): it writes a
  temporary name with the same suffix, which is then renamed into place."""
  path = Path(path)
  tmp = temp_name(path, path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,16}", path.suffix) else "")
  try:
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


def read_json(path: str | os.PathLike, what: str) -> Any:
  """JSON of `path`; a file that is not valid JSON is a one-line `UserError` naming `what` it is."""
  path = Path(path)
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(
      f"{path} ({what}) is damaged and cannot be read ({e}): restore it, or remove it and start again"
    ) from e
