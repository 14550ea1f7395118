"""Format matching: the same lossy processing for every class before an image is stored or classified.

Real images of the common data sets are JPEG files (CelebA, LSUN, ImageNet, COCO) and generated ones
PNG, so a detector can learn JPEG's traces instead of the generator's (`format_audit` finds such
differences). Format matching removes that cue at its source: after decoding and cropping, every
image of every class is JPEG-encoded and decoded again, at one quality or at a quality drawn per
image from one distribution shared by all classes:

- `""`: off (the default): images are stored as decoded, losslessly. This matches the formats only
  when the sources' formats already match (all PNG, or all JPEG of one quality).
- `"jpeg:Q"`: every image at quality Q (1..100).
- `"jpeg:LO-HI"`: a quality per image, uniform on the integers LO..HI, drawn from the image's
  relative path (`folder_copy.file_rng` with seed 0): the same file gets the same quality at
  prepare and at classify time, and the draw knows nothing of the class.

The encoder is Pillow's (libjpeg, 4:2:0 chroma subsampling for RGB, baseline). Preparation records the
setting in the dataset's metadata and training in the model bundle (`match_format`), and `classify
--match_format` applies it to the images it classifies.
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
