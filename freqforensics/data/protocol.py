"""The cross-generator test layout every peer uses: `ROOT/<generator>/[<subset>/]{0_real,1_fake}/`.

`read_layout` finds it (with ForenSynths' object-class subsets, or a bare `ROOT/{0_real,1_fake}` named
after ROOT) and lists every generator's real and fake images by the one listing rule
(`images.list_files`), as the two-class folders preparation takes. Every image below a generator is
counted once or the layout is refused, never dropped: a folder holding `0_real`/`1_fake` holds nothing
else, and links to folders are not followed at any level.
"""

from __future__ import annotations

import os
from pathlib import Path

from freqforensics.data import images
from freqforensics.errors import UserError

REAL, FAKE = "0_real", "1_fake"
LAYOUT = f"ROOT/<generator>/[<subset>/]{{{REAL},{FAKE}}}/"


def _scan(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
  """(folders, links to folders, image files) directly in `folder`, sorted; hidden names left out (the listing rule)."""
  dirs, links, files = [], [], []
  try:
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
  except OSError as e:
    raise UserError(f"{folder} cannot be read ({e.strerror or e}): give a readable folder") from None
  for entry in entries:
    if entry.name.startswith("."):
      continue
    path = Path(entry.path)
    if entry.is_dir(follow_symlinks=False):
      dirs.append(path)
    elif entry.is_symlink() and path.is_dir():
      links.append(path)
    elif os.path.splitext(entry.name)[1].lower() in images.IMAGE_EXTENSIONS:
      files.append(path)
  return dirs, links, files


def _has_pair(folder: Path) -> bool:
  """Whether `folder` holds a real folder (not a link) `0_real` or `1_fake`."""
  return any((folder / c).is_dir() and not (folder / c).is_symlink() for c in (REAL, FAKE))


def _children(folder: Path) -> list[Path]:
  """The folders in `folder` (not links to folders: the listing rule does not follow them)."""
  return _scan(folder)[0]


def is_layout(root: str | os.PathLike) -> bool:
  """Whether `root` is in the protocol's layout: it, one of its folders, or a folder of those holds `0_real`/`1_fake`."""
  root = Path(root).expanduser()
  if not root.is_dir():
    return False
  if _has_pair(root):
    return True
  return any(_has_pair(g) or any(_has_pair(s) for s in _children(g)) for g in _children(root))


def _refuse_links(links: list[Path]) -> None:
  if links:
    raise UserError(
      f"{links[0]} is a link to a folder: the cross-generator layout follows no links to folders (the listing"
      " rule does not), so its images would be left out or counted twice; put the folder itself there, or"
      " remove the link"
    )


def _pair_folder(folder: Path) -> None:
  """Refuses a folder holding `0_real`/`1_fake` that holds other folders, folder links or images too:
  those would be left out without a word."""
  dirs, links, files = _scan(folder)
  _refuse_links(links)
  for cls in (REAL, FAKE):
    if (folder / cls).is_symlink():
      _refuse_links([folder / cls])
  others = [d.name for d in dirs if d.name not in (REAL, FAKE)]
  if others:
    raise UserError(
      f"{folder} holds {REAL}/ or {FAKE}/ and also the folders {', '.join(others)}, which would be left out:"
      f" in the layout {LAYOUT} a folder with {REAL}/ and {FAKE}/ holds nothing else; move those folders (or"
      f" {REAL}/ and {FAKE}/) into a generator or subset folder of their own"
    )
  if files:
    raise UserError(
      f"{folder} holds {REAL}/ or {FAKE}/ and also images beside them ({files[0].name}, ...), which belong to"
      f" neither: move them into {REAL}/ or {FAKE}/; for class folders, rename the sub-folder {REAL}/ or"
      f" {FAKE}/ (then {folder.parent} is no cross-generator layout)"
    )


def _folders_of(generator: Path) -> list[Path]:
  """The folders of one generator that hold `0_real`/`1_fake`: itself, or its subsets (each checked)."""
  if _has_pair(generator):
    _pair_folder(generator)
    return [generator]
  subsets, links, files = _scan(generator)
  _refuse_links(links)
  if not any(_has_pair(s) for s in subsets):
    return []
  if files:
    raise UserError(
      f"{generator} holds subset folders and also images beside them ({files[0].name}, ...), which belong to"
      f" no subset: move them into a subset's {REAL}/ or {FAKE}/"
    )
  for s in subsets:
    if not _has_pair(s):
      raise UserError(
        f"{s} has neither {REAL}/ nor {FAKE}/ beside the subsets of {generator} that do: give every subset"
        f" folder that layout, or move the folder out"
      )
    _pair_folder(s)
  return subsets


def read_layout(root: str | os.PathLike, option: str = "--config.eval.source_dir") -> dict[str, images.ClassFolders]:
  """Generator name -> its images as the class folders `0_real` / `1_fake` (all subsets together), sorted by name.

  Raises `UserError` for a root that is not in the layout, a generator folder without the layout, a
  generator whose real or fake images are missing, and anything that would leave images out or count
  them twice (see the module docstring).
  """
  root = Path(root).expanduser()
  if not root.is_dir():
    raise UserError(f"{option}={root} is not a folder: give {LAYOUT}")
  if _has_pair(root):
    _pair_folder(root)
    generators = {root.name: [root]}
  else:
    folders, links, _ = _scan(root)  # images beside the generator folders belong to none (as beside class folders)
    _refuse_links(links)
    generators = {g.name: _folders_of(g) for g in folders}
  if not generators or not any(generators.values()):
    raise UserError(f"{option}={root} holds no generator folders with {REAL}/ and {FAKE}/: use the layout {LAYOUT}")
  out: dict[str, images.ClassFolders] = {}
  for name, folders in generators.items():
    if not folders:
      raise UserError(
        f"{root / name} has neither {REAL}/ and {FAKE}/ nor subset folders holding them: give every"
        f" generator of {root} that layout, or move the folder out"
      )
    files: dict[str, list[Path]] = {REAL: [], FAKE: []}
    skipped: list[tuple[Path, str]] = []
    for folder in folders:
      for cls in (REAL, FAKE):
        if (folder / cls).is_dir():
          listing = images.list_files(folder / cls)
          files[cls] += listing.files
          skipped += listing.skipped
    for cls in (REAL, FAKE):
      if not files[cls]:
        where = ", ".join(str(f / cls) for f in folders)
        raise UserError(
          f"generator {name} has no {'real' if cls == REAL else 'fake'} images ({where}): each generator needs"
          f" images in {REAL}/ and in {FAKE}/"
        )
    gen_root = root if folders == [root] else root / name
    out[name] = images.ClassFolders(
      gen_root, (REAL, FAKE), {k: tuple(sorted(v)) for k, v in files.items()}, tuple(sorted(skipped))
    )
  return out


def subsets(root: str | os.PathLike) -> dict[str, list[str]]:
  """Generator name -> its subset folder names ([] when its `0_real`/`1_fake` sit directly in it)."""
  root = Path(root).expanduser()
  if _has_pair(root):
    return {root.name: []}
  return {g.name: [s.name for s in _folders_of(g) if s != g] for g in _children(root)}
