"""`DirLock`: one process at a time in a folder (a work dir, a prepared dataset)."""

from __future__ import annotations

import datetime
import errno
import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from freqforensics.errors import UserError


def _duration(seconds: float) -> str:
  return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:g} s"


class DirLock:
  """An exclusive lock on a folder (`fcntl.flock` on a hidden file in it), held until `release()`.

  The kernel drops it when the process ends, kill -9 included, so a crashed run never blocks the
  next one. A second process is refused with one line naming the process that holds the lock, or,
  with `acquire(wait=seconds)`, waits for it (saying so once on stderr) and is refused only when
  the wait runs out.
  """

  def __init__(self, folder: str | os.PathLike, name: str = ".freqforensics.lock"):
    self.path = Path(folder) / name
    self._fd: int | None = None

  def _holder(self) -> str:
    try:
      return self.path.read_text().strip() or "another process"
    except OSError:
      return "another process"

  def acquire(self, what: str, *, wait: float = 0.0) -> DirLock:
    """Takes the lock; `what` names the option that chose the folder in the refusal, `wait` is how many
    seconds to wait for another process's lock first (0: refuse at once)."""
    deadline, said = time.monotonic() + wait, False
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
          raise
        holder = self._holder()
        if time.monotonic() >= deadline:
          waited = f" (waited {_duration(wait)})" if wait else ""
          raise UserError(
            f"{self.path.parent} is in use by {holder}{waited}: wait for it to finish, or use another {what}"
          ) from None
        if not said:
          print(
            f"waiting for {self.path.parent}: in use by {holder} (up to {_duration(wait)})", file=sys.stderr, flush=True
          )
          said = True
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        continue
      try:  # the holder may have removed the lock file as it ended: then the lock is on a file no one sees
        same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    os.ftruncate(fd, 0)
    os.write(
      fd,
      f"process {os.getpid()} on {socket.gethostname()} (since"
      f" {datetime.datetime.now().isoformat(timespec='seconds')})\n".encode(),
    )
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> DirLock:
    return self

  def __exit__(self, *exc) -> None:
    self.release()
