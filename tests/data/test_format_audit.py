"""The format audit: formats, JPEG quality from the quantisation tables, subsampling, sizes, metadata,
and findings only when classes differ. Expected values come from how the test saved each file."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from freqforensics.data import format_audit, images, preparation

# The standard luminance and chrominance tables (ITU-T T.81, Annex K), natural order.
LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17]
LUMA += [22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78]
LUMA += [87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
CHROMA = [99] * 64
for i, row in enumerate([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]):
  CHROMA[8 * i : 8 * i + 4] = row


def _rgb(seed: int, h: int, w: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, array: np.ndarray, fmt: str, **kwargs) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path, format=fmt, **kwargs)


def test_jpeg_quality_is_read_exactly_from_files_saved_at_every_quality():
  image = Image.fromarray(_rgb(0, 24, 32))
  for quality in range(1, 101):
    for subsampling in (0, 2):
      buf = io.BytesIO()
      image.save(buf, format="JPEG", quality=quality, subsampling=subsampling)
      facts = format_audit.inspect(buf.getvalue())
      assert (facts["format"], facts["quality"], facts["quality_exact"]) == ("JPEG", quality, True), quality


def test_jpeg_quality_of_tables_scaled_another_way_is_within_one():
  # The standard tables scaled as libjpeg does, but rounded down: not an IJG table, so the estimate is the
  # nearest quality (the stated tolerance: within 1) and marked inexact.
  image = Image.fromarray(_rgb(1, 24, 32))
  for quality in range(10, 101, 3):
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    tables = [[min(255, max(1, int(v * scale / 100))) for v in base] for base in (LUMA, CHROMA)]
    buf = io.BytesIO()
    image.save(buf, format="JPEG", qtables=tables)
    facts = format_audit.inspect(buf.getvalue())
    assert abs(facts["quality"] - quality) <= 1, quality


def _mixed_folders(root: Path) -> Path:
  exif = Image.Exif()
  exif[0x010F] = "Camera maker"
  text = PngImagePlugin.PngInfo()
  text.add_text("parameters", "steps: 20")
  for i in range(6):
    _save(root / "A_real" / f"{i}.jpg", _rgb(i, 40, 48), "JPEG", quality=75, exif=exif.tobytes())  # 4:2:0 default
    _save(root / "B_gan" / f"{i}.png", _rgb(10 + i, 32, 32), "PNG", pnginfo=text)
  for i in range(3):
    _save(root / "C_mix" / f"{i}.jpg", _rgb(20 + i, 32, 32), "JPEG", quality=95, subsampling=0, progressive=True)
    _save(root / "C_mix" / f"{i}.webp", _rgb(30 + i, 32, 32), "WEBP", lossless=True)
  Image.fromarray(_rgb(40, 32, 32)[..., 0]).save(root / "C_mix" / "gray.jpg", quality=50)
  return root


def test_audit_reports_formats_quality_subsampling_sizes_and_metadata(tmp_path):
  audit = format_audit.audit_folders(images.list_class_folders(_mixed_folders(tmp_path / "src")))
  a, b, c = (audit["classes"][n] for n in ("A_real", "B_gan", "C_mix"))
  assert (a["files"], a["format"], a["jpeg_quality"], a["jpeg_quality_inexact"]) == (6, {"JPEG": 6}, {"75": 6}, 0)
  assert (a["subsampling"], a["progressive"], a["size"], a["aspect"]) == ({"4:2:0": 6}, 0, {"48x40": 6}, {"1.20": 6})
  assert (a["mode"], a["exif"]) == ({"RGB 8-bit": 6}, 6)
  assert (b["format"], b["jpeg_quality"], b["size"], b["exif"]) == ({"PNG": 6}, {}, {"32x32": 6}, 0)
  assert b["metadata"] == {"parameters": 6}
  assert c["format"] == {"JPEG": 4, "WEBP lossless": 3} and c["jpeg_quality"] == {"95": 3, "50": 1}
  assert c["subsampling"] == {"4:4:4": 3, "gray": 1} and c["progressive"] == 3
  assert c["mode"] == {"RGB 8-bit": 6, "L 8-bit": 1}
  table = format_audit.markdown(audit)
  assert table.count("\n| ") == 3 and "| A_real | 6 | 100% JPEG | 75 | 100% 4:2:0 | 0% | 100% 48x40 |" in table


def test_sixteen_bit_png_and_unreadable_files_are_counted(tmp_path):
  path = tmp_path / "deep.png"
  Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(path)
  assert format_audit.inspect(path)["mode"] == "I;16 16-bit"
  assert format_audit.inspect(b"not an image") == {"format": "unreadable", "skipped": "not an image"}
  t = format_audit.tally([format_audit.inspect(path), format_audit.inspect(b"")])
  assert t["files"] == 2 and t["format"] == {"PNG": 1, "unreadable": 1} and t["size"] == {"8x8": 1}
  assert t["skipped"] == {"empty file": 1}


def test_warns_only_when_classes_differ(tmp_path):
  def findings(specs: dict[str, list[tuple[str, dict, tuple[int, int]]]]) -> list[str]:
    root = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    for name, files in specs.items():
      for i, (fmt, kwargs, (h, w)) in enumerate(files):
        _save(root / name / f"{i:02d}.{fmt.lower()}", _rgb(zlib.crc32(f"{name}{i}".encode()), h, w), fmt, **kwargs)
    return format_audit.findings(format_audit.audit_folders(images.list_class_folders(root)))

  png = ("PNG", {}, (32, 32))
  assert findings({"A_real": [png] * 8, "B_gan": [png] * 8}) == []  # alike: nothing to say
  # Qualities spread alike over both classes (different files): no finding out of sampling noise.
  spread = [("JPEG", {"quality": q}, (32, 32)) for q in (70, 76, 82, 88, 94, 100)]
  assert findings({"A_real": spread, "B_gan": spread[::-1]}) == []
  lines = findings({"A_real": [("JPEG", {"quality": 75}, (32, 32))] * 8, "B_gan": [png] * 8})
  assert lines == ["format: A_real is 100% JPEG q~75, B_gan is 100% PNG"]
  lines = findings(
    {"A_real": [("JPEG", {"quality": 75}, (32, 32))] * 6, "B_gan": [("JPEG", {"quality": 95}, (32, 32))] * 6}
  )
  assert lines == ["JPEG quality: A_real is 100% q 75-79, B_gan is 100% q 95-100"]
  lines = findings({"A_real": [("PNG", {}, (40, 48))] * 5, "B_gan": [png] * 5})
  assert lines == ["image size: A_real is 100% 48x40, B_gan is 100% 32x32"]
  lines = findings(
    {
      "A_real": [("JPEG", {"quality": 90, "subsampling": 0}, (32, 32))] * 5,
      "B": [("JPEG", {"quality": 90}, (32, 32))] * 5,
    }
  )
  assert lines == ["chroma subsampling: A_real is 100% 4:4:4, B is 100% 4:2:0"]


def test_a_prepared_dataset_records_the_audit_of_the_files_it_stored(tmp_path):
  src = _mixed_folders(tmp_path / "src")
  (src / "B_gan" / "broken.png").write_bytes(b"not a png")  # skipped by preparation: not in its audit
  ds = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(32, 3, (0.5, 0.25, 0.25)), progress=False)
  recorded = ds.metadata["audit"]
  assert format_audit.audit_folders(images.list_class_folders(src))["classes"]["B_gan"]["format"] == {
    "PNG": 6,
    "unreadable": 1,
  }
  (src / "B_gan" / "broken.png").unlink()
  clean = format_audit.audit_folders(images.list_class_folders(src))
  assert recorded["classes"] == clean["classes"]  # every other file decoded and stored: the same tallies
  assert format_audit.audit_path(ds.path) == json.loads(json.dumps(recorded))
  assert format_audit.findings(recorded) == format_audit.findings(clean) and format_audit.findings(recorded)


def test_report_files(tmp_path):
  audit = format_audit.audit_folders(images.list_class_folders(_mixed_folders(tmp_path / "src")))
  files = format_audit.write_report(audit, tmp_path / "report")
  assert [f.name for f in files] == ["audit.md", "audit.json", "audit.png"]
  assert json.loads(files[1].read_text())["findings"] == format_audit.findings(audit)
  assert "| C_mix | 7 |" in files[0].read_text()
  with Image.open(files[2]) as im:
    assert im.format == "PNG" and im.size[0] > 600


@pytest.mark.parametrize("max_per_class,expected", [(0, 6), (3, 3), (10, 6)])
def test_max_per_class_audits_evenly_spaced_files(tmp_path, max_per_class, expected):
  src = _mixed_folders(tmp_path / "src")
  audit = format_audit.audit_folders(images.list_class_folders(src), max_per_class=max_per_class)
  assert audit["classes"]["A_real"]["files"] == expected
  assert ("evenly spaced" in audit["of"]) == (0 < max_per_class < 7)
