"""The cross-generator test layout every peer uses: `ROOT/<generator>/[<subset>/]{0_real,1_fake}/`.

CNNDetection / ForenSynths, UnivFD, NPR and AIGCDetectBenchmark ship their test sets as one folder per
generator, each with its own real and fake images; ForenSynths nests object-class subsets in between
(`progan/airplane/0_real`, ..., `stylegan/bedroom/1_fake`). `read_layout` finds both forms (and a bare
`ROOT/{0_real,1_fake}`, one generator named after ROOT) and lists every generator's real and fake
images, from all its subsets, with the one listing rule (`images.list_files`). Each generator becomes
the two-class folders `0_real` (label 0) and `1_fake` (label 1) that preparation takes.
"""

from __future__ import annotations

import os
from pathlib import Path

from freqforensics.data import images
from freqforensics.errors import UserError

REAL, FAKE = "0_real", "1_fake"


def _has_pair(folder: Path) -> bool:
  return (folder / REAL).is_dir() or (folder / FAKE).is_dir()


def _children(folder: Path) -> list[Path]:
  try:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
  except OSError as e:
    raise UserError(f"{folder} cannot be read ({e.strerror or e}): give a readable folder") from None


def is_layout(root: str | os.PathLike) -> bool:
  """Whether `root` is in the protocol's layout: it, one of its folders, or a folder of those holds `0_real`/`1_fake`."""
  root = Path(root).expanduser()
  if not root.is_dir():
    return False
  if _has_pair(root):
    return True
  return any(_has_pair(g) or any(_has_pair(s) for s in _children(g)) for g in _children(root))


def _folders_of(generator: Path) -> list[Path]:
  """The folders of one generator that hold `0_real`/`1_fake`: itself, or its subsets."""
  if _has_pair(generator):
    return [generator]
  return [s for s in _children(generator) if _has_pair(s)]


def read_layout(root: str | os.PathLike, option: str = "--config.eval.source_dir") -> dict[str, images.ClassFolders]:
  """Generator name -> its images as the class folders `0_real` / `1_fake` (all subsets together), sorted by name.

  Raises `UserError` for a root that is not in the layout, a generator folder without the layout, or a
  generator whose real or fake images are missing.
  """
  root = Path(root).expanduser()
  if not root.is_dir():
    raise UserError(f"{option}={root} is not a folder: give ROOT/<generator>/[<subset>/]{{{REAL},{FAKE}}}/")
  generators = {root.name: [root]} if _has_pair(root) else {g.name: _folders_of(g) for g in _children(root)}
  if not generators or not any(generators.values()):
    raise UserError(
      f"{option}={root} holds no generator folders with {REAL}/ and {FAKE}/: use the layout"
      f" ROOT/<generator>/[<subset>/]{{{REAL},{FAKE}}}/"
    )
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
