"""The one way the project owns a folder it fills (a work dir, a prepared dataset, the synthetic data,
a stand-in, a folder copy, an experiment's results): an `OwnershipRecord`, a hidden JSON-lines file in
that folder listing what the project wrote there, checked by `owned_path` whenever it is read back.

What a folder holds besides its record (`synthetic.json`, a dataset's `metadata.json`, a copy's
`manifest.jsonl`) says whether the work is finished and with which parameters; only the record says
what is ours. A folder written by a version before records is recognised by the marker that version
wrote (the `adopt` function of its record), and its files are adopted into the record.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from freqforensics.errors import UserError
from freqforensics.files import atomic, figure_marks

RECORD = ".freqforensics_outputs.jsonl"  # the ownership record of a folder
# What an earlier version (no record) wrote in a folder, recognised by its marker: relative path -> kind.
Adopt = Callable[[Path], dict[str, str]]


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

  Entries are named relative to the folder (or by an absolute path inside it); `name_of` turns any path,
  relative to the current folder or absolute, into such a name. They are registered *before* they are written, so a crash can leave a registered path that
  does not exist, never an unregistered file of ours; the `write_*` methods and `save_figure` do both
  in one call. An entry is a file, a whole tree (`add(name, tree=True)`), or a folder whose children
  named by a pattern are ours (`add_pattern("checkpoints", r"\\d+")`: the files a library names, such
  as checkpoint steps or TensorBoard events, and nothing else in that folder). `remove_owned` deletes
  exactly what is registered; everything else stays. Without a record file, `adopt(folder)` names what
  an earlier version wrote there (recognised by its marker); the first registration writes it down.
  """

  def __init__(self, folder: str | os.PathLike, name: str = RECORD, *, adopt: Adopt | None = None):
    self.folder = Path(folder)
    self.path = self.folder / name
    self._adopt = adopt
    self._lock = threading.Lock()  # the copy of a folder writes (and registers) from threads
    self._cache: tuple[int, int, dict[str, str]] | None = None  # (inode, bytes read, entries)

  def exists(self) -> bool:
    return self.path.is_file()

  def adopted(self) -> dict[str, str]:
    """What an earlier version wrote in the folder, when it has no record yet (else nothing)."""
    if self._adopt is None or self.exists():
      return {}
    return self._adopt(self.folder)

  def is_ours(self) -> bool:
    """Whether the folder is one the project filled: it has a record, or an earlier version's marker."""
    return self.exists() or bool(self.adopted())

  def entries(self) -> dict[str, str]:
    """Registered relative path -> `file`, `tree`, or the pattern of the folder's children that are ours
    (with no record file: what `adopt` recognises)."""
    known = self._known()
    return {self.path.name: "file", **(self.adopted() if known is None else known)}

  def _known(self) -> dict[str, str] | None:
    """The record's entries (None without a record file), read incrementally: a writer that registers file
    by file (a folder copy) reads each line once."""
    try:
      st = os.stat(self.path)
    except (FileNotFoundError, NotADirectoryError):  # no record (or the folder is a file)
      self._cache = None
      return None
    ino, start, known = self._cache if self._cache and self._cache[0] == st.st_ino else (st.st_ino, 0, {})
    if st.st_size < start:  # replaced meanwhile: read it again
      start, known = 0, {}
    if st.st_size > start:
      with open(self.path, "rb") as f:
        f.seek(start)
        tail = f.read()
      whole = tail[: tail.rfind(b"\n") + 1]  # a line still being written is read next time
      for line in whole.decode(errors="replace").splitlines():
        try:
          row = json.loads(line)
          known[str(row["path"])] = str(row["kind"])
        except (json.JSONDecodeError, KeyError, TypeError):
          continue  # a line cut by a crash: what it named was not written yet
      start += len(whole)
    self._cache = (ino, start, known)
    return known

  def name_of(self, path: str | os.PathLike) -> str:
    """The name in this folder of `path`, a path like any other: relative to the current folder, or absolute."""
    rel = os.path.normpath(os.path.relpath(os.path.abspath(path), os.path.abspath(self.folder)))
    if rel == ".." or rel.startswith(".." + os.sep):
      raise ValueError(f"{path} is outside {self.folder}")
    return rel

  def _rel(self, name: str | os.PathLike) -> str:
    """A name in the folder: relative to it, or an absolute path inside it (`name_of` for any other path)."""
    text = os.fspath(name)
    if os.path.isabs(text):
      return self.name_of(text)
    rel = os.path.normpath(text)
    if rel == ".." or rel.startswith(".." + os.sep):
      raise ValueError(f"{name} is outside {self.folder}")
    return rel

  def _append(self, rows: dict[str, str]) -> None:
    with self._lock:
      known = self._known()
      if known is None:  # the first registration writes down what an earlier version wrote
        rows, known = {**self.adopted(), **rows}, {}
      new = [json.dumps({"path": rel, "kind": kind}) + "\n" for rel, kind in rows.items() if known.get(rel) != kind]
      if new:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
          f.write("".join(new))
          f.flush()
          os.fsync(f.fileno())

  def add(self, *names: str | os.PathLike, tree: bool = False) -> None:
    """Registers files (or whole trees) by their names in the folder."""
    self._append({self._rel(n): "tree" if tree else "file" for n in names})

  def add_pattern(self, folder: str | os.PathLike, pattern: str) -> None:
    """Registers the children of the sub-folder `folder` whose names match `pattern` (a full-match regex)."""
    self._append({self._rel(folder): "pattern:" + pattern})

  def add_entries(self, entries: dict[str, str]) -> None:
    """Registers entries as `entries()` returns them (relative path -> kind)."""
    self._append({self._rel(rel): kind for rel, kind in entries.items()})

  # --- Register and write in one call: no writer can forget the first half.
  def _target(self, name: str | os.PathLike) -> Path:
    self.add(name)
    path = self.folder / self._rel(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

  def write_bytes(self, name: str | os.PathLike, data: bytes) -> Path:
    """Registers `name`, then writes it atomically (`atomic.write_bytes`)."""
    return atomic.write_bytes(self._target(name), data)

  def write_text(self, name: str | os.PathLike, text: str) -> Path:
    """Registers `name`, then writes `text` atomically."""
    return atomic.write_text(self._target(name), text)

  def write_json(self, name: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Registers `name`, then writes `obj` as JSON atomically."""
    return atomic.write_json(self._target(name), obj, indent=indent)

  def write_with(self, name: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Registers `name`, then runs a writer that takes a file name atomically (`atomic.write_with`)."""
    return atomic.write_with(self._target(name), write)

  def save_figure(self, name: str | os.PathLike, fig: Any, *, dpi: int = 100) -> Path:
    """Registers `name`, then saves `fig` there (`figure_marks.save_figure`)."""
    return figure_marks.save_figure(fig, self._target(name), dpi=dpi)

  # --- Reading back: what is ours, what is not, and deleting exactly what is.
  def owns(self, rel: str | os.PathLike, entries: dict[str, str] | None = None) -> bool:
    """Whether the name `rel` is registered, lies in a registered tree, or is (below) a child of a
    registered folder that its pattern names."""
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
