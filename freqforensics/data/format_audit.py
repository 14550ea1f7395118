"""The format audit: what each class's files are, and whether a detector could tell the classes by it.

Run by `python -m freqforensics.tools.audit`. Reads every file's header, never its pixels
(`images.read_header`), and tallies per class the format, the JPEG quality estimated from the
quantisation tables (`estimate_jpeg_quality`), subsampling and coding, size, mode and metadata keys;
`findings` names each property in which two classes differ by a total variation of at least
`DIFFERENCE`. Tallies are JSON dicts of counts that add up (`merge`): preparation tallies the files
it stores and keeps the audit in the dataset's metadata. docs/format_shortcut.md has the details.
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqforensics.data import images
from freqforensics.files import atomic, figure_marks

VERSION = 1
DIFFERENCE = 0.25  # total variation distance between two classes' distributions that makes a finding
UNREADABLE = "unreadable"
# Keys of Pillow's `info` that describe how the file is coded, not metadata someone attached.
_CODING_KEYS = frozenset(
  {
    "jfif",
    "jfif_version",
    "jfif_unit",
    "jfif_density",
    "progressive",
    "progression",
    "adobe",
    "adobe_transform",
    "exif",  # counted on its own
    "loop",
    "background",
    "duration",
    "timestamp",
    "compression",
    "interlace",
    "transparency",
    "tile",
  }
)
_MAX_KEYS = 20  # metadata keys kept per file (a file with hundreds of text chunks stays one small record)
_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
_MODE_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}

# The IJG standard quantisation tables (ITU-T T.81 Annex K), in natural (row-major) order.
_LUMA = np.array(
  [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
  ],
  np.int64,
).ravel()
_CHROMA = np.full((8, 8), 99, np.int64)
_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
_CHROMA = _CHROMA.ravel()


def ijg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
  """The luminance and chrominance tables libjpeg's `jpeg_set_quality(quality, force_baseline=TRUE)` makes."""
  scale = 5000 // quality if quality < 50 else 200 - 2 * quality
  return tuple(np.clip((base * scale + 50) // 100, 1, 255) for base in (_LUMA, _CHROMA))  # type: ignore[return-value]


_IJG = np.stack([np.stack(ijg_tables(q)) for q in range(1, 101)])  # (100, 2, 64)


def estimate_jpeg_quality(tables: dict[int, Sequence[int]]) -> tuple[int, bool]:
  """(quality 1..100, exact) of a JPEG's quantisation tables (Pillow's `im.quantization`, natural order).

  Exact when the tables are the IJG scaling of the standard ones at that quality; otherwise the
  quality whose IJG tables differ least (sum of absolute differences over the luminance table and,
  when there is one, the first chrominance table).
  """
  luma = np.asarray(tables[min(tables)], np.int64).ravel()
  distance = np.abs(_IJG[:, 0, :] - luma).sum(axis=1)
  if len(tables) > 1:
    chroma = np.asarray(tables[sorted(tables)[1]], np.int64).ravel()
    distance = distance + np.abs(_IJG[:, 1, :] - chroma).sum(axis=1)
  best = int(np.argmin(distance))
  return best + 1, bool(distance[best] == 0)


def _webp_kind(head: bytes) -> str:
  """`WEBP lossy` or `WEBP lossless`, from the RIFF chunks (the first VP8 / VP8L chunk)."""
  pos = 12
  while pos + 8 <= len(head):
    fourcc, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
    if fourcc == b"VP8 ":
      return "WEBP lossy"
    if fourcc == b"VP8L":
      return "WEBP lossless"
    pos += 8 + size + (size & 1)
  return "WEBP"


def _bits(header: images.Header, head: bytes) -> int:
  if header.format == "PNG" and head[12:16] == b"IHDR":
    return head[24]  # bits per sample (16-bit PNGs open as 8-bit modes in Pillow)
  return header.bits or _MODE_BITS.get(header.mode, 8)


def inspect(source: bytes | str | os.PathLike, max_pixels: int = images.DEFAULT_MAX_PIXELS) -> dict[str, Any]:
  """The facts of one image file (encoded bytes, or a path read as far as its header): format, size,
  mode, bit depth, EXIF and metadata keys, and for JPEG quality, subsampling and progressive coding.

  The header is read by the project's one reader (`images.read_header`, with the pixel limit
  `max_pixels`); a file it refuses gives `{"format": "unreadable", "skipped": reason}` (e.g. `pixel
  limit` for a decompression bomb), counted per reason in the tally. No pixel is decoded.
  """
  try:
    if isinstance(source, bytes):
      return _facts(images.read_header(source, max_pixels=max_pixels), source[:65536])
    with open(source, "rb") as f:
      head = f.read(65536)
      f.seek(0)
      return _facts(images.read_header(f, max_pixels=max_pixels), head)
  except (OSError, ValueError, KeyError, IndexError, struct.error):  # (odd quantisation tables, a cut RIFF chunk)
    return {"format": UNREADABLE, "skipped": "unreadable"}
  except images.ImageDecodeError as e:
    return {"format": UNREADABLE, "skipped": e.reason}


def _facts(header: images.Header, head: bytes) -> dict[str, Any]:
  fmt = _webp_kind(head) if header.format == "WEBP" else header.format
  info = header.info
  facts: dict[str, Any] = {
    "format": fmt,
    "width": header.width,
    "height": header.height,
    "mode": f"{header.mode} {_bits(header, head)}-bit",
    "exif": bool(info.get("exif")),
    "metadata": sorted(str(k)[:40] for k in info if k not in _CODING_KEYS)[:_MAX_KEYS],
  }
  if fmt == "JPEG":
    quality, exact = estimate_jpeg_quality(header.quantization)
    facts.update(
      quality=quality,
      quality_exact=exact,
      subsampling="gray" if header.mode == "L" else _SAMPLING.get(header.subsampling, "other"),
      progressive=bool(info.get("progressive") or info.get("progression")),
    )
  return facts


# --- Tallies: per class counts that add up ------------------------------------------------------------


def empty_tally() -> dict[str, Any]:
  """A tally of no files."""
  return {
    "files": 0,
    "format": {},
    "jpeg_quality": {},  # quality -> JPEG files
    "jpeg_quality_inexact": 0,  # JPEG files whose tables are not an IJG scaling (quality estimated)
    "subsampling": {},
    "progressive": 0,  # JPEG files coded progressively
    "mode": {},
    "size": {},  # "WxH" -> files
    "aspect": {},  # width / height, 2 decimals -> files
    "exif": 0,
    "metadata": {},  # info key -> files carrying it
    "skipped": {},  # reason -> files whose header was refused (`images.read_header`), also counted as unreadable
  }


def _add(counter: dict[str, int], key: Any, n: int = 1) -> None:
  counter[str(key)] = counter.get(str(key), 0) + n


def tally(facts: Iterable[dict[str, Any]]) -> dict[str, Any]:
  """The tally of files' facts (`inspect`)."""
  t = empty_tally()
  for f in facts:
    t["files"] += 1
    _add(t["format"], f["format"])
    if f["format"] == UNREADABLE:
      _add(t["skipped"], f.get("skipped", "unreadable"))
      continue
    _add(t["mode"], f["mode"])
    _add(t["size"], f"{f['width']}x{f['height']}")
    _add(t["aspect"], f"{f['width'] / max(1, f['height']):.2f}")
    t["exif"] += bool(f["exif"])
    for key in f["metadata"]:
      _add(t["metadata"], key)
    if f["format"] == "JPEG":
      _add(t["jpeg_quality"], f["quality"])
      t["jpeg_quality_inexact"] += not f["quality_exact"]
      _add(t["subsampling"], f["subsampling"])
      t["progressive"] += bool(f["progressive"])
  return t


def merge(tallies: Iterable[dict[str, Any]]) -> dict[str, Any]:
  """The sum of tallies (e.g. of a class's preparation chunks)."""
  out = empty_tally()
  for t in tallies:
    for key, value in t.items():
      if isinstance(value, dict):
        for k, n in value.items():
          _add(out[key], k, n)
      else:
        out[key] += value
  return out


def make_audit(classes: dict[str, dict[str, Any]], source_dir: str | os.PathLike, of: str) -> dict[str, Any]:
  """An audit: per class tallies, where they come from, and what files they count (`of`)."""
  return {"version": VERSION, "source_dir": str(source_dir), "of": of, "classes": classes}


def audit_folders(folders: images.ClassFolders, *, max_per_class: int = 0, num_threads: int = 0) -> dict[str, Any]:
  """The audit of class folders (listed by `images.list_class_folders`, the one listing rule).

  `max_per_class` > 0 audits that many files per class, evenly spaced in sorted order; 0 all. Only
  headers are read, in `num_threads` threads (0 = 2 per core).
  """
  chosen = {}
  for name in folders.class_names:
    files = folders.files[name]
    if 0 < max_per_class < len(files):
      files = tuple(files[int(i)] for i in np.linspace(0, len(files) - 1, max_per_class).round())
    chosen[name] = files
  with concurrent.futures.ThreadPoolExecutor(num_threads or 2 * (os.cpu_count() or 1)) as pool:
    classes = {name: tally(pool.map(inspect, files)) for name, files in chosen.items()}
  sampled = any(len(chosen[n]) < len(folders.files[n]) for n in folders.class_names)
  of = f"up to {max_per_class} files per class, evenly spaced" if sampled else "every image file"
  return make_audit(classes, folders.root.resolve(), of)


def audit_path(path: str | os.PathLike, *, max_per_class: int = 0, num_threads: int = 0) -> dict[str, Any]:
  """The audit of class folders, or the one a prepared dataset recorded when it was prepared (its stored
  images are raw arrays: the files' formats are known only from that record)."""
  from freqforensics.errors import UserError  # pylint: disable=g-import-not-at-top

  root = Path(path).expanduser()
  if (root / "dataset_info.json").is_file():
    from freqforensics.data import reader  # pylint: disable=g-import-not-at-top  (tfds: only when needed)

    metadata = reader.open_prepared(root).metadata
    if not metadata.get("audit"):
      raise UserError(
        f"{root} was prepared by a freqforensics without the format audit, so it records none: audit its"
        f" source folders instead (--source_dir={metadata.get('source_dir', 'SOURCE')})"
      )
    return metadata["audit"]
  folders = images.list_class_folders(root, min_classes=1, option="--source_dir")
  return audit_folders(folders, max_per_class=max_per_class, num_threads=num_threads)


# --- Findings ----------------------------------------------------------------------------------------


def _distribution(counter: dict[str, int]) -> dict[str, float]:
  total = sum(counter.values())
  return {k: n / total for k, n in counter.items()} if total else {}


def _tv(a: dict[str, float], b: dict[str, float]) -> float:
  return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def _chance_tv(a: dict[str, int], b: dict[str, int]) -> float:
  """About the total variation distance two samples of these sizes from one distribution (the pooled one)
  show by chance: `0.5 * sum_k sqrt(2 / pi) * sqrt(p_k (1 - p_k) (1 / n_a + 1 / n_b))`."""
  na, nb = sum(a.values()), sum(b.values())
  pooled = _distribution({k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)})
  return 0.5 * sum(math.sqrt(2 / math.pi * p * (1 - p) * (1 / na + 1 / nb)) for p in pooled.values())


def _differ(a: dict[str, int], b: dict[str, int]) -> bool:
  """Whether two classes' counts differ by `DIFFERENCE` beyond twice what chance gives samples of their sizes."""
  return _tv(_distribution(a), _distribution(b)) >= DIFFERENCE + 2 * _chance_tv(a, b)


def median_quality(t: dict[str, Any]) -> int | None:
  """The median estimated JPEG quality of a tally's JPEG files (None without JPEG files)."""
  values = sorted(int(q) for q, n in t["jpeg_quality"].items() for _ in range(n))
  return values[len(values) // 2] if values else None


def _format_names(t: dict[str, Any]) -> dict[str, int]:
  """Formats, JPEG named with its median quality: `JPEG q~75` (for the lines; compared without it)."""
  q = median_quality(t)
  return {(f"JPEG q~{q}" if k == "JPEG" and q is not None else k): n for k, n in t["format"].items()}


def _binary(n: int, total: int, yes: str, no: str) -> dict[str, int]:
  return {k: v for k, v in ((yes, n), (no, total - n)) if v}


def _quality_bins(t: dict[str, Any]) -> dict[str, int]:
  out: dict[str, int] = {}
  for q, n in t["jpeg_quality"].items():
    lo = min(95, int(q) // 5 * 5)
    _add(out, f"q {lo}-{lo + 4 if lo < 95 else 100}", n)
  return out


def _properties(t: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
  """(property, counter) pairs compared between classes; JPEG-only ones over the class's JPEG files."""
  jpeg = sum(t["jpeg_quality"].values())
  props = [
    ("format", dict(t["format"])),
    ("JPEG quality", _quality_bins(t)),
    ("chroma subsampling", dict(t["subsampling"])),
    ("JPEG coding", _binary(t["progressive"], jpeg, "progressive", "baseline")),
    ("mode", dict(t["mode"])),
    ("image size", dict(t["size"])),
    ("EXIF", _binary(t["exif"], t["files"] - t["format"].get(UNREADABLE, 0), "with EXIF", "no EXIF")),
  ]
  readable = t["files"] - t["format"].get(UNREADABLE, 0)
  for key in sorted(t["metadata"]):
    props.append((f"metadata {key}", _binary(t["metadata"][key], readable, f"with {key}", f"no {key}")))
  return props


def _describe(counter: dict[str, int], top: int = 2) -> str:
  total = sum(counter.values())
  ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
  parts = [f"{100 * n / total:.0f}% {k}" for k, n in ranked[:top]]
  if len(ranked) > top:
    parts.append(f"{len(ranked) - top} more")
  return ", ".join(parts)


def findings(audit: dict[str, Any] | None) -> list[str]:
  """One line per property in which two classes differ: by a total variation distance of at least
  `DIFFERENCE` beyond twice the distance samples of their sizes show by chance (so a few files per
  class never make a finding out of noise, and 100% JPEG against 100% PNG does from 4 files each).

  Properties of JPEG files only (quality, subsampling, coding) compare the classes that have JPEG
  files; metadata keys are compared one by one. Empty when the classes look alike (or no audit).
  """
  if not audit or len(audit.get("classes", {})) < 2:
    return []
  tallies = audit["classes"]
  per_class = {name: dict(_properties(t)) for name, t in tallies.items()}
  names = list(per_class)
  lines = []
  for prop in dict.fromkeys(p for props in per_class.values() for p in props):
    counters = {n: per_class[n].get(prop, {}) for n in names}
    present = [n for n in names if sum(counters[n].values())]
    if len(present) < 2 or not any(_differ(counters[a], counters[b]) for a in present for b in present if a < b):
      continue
    shown = {n: _format_names(tallies[n]) for n in present} if prop == "format" else counters
    lines.append(f"{prop}: " + ", ".join(f"{n} is {_describe(shown[n])}" for n in present))
  return lines


# --- Reports ------------------------------------------------------------------------------------------


def _cell(counter: dict[str, int], top: int = 2) -> str:
  return _describe(counter, top) if counter else "-"


def markdown(audit: dict[str, Any], *, with_findings: bool = True) -> str:
  """The audit as a markdown table (one row per class), what it counted, and its findings (`with_findings`)."""
  header = (
    "| class | files | format | JPEG quality (median, range) | subsampling | progressive | size | aspect"
    " | mode | EXIF | metadata |"
  )
  lines = [header, "|" + "---|" * (header.count("|") - 1)]
  for name, t in audit["classes"].items():
    qs = sorted(int(q) for q in t["jpeg_quality"])
    jpeg = sum(t["jpeg_quality"].values())
    quality = "-"
    if qs:
      quality = f"{median_quality(t)}" + (f" ({qs[0]}-{qs[-1]})" if qs[0] != qs[-1] else "")
      if t["jpeg_quality_inexact"]:
        quality += f", {100 * t['jpeg_quality_inexact'] / jpeg:.0f}% estimated"
    readable = t["files"] - t["format"].get(UNREADABLE, 0)
    meta = ", ".join(f"{k} {100 * n / max(1, readable):.0f}%" for k, n in sorted(t["metadata"].items())) or "-"
    cells = [
      name,
      f"{t['files']:,}",
      _cell(t["format"]),
      quality,
      _cell(t["subsampling"]),
      f"{100 * t['progressive'] / jpeg:.0f}%" if jpeg else "-",
      _cell(t["size"]),
      _cell(t["aspect"]),
      _cell(t["mode"]),
      f"{100 * t['exif'] / max(1, readable):.0f}%",
      meta,
    ]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", f"Audited: {audit.get('of', 'files')} of {audit.get('source_dir', '?')}."]
  skipped = {name: t.get("skipped") or {} for name, t in audit["classes"].items()}
  if any(skipped.values()):  # (counted as unreadable in the table)
    lines.append(
      "Skipped (header refused, as preparation would skip them): "
      + "; ".join(
        f"{name}: " + ", ".join(f"{n} {reason}" for reason, n in sorted(by.items()))
        for name, by in skipped.items()
        if by
      )
      + "."
    )
  if with_findings:
    found = findings(audit)
    lines += ["", "Findings (classes that differ in a way a detector can learn):" if found else "Findings: none."]
    lines += [f"- {line}" for line in found]
  return "\n".join(lines) + "\n"


def _stacked(ax, title: str, counters: dict[str, dict[str, int]], top: int = 5) -> None:
  """One horizontal bar per class, split by share of each value (the `top` most common overall, then other)."""
  overall: collections.Counter = collections.Counter()
  for c in counters.values():
    overall.update(c)
  keys = [k for k, _ in overall.most_common(top)]
  names = list(counters)
  left = np.zeros(len(names))
  colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
  for i, key in enumerate(keys + (["other"] if len(overall) > top else [])):
    shares = []
    for n in names:
      total = sum(counters[n].values()) or 1
      value = counters[n].get(key, 0) if key != "other" else sum(v for k, v in counters[n].items() if k not in keys)
      shares.append(value / total)
    ax.barh(names, shares, left=left, color=colours[i % len(colours)], label=key)
    left += np.asarray(shares)
  ax.set_xlim(0, 1)
  ax.set_title(title, fontsize=10)
  ax.set_xlabel("share of the class's files", fontsize=8)
  ax.invert_yaxis()
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
  ax.tick_params(labelsize=8)


def figure(audit: dict[str, Any], path: str | os.PathLike) -> Path:
  """One figure: per class, the share of each format (JPEG by quality), subsampling, mode, size, aspect, EXIF."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  classes = audit["classes"]

  def formats(t):
    out = {k: n for k, n in t["format"].items() if k != "JPEG"}
    out.update({f"JPEG {k}": n for k, n in _quality_bins(t).items()})
    return out

  panels = [
    ("format (JPEG by estimated quality)", {n: formats(t) for n, t in classes.items()}),
    ("JPEG chroma subsampling", {n: dict(t["subsampling"]) for n, t in classes.items()}),
    ("mode and bit depth", {n: dict(t["mode"]) for n, t in classes.items()}),
    ("image size", {n: dict(t["size"]) for n, t in classes.items()}),
    ("aspect ratio (width / height)", {n: dict(t["aspect"]) for n, t in classes.items()}),
    (
      "EXIF",
      {n: _binary(t["exif"], t["files"] - t["format"].get(UNREADABLE, 0), "EXIF", "none") for n, t in classes.items()},
    ),
  ]
  fig, axes = plt.subplots(2, 3, figsize=(15, 2.2 + 1.0 * len(classes)), constrained_layout=True)
  for ax, (title, counters) in zip(axes.ravel(), panels):
    _stacked(ax, title, counters)
  fig.suptitle("Format audit: share of each class's files", fontsize=11)
  try:
    return figure_marks.save_figure(fig, path)
  finally:
    plt.close(fig)


def write_report(audit: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
  """Writes `audit.md`, `audit.json` (the tallies and findings) and `audit.png` into `out_dir` (atomically)."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  return [
    atomic.write_text(out / "audit.md", "# Format audit\n\n" + markdown(audit)),
    atomic.write_json(out / "audit.json", dict(audit, findings=findings(audit))),
    figure(audit, out / "audit.png"),
  ]
