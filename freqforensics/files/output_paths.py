"""Where a command may write: a fresh timestamped folder, an output file that replaces nothing of a user's,
an output folder apart from the inputs."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from pathlib import Path

from freqforensics.errors import UserError
from freqforensics.files.figure_marks import is_our_figure


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
