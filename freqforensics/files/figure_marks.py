"""The mark on the figures the project writes: a PNG text chunk naming it, so a command may replace its
own figure with `--overwrite` but never a user's image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from freqforensics.files import atomic

# Passed to matplotlib's `savefig(metadata=...)`: a PNG text chunk that marks the figure as ours.
FIGURE_METADATA: dict[str, str] = {"Software": atomic.OWNER}


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 100) -> Path:
  """`fig.savefig` atomically; a PNG carries `FIGURE_METADATA` (so `--overwrite` may replace it later)."""
  path = Path(path)
  metadata = FIGURE_METADATA if path.suffix.lower() == ".png" else None
  return atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, metadata=metadata))


def is_our_figure(path: str | os.PathLike) -> bool:
  """Whether `path` is a PNG that freqforensics wrote (it carries `FIGURE_METADATA`)."""
  from freqforensics.data import images  # pylint: disable=g-import-not-at-top  (Pillow: only when needed)

  try:
    header = images.read_header(path)  # the one reader: a user's decompression bomb there is not ours either
  except images.ImageDecodeError:
    return False
  return header.format == "PNG" and header.info.get("Software") == atomic.OWNER
