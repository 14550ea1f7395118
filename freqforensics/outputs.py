"""What the project writes, and how: atomic files, fresh output folders, ownership records and locks.

Every file freqforensics writes appears whole or not at all (`write_bytes` and friends: a temporary
name in the same folder, then `os.replace`), so a kill -9 at any moment leaves either the old file
or the new one, never half of one. A folder the project fills (a run's work dir, a prepared
dataset) keeps an `OwnershipRecord`: the files it wrote, registered before they are written, so
`--overwrite` can delete exactly those and never a file a user put there. A `DirLock` keeps two
processes out of one folder. Figures carry a PNG text chunk (`FIGURE_METADATA`) that says who made
them, so a command may replace its own figure with `--overwrite` but never a user's image.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from freqforensics.errors import UserError

OWNER = "freqforensics"
# Passed to matplotlib's `savefig(metadata=...)`: a PNG text chunk that marks the figure as ours.
FIGURE_METADATA: dict[str, str] = {"Software": OWNER}


# Temporary files: hidden, beside their target, and of bounded length whatever the target's name (a
# 250-character file name is legal, 11 more characters are not), named by a hash of the target's name and
# the writer's process id, so a later run knows those a kill -9 left behind (`remove_stale_temps`).
_TMP_PREFIX = f".{OWNER}-tmp-"
_TMP_NAME = re.compile(re.escape(_TMP_PREFIX) + r"[0-9a-f]{16}-([1-9]\d*)(\.[A-Za-z0-9]{1,16})?")


def _tmp_name(path: Path, suffix: str = "") -> Path:
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
  path = Path(path)
  tmp = _tmp_name(path)
  try:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


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
  tmp = _tmp_name(path, path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,16}", path.suffix) else "")
  try:
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 100) -> Path:
  """`fig.savefig` atomically; a PNG carries `FIGURE_METADATA` (so `--overwrite` may replace it later)."""
  path = Path(path)
  metadata = FIGURE_METADATA if path.suffix.lower() == ".png" else None
  return write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, metadata=metadata))


def read_json(path: str | os.PathLike, what: str) -> Any:
  """JSON of `path`; a file that is not valid JSON is a one-line `UserError` naming `what` it is."""
  path = Path(path)
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(
      f"{path} ({what}) is damaged and cannot be read ({e}): restore it, or remove it and start again"
    ) from e


def fresh_dir(parent: str | os.PathLike, prefix: str = "") -> Path:
  """A new folder `parent/[<prefix>_]<YYYYmmdd-HHMMSS>[_k]`, created here: two runs never share an output folder.

  The one way the project makes a timestamped output folder (spectra runs, experiment results).
  """
  parent = Path(parent).expanduser()
  if parent.exists() and not parent.is_dir():
    raise UserError(f"{parent} is a file: give a folder")
  parent.mkdir(parents=True, exist_ok=True)
  base = (f"{prefix}_" if prefix else "") + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  for k in range(1, 1000):
    out = parent / (base if k == 1 else f"{base}_{k}")
    try:
      out.mkdir()  # atomic: a folder made meanwhile by another run is never shared
      return out
    except FileExistsError:
      continue
  raise UserError(f"no free output folder like {parent / base}: give another output folder")


def is_our_figure(path: str | os.PathLike) -> bool:
  """Whether `path` is a PNG that freqforensics wrote (it carries `FIGURE_METADATA`)."""
  from freqforensics.data import images  # pylint: disable=g-import-not-at-top  (Pillow: only when needed)

  try:
    header = images.read_header(path)  # the one reader: a user's decompression bomb there is not ours either
  except images.ImageDecodeError:
    return False
  return header.format == "PNG" and header.info.get("Software") == OWNER


def check_new_output(
  path: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = (), option: str = "--out"
) -> Path:
  """Refuses an output file that exists unless `overwrite` and it is a figure freqforensics wrote.

  An output that is one of the command's `inputs` is refused even with `overwrite`; its folder must
  exist. Returns the path.
  """
  path = Path(path).expanduser()
  for given in inputs:
    if Path(given).expanduser().resolve() == path.resolve():
      raise UserError(f"{option}={path} is also an input of this command: give another output file")
  if path.is_dir():
    raise UserError(f"{option}={path} is a folder: give a file name")
  if not path.parent.is_dir():
    raise UserError(f"the folder of {option}={path} does not exist: create it or give another path")
  if path.exists():
    if not overwrite:
      raise UserError(f"{path} exists: give another {option}, or --overwrite to replace a figure this command wrote")
    if not is_our_figure(path):
      raise UserError(
        f"{path} exists and was not written by freqforensics: it is never replaced, even with"
        f" --overwrite; give another {option}"
      )
  return path


def check_separate(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], option: str = "--out_dir") -> None:
  """Refuses an output folder inside an input folder or holding one: outputs would become inputs."""
  out_r = Path(out).expanduser().resolve()
  for given in inputs:
    src = Path(given).expanduser().resolve()
    if src.is_dir() and (out_r == src or src in out_r.parents or out_r in src.parents):
      raise UserError(
        f"{option}={out} and the input folder {given} overlap: the next run would read the outputs"
        f" as images; write to a separate folder"
      )


def owned_path(folder: str | os.PathLike, entry: Any, listed_in: str | os.PathLike, kind: str = "file") -> Path:
  """`folder / entry`, for an entry of an ownership record or a copy's manifest read back from disk, once it
  is known to be safe to delete; anything else is one `UserError` line.

  The one rule for every path the project deletes because a file of its own names it: such files can be
  edited, or come with a folder received from someone else. So the entry must be a relative path without
  `..`, whose folder (after symbolic links) is `folder` or below it, and which itself (after links) lies
  below `folder`, never `folder` itself; `kind` is `file`, `tree` or `pattern:<regex>`. Callers check every
  entry before they delete any.
  """
  folder = Path(folder)

  def refuse(why: str) -> UserError:
    return UserError(
      f"{listed_in} names {entry!r} ({kind}), {why}: that line was not written by freqforensics (the file was"
      f" edited or comes from elsewhere), so nothing was deleted; remove the line, or use another folder"
    )

  if kind not in ("file", "tree") and not kind.startswith("pattern:"):
    raise refuse("an unknown kind of entry")
  if kind.startswith("pattern:"):
    try:
      re.compile(kind[len("pattern:") :])
    except re.error:
      raise refuse("with a pattern that is not a regular expression") from None
  if not isinstance(entry, str) or not entry or "\0" in entry or os.path.isabs(entry):
    raise refuse(f"which is not a path relative to {folder}")
  if ".." in Path(entry).parts or os.path.normpath(entry) == ".":
    raise refuse(f"which is not a path inside {folder}")
  path = folder / entry
  try:
    base, parent, target = folder.resolve(), path.parent.resolve(), path.resolve()
  except (OSError, RuntimeError, ValueError):  # a link loop
    raise refuse("which cannot be resolved") from None
  if not (parent == base or base in parent.parents) or base not in target.parents:
    raise refuse(f"which resolves to {target}, not a path inside {folder.resolve()}")
  return path


class OwnershipRecord:
  """The files the project wrote in a folder, kept in a hidden JSON-lines file in that folder.

  Paths are registered *before* they are written, so a crash can leave a registered path that does
  not exist, never an unregistered file of ours. An entry is a file, a whole tree
  (`add(name, tree=True)`), or a folder whose children named by a pattern are ours
  (`add_pattern("checkpoints", r"\\d+")`: the files a library names, such as checkpoint steps or
  TensorBoard events, and nothing else in that folder). `remove_owned` deletes exactly what is
  registered; everything else stays.
  """

  def __init__(self, folder: str | os.PathLike, name: str):
    self.folder = Path(folder)
    self.path = self.folder / name

  def exists(self) -> bool:
    return self.path.is_file()

  def entries(self) -> dict[str, str]:
    """Registered relative path -> `file`, `tree`, or the pattern of the folder's children that are ours."""
    out: dict[str, str] = {self.path.name: "file"}
    if not self.path.is_file():
      return out
    for line in self.path.read_text(errors="replace").splitlines():
      try:
        row = json.loads(line)
        out[str(row["path"])] = str(row["kind"])
      except (json.JSONDecodeError, KeyError, TypeError):
        continue  # a line cut by a crash: what it named was not written yet
    return out

  def _rel(self, name: str | os.PathLike) -> str:
    text = os.fspath(name)
    rel = os.path.normpath(os.path.relpath(text, self.folder) if os.path.isabs(text) else text)
    if rel == ".." or rel.startswith(".." + os.sep):
      raise ValueError(f"{name} is outside {self.folder}")
    return rel

  def _append(self, rows: dict[str, str]) -> None:
    known = self.entries()
    new = [json.dumps({"path": rel, "kind": kind}) + "\n" for rel, kind in rows.items() if known.get(rel) != kind]
    if new:
      self.folder.mkdir(parents=True, exist_ok=True)
      with open(self.path, "a") as f:
        f.write("".join(new))
        f.flush()
        os.fsync(f.fileno())

  def add(self, *names: str | os.PathLike, tree: bool = False) -> None:
    """Registers files (or whole trees) by path relative to the folder, or absolute inside it."""
    self._append({self._rel(n): "tree" if tree else "file" for n in names})

  def add_pattern(self, folder: str | os.PathLike, pattern: str) -> None:
    """Registers the children of `folder` whose names match `pattern` (a full-match regex) as ours."""
    self._append({self._rel(folder): "pattern:" + pattern})

  def add_entries(self, entries: dict[str, str]) -> None:
    """Registers entries as `entries()` returns them (relative path -> kind)."""
    self._append({self._rel(rel): kind for rel, kind in entries.items()})

  def owns(self, rel: str | os.PathLike, entries: dict[str, str] | None = None) -> bool:
    """Whether the relative path `rel` is registered, lies in a registered tree, or is (below) a child
    of a registered folder that its pattern names."""
    entries = self.entries() if entries is None else entries
    parts = Path(self._rel(rel)).parts
    for k in range(1, len(parts) + 1):
      kind = entries.get(os.path.join(*parts[:k]))
      if kind is None:
        continue
      if kind == "tree" or (kind == "file" and k == len(parts)):
        return True
      if kind.startswith("pattern:") and k < len(parts) and re.fullmatch(kind[len("pattern:") :], parts[k]):
        return True
    return False

  def foreign(self, within: Iterable[str] = (), entries: dict[str, str] | None = None) -> list[str]:
    """Files (and links) below the folder, or below its sub-folders `within`, that the project did not write
    (by `entries`, default the record's)."""
    entries = self.entries() if entries is None else entries
    roots = [self.folder / w for w in within] if within else [self.folder]
    out = []
    for root in roots:
      if root.is_symlink() or root.is_file():
        rel = os.path.relpath(root, self.folder)
        if not self.owns(rel, entries):
          out.append(rel)
        continue
      for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, self.folder)
        if rel_dir != "." and self.owns(rel_dir, entries):
          dirnames[:] = []  # an owned folder: everything below it is ours
          continue
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
          rel = os.path.normpath(os.path.join(rel_dir, name))
          if not self.owns(rel, entries):
            out.append(rel)
    return sorted(out)

  def remove_owned(self, keep: Iterable[str] = ()) -> None:
    """Deletes what is registered (except `keep`), then the registered folders left empty, then the
    record itself (unless kept). Nothing unregistered is touched, and nothing at all when an entry does
    not lie inside the folder (`owned_path`: one `UserError`)."""
    keep = {os.path.normpath(k) for k in keep}
    entries = self.entries()
    for rel, kind in entries.items():  # every entry, before anything is deleted
      if rel != self.path.name:
        owned_path(self.folder, rel, self.path, kind)
    for rel, kind in sorted(entries.items(), key=lambda kv: -len(Path(kv[0]).parts)):
      if rel in keep or rel == self.path.name:
        continue
      p = self.folder / rel
      if kind.startswith("pattern:"):
        if p.is_dir() and not p.is_symlink():
          for child in p.iterdir():
            if re.fullmatch(kind[len("pattern:") :], child.name):
              _remove(child)
        with contextlib.suppress(OSError):
          p.rmdir()  # only when nothing foreign is left in it
      elif kind == "tree" or p.is_file() or p.is_symlink():
        _remove(p)
    for rel in sorted(
      {str(Path(r).parent) for r in entries if str(Path(r).parent) != "."}, key=lambda r: -len(Path(r).parts)
    ):
      with contextlib.suppress(OSError):
        (self.folder / rel).rmdir()  # folders our files were in, once empty
    if self.path.name not in keep:
      self.path.unlink(missing_ok=True)


def _remove(p: Path) -> None:
  if p.is_dir() and not p.is_symlink():
    shutil.rmtree(p)
  elif p.exists() or p.is_symlink():
    p.unlink()


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
