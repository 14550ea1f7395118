"""The processed test set: a seeded per-image plan (crop side and offset, size, JPEG quality) applied by one
chain to every class, written in the source's own layout, resumable, never over a user's file."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from freqforensics.data import processing_plan
from freqforensics.errors import UserError


def _folders(root: Path, layout: dict[str, tuple[int, int]], n: int = 5) -> Path:
  """`layout`: relative class folder -> (height, width); PNG or JPEG files of random pixels."""
  rng = np.random.default_rng(0)
  for k, (folder, (h, w)) in enumerate(layout.items()):
    (root / folder).mkdir(parents=True)
    for i in range(n):
      ext = ".jpg" if k % 2 == 0 else ".png"
      Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / folder / f"{i}{ext}", quality=85)
  return root


def _expected(source: Path, row: dict) -> bytes:
  """The chain as the test reads it: crop the square, shrink (Lanczos) or enlarge (bicubic), save as JPEG."""
  image = Image.open(source).convert("RGB")
  box = (row["left"], row["top"], row["left"] + row["side"], row["top"] + row["side"])
  image = image.crop(box)
  if row["side"] != row["size"]:
    resample = Image.Resampling.LANCZOS if row["side"] > row["size"] else Image.Resampling.BICUBIC
    image = image.resize((row["size"], row["size"]), resample, reducing_gap=None)
  buf = io.BytesIO()
  image.save(buf, format="JPEG", quality=row["quality"])
  return buf.getvalue()


def test_the_plan_is_applied_by_one_chain_to_every_class(tmp_path):
  src = _folders(tmp_path / "src", {"A_real": (48, 40), "B_gan": (30, 30)}, n=8)
  chain = processing_plan.Chain(size=32, min_crop=0.8, jpeg_quality=(65, 100))
  counts = processing_plan.process_folder(src, tmp_path / "out", chain, seed=3, progress=False)
  assert counts["written"] == 16 and counts["skipped"] == 0 and counts["size"] == 32
  plan = processing_plan.read_plan(tmp_path / "out")
  assert [r["file"] for r in plan] == sorted(
    f"{c}/{i}.{e}" for c, e in (("A_real", "jpg"), ("B_gan", "png")) for i in range(8)
  )
  for row in plan:
    short = min(row["width"], row["height"])
    assert min(short, math.ceil(0.8 * 32)) <= row["side"] <= short
    assert 0 <= row["left"] <= row["width"] - row["side"] and 0 <= row["top"] <= row["height"] - row["side"]
    assert 65 <= row["quality"] <= 100 and row["size"] == 32
    assert row["output"] == str(Path(row["file"]).with_suffix(".jpg"))
    assert (tmp_path / "out" / row["output"]).read_bytes() == _expected(src / row["file"], row), row
  a_sides = {r["side"] for r in plan if r["file"].startswith("A_real")}
  assert min(a_sides) < 32 < max(a_sides)  # random sides: A's crops (up to 40) are shrunk or enlarged
  assert {r["side"] for r in plan if r["file"].startswith("B_gan")} <= set(range(26, 31))  # B: always enlarged


def test_the_plan_is_deterministic_for_a_seed(tmp_path):
  src = _folders(tmp_path / "src", {"A_real": (40, 40), "B_gan": (40, 40)})
  for name, seed in (("a", 0), ("b", 0), ("c", 1)):
    processing_plan.process_folder(src, tmp_path / name, processing_plan.Chain(size=32), seed=seed, progress=False)
  plan = {n: (tmp_path / n / "plan.csv").read_text() for n in "abc"}
  assert plan["a"] == plan["b"] and plan["a"] != plan["c"]
  for f in sorted((tmp_path / "a").rglob("*.jpg")):
    assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()
  # A row depends on the seed, the relative path and the image size only (never on the class's other files).
  row = next(r for r in processing_plan.read_plan(tmp_path / "a") if r["file"] == "A_real/0.jpg")
  drawn = processing_plan.draw(0, "A_real/0.jpg", 40, 40, processing_plan.Chain(size=32))
  assert {k: row[k] for k in drawn} == drawn


def test_the_generator_layout_is_kept_and_size_defaults_to_the_median_short_side(tmp_path):
  layout = {"progan/0_real": (40, 50), "progan/1_fake": (40, 40), "sd/val/0_real": (64, 48), "sd/val/1_fake": (48, 48)}
  src = _folders(tmp_path / "src", layout, n=2)
  counts = processing_plan.process_folder(src, tmp_path / "out", seed=0, progress=False)
  assert counts["size"] == 44  # median of the short sides 40, 40, 48, 48 (two files each)
  written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.jpg"))
  assert written == sorted(f"{folder}/{i}.jpg" for folder in layout for i in range(2))
  for p in (tmp_path / "out").rglob("*.jpg"):
    with Image.open(p) as im:
      assert im.size == (44, 44) and im.format == "JPEG"


def test_an_interrupted_copy_resumes_and_a_users_files_are_never_overwritten(tmp_path):
  src = _folders(tmp_path / "src", {"A_real": (40, 40), "B_gan": (40, 40)})
  out = tmp_path / "out"
  chain = processing_plan.Chain(size=32)
  processing_plan.process_folder(src, out, chain, progress=False)
  first = (out / "A_real" / "0.jpg").read_bytes()
  (out / "B_gan" / "1.jpg").unlink()  # as if killed before this file
  again = processing_plan.process_folder(src, out, chain, progress=False)
  assert again["resumed"] == 9 and again["written"] == 10 and (out / "B_gan" / "1.jpg").is_file()
  assert (out / "A_real" / "0.jpg").read_bytes() == first
  (out / "notes.txt").write_text("mine")
  with pytest.raises(UserError, match="processed copy of other settings"):
    processing_plan.process_folder(src, out, processing_plan.Chain(size=24), progress=False)
  processing_plan.process_folder(src, out, processing_plan.Chain(size=24), overwrite=True, progress=False)
  assert (out / "notes.txt").read_text() == "mine" and Image.open(out / "A_real" / "0.jpg").size == (24, 24)
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "mine.png").write_bytes(b"x")
  with pytest.raises(UserError, match="holds no processed copy"):
    processing_plan.process_folder(src, tmp_path / "other", chain, progress=False)
  with pytest.raises(UserError, match="overlap"):
    processing_plan.process_folder(src, src / "A_real" / "copy", chain, progress=False)
  with pytest.raises(UserError, match="jpeg_quality"):
    processing_plan.Chain(jpeg_quality=(90, 60))
