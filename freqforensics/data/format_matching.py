"""Format matching: the same lossy processing for every class before an image is stored or classified.

After decoding and cropping, every image of every class is JPEG-encoded and decoded again (Pillow,
4:2:0, baseline): `""` is off (the default), `"jpeg:Q"` one quality, `"jpeg:LO-HI"` a quality per
image drawn from its relative path (`folder_copy.file_rng`, seed 0), so a file gets the same quality
at prepare and at classify time and the draw knows nothing of the class. Preparation records the
setting in the dataset's metadata and training in the bundle (`match_format`); docs/format_shortcut.md
says why.
"""

from __future__ import annotations

import re

from freqforensics.data import folder_copy
from freqforensics.errors import UserError

ALLOWED = "'' (off), jpeg:Q (every image at JPEG quality Q, 1..100) or jpeg:LO-HI (a quality per image, LO..HI)"
_SPEC = re.compile(r"jpeg:(\d{1,3})(?:-(\d{1,3}))?")
_SEED = 0  # one fixed seed: the draw of a file depends on its relative path alone


def qualities(spec: str, option: str = "data.match_format") -> tuple[int, int] | None:
  """The (low, high) JPEG qualities of `spec`, None when off; `UserError` naming `option` when invalid."""
  if not spec:
    return None
  m = _SPEC.fullmatch(str(spec).strip().lower())
  low, high = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
  if not (m and 1 <= low <= high <= 100):
    raise UserError(f"{option}={spec!r} is not valid: give {ALLOWED}")
  return low, high


def check(spec: str, option: str = "data.match_format") -> str:
  """`spec` in its normal form (`jpeg:90`, `jpeg:65-100`, or `''`); `UserError` naming `option` when invalid."""
  q = qualities(spec, option)
  if q is None:
    return ""
  return f"jpeg:{q[0]}" if q[0] == q[1] else f"jpeg:{q[0]}-{q[1]}"


def quality(spec: str, relative_path: str) -> int:
  """The JPEG quality `spec` gives the file at `relative_path` (0 when off)."""
  q = qualities(spec)
  if q is None:
    return 0
  if q[0] == q[1]:
    return q[0]
  return int(folder_copy.file_rng(_SEED, relative_path).integers(q[0], q[1], endpoint=True))


def describe(spec: str) -> str:
  """One line for summaries: what every class went through before it was stored."""
  q = qualities(spec)
  if q is None:
    return "stored as decoded (no format matching)"
  what = f"quality {q[0]}" if q[0] == q[1] else f"a quality drawn per image from {q[0]}..{q[1]}"
  return f"every class JPEG-encoded at {what} before it was stored (match_format {check(spec)})"
