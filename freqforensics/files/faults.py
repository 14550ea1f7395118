"""Environment faults (disk full, read-only, permissions): found behind a library's exception, and told
in one line that names the path and the fix."""

from __future__ import annotations

import errno
import os
import re


def environment_fault(e: BaseException) -> OSError | None:
  """The `OSError` behind `e`, also when a library (array_record, orbax, tensorstore) reports a disk or
  permission fault as another exception that only names it in its message; None for anything else."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError):
      return e
    text = str(e)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG):
      at = text.find(os.strerror(code))
      if at >= 0:  # the path named after the fault, else the last one named before it
        paths = re.compile(r"(?:^|[\s\"'])(/[^\s\"';:]+)")
        after, before = paths.findall(text[at:]), paths.findall(text[:at])
        return OSError(code, os.strerror(code), (after[:1] or before[-1:] or [None])[0])
    e = e.__cause__ or e.__context__
  return None


def describe_os_error(e: OSError) -> str:
  """One line for an environment fault (disk full, read-only, permissions, a file where a folder
  should be), naming the path and the fix."""
  where = e.filename or "a file"
  if e.filename2:
    where = f"{e.filename} -> {e.filename2}"
  fixes = {
    errno.ENOSPC: f"no space left on the device while writing {where}: free disk space or write elsewhere"
    " (--workdir, --out_dir, data.data_dir / $FREQFORENSICS_DATA), then run the same command again",
    errno.EDQUOT: f"disk quota exceeded while writing {where}: free space or write elsewhere, then run again",
    errno.EFBIG: f"file size limit reached while writing {where}: raise the limit (ulimit -f) or write elsewhere",
    errno.EROFS: f"{where} is on a read-only file system: give a writable folder (--workdir, --out_dir,"
    " data.data_dir / $FREQFORENSICS_DATA)",
    errno.EACCES: f"permission denied for {where}: give a folder you can write (or a file you can read)",
    errno.EPERM: f"operation not permitted on {where}: give a folder you can write",
    errno.ENOTDIR: f"{where} goes through a file where a folder is needed: give a folder path",
    errno.EEXIST: f"{where} already exists: give a new path",
    errno.EISDIR: f"{where} is a folder where a file is needed: give a file path",
    errno.ENOENT: f"{where} does not exist: check the path",
    errno.ELOOP: f"{where} is a symbolic link loop: remove or fix the link",
    errno.ENAMETOOLONG: f"the name {where} is too long: use a shorter path",
  }
  return fixes.get(e.errno, f"{e.strerror or e} ({where}): check the path and the disk")
