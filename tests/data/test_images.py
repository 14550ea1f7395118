"""Images as they come: every odd kind becomes RGB (or grayscale) uint8 one documented way; bad files
are skipped with their reason, counted and reported."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from freqforensics.data import images, preparation, reader

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
  """ITU-R 601-2 luma as Pillow computes it (fixed point, rounded): the documented grayscale."""
  r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
  return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def test_rgba_drops_alpha_keeping_the_stored_colours(tmp_path):
  rgba = np.concatenate([RGB, RNG.integers(0, 256, (16, 16, 1), dtype=np.uint8)], -1)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
  np.testing.assert_array_equal(images.load_image(tmp_path / "a.png", 16, 3), RGB)
  np.testing.assert_array_equal(images.load_image(tmp_path / "a.png", 16, 1)[..., 0], luma(RGB))


def test_grayscale_and_palette_images_expand_to_rgb(tmp_path):
  gray = RGB[..., 0]
  Image.fromarray(gray, "L").save(tmp_path / "g.png")
  np.testing.assert_array_equal(images.load_image(tmp_path / "g.png", 16, 3), np.stack([gray] * 3, -1))
  palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
  index = RNG.integers(0, 256, (16, 16), dtype=np.uint8)
  p = Image.fromarray(index, "P")
  p.putpalette(palette.ravel().tolist())
  p.save(tmp_path / "p.png")
  np.testing.assert_array_equal(images.load_image(tmp_path / "p.png", 16, 3), palette[index])


def test_sixteen_bit_images_scale_to_eight_bits(tmp_path):
  deep = RNG.integers(0, 65536, (16, 16), dtype=np.uint16)
  Image.fromarray(deep, "I;16").save(tmp_path / "d.png")
  want = np.round(deep / 257.0).astype(np.uint8)
  np.testing.assert_array_equal(images.load_image(tmp_path / "d.png", 16, 1)[..., 0], want)
  np.testing.assert_array_equal(images.load_image(tmp_path / "d.png", 16, 3), np.stack([want] * 3, -1))


def test_cmyk_uses_the_multiplicative_conversion(tmp_path):
  cmyk = RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8)
  Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
  want = (255 - cmyk[..., :3].astype(float)) * (255 - cmyk[..., 3:].astype(float)) / 255
  got = images.load_image(tmp_path / "c.tif", 16, 3)
  assert np.abs(got - want).max() <= 1.0


def test_exif_orientation_is_applied_before_cropping(tmp_path):
  stored = RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8)  # 24 wide, 16 high as stored
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
  Image.fromarray(stored).save(tmp_path / "e.png", exif=exif)
  upright = np.rot90(stored, k=-1)  # 16 wide, 24 high
  np.testing.assert_array_equal(images.load_image(tmp_path / "e.png", 16, 3), upright[4:20])


def test_every_listed_format_decodes_in_one_folder(tmp_path):
  src = tmp_path / "src"
  for cls in ("A_real", "B_gan"):
    (src / cls).mkdir(parents=True)
    for ext, kwargs in (
      (".png", {}),
      (".bmp", {}),
      (".tif", {}),
      (".webp", {"lossless": True}),
      (".jpg", {"quality": 95}),
      (".jpeg", {"quality": 95}),
    ):
      Image.fromarray(RGB).save(src / cls / f"img{ext}", **kwargs)
  ds = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(16, 3, (4, 1, 1)), progress=False)
  assert ds.num_examples == {"train": 8, "val": 2, "test": 2} and ds.metadata["skipped"] == 0
  train = ds.source("train")
  for i in range(len(train)):
    ex = train[i]
    want = np.asarray(Image.open(src / ex["path"].decode()).convert("RGB"))  # lossless ones equal RGB exactly
    np.testing.assert_array_equal(ex["image"], want)


def test_bad_files_are_skipped_per_reason_and_reported(tmp_path):
  src = tmp_path / "src"
  for cls in ("A_real", "B_gan"):
    (src / cls).mkdir(parents=True)
    for i in range(4):
      Image.fromarray(RGB).save(src / cls / f"ok_{i}.png")
  bad = src / "B_gan"
  (bad / "empty.png").write_bytes(b"")
  (bad / "text.png").write_text("this is not an image")
  full = (src / "A_real" / "ok_0.png").read_bytes()
  (bad / "truncated.png").write_bytes(full[: len(full) // 2])
  Image.fromarray(RGB[:8, :8]).save(bad / "small.png")
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(bad / "huge.png")  # above the test's pixel limit
  (bad / "notes.txt").write_text("x")
  opts = preparation.PrepareOptions(16, 3, (0.5, 0.25, 0.25), max_pixels=1000)
  ds = preparation.prepare(src, tmp_path / "data", opts, progress=False)
  assert ds.num_examples == {"train": 4, "val": 2, "test": 2}
  assert ds.metadata["skipped_by_reason"] == {
    "empty file": 1,
    "not an image": 2,
    "pixel limit": 1,
    "too small": 1,
    "truncated": 1,
  }
  report = {row["path"]: f"{row['reason']}: {row['message']}" for row in reader.read_report(ds.path)}
  assert set(report) == {
    f"B_gan/{n}" for n in ("empty.png", "text.png", "truncated.png", "small.png", "huge.png", "notes.txt")
  }
  assert report["B_gan/huge.png"].startswith("pixel limit: 40x40 pixels, above the limit of 1,000")
  assert report["B_gan/small.png"].startswith("too small:")


def test_decompression_bombs_are_refused_from_the_header(tmp_path, monkeypatch):
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "b.png")

  def no_decoding(self, *a, **k):
    raise AssertionError("the pixels of an image above the limit must not be decoded")

  monkeypatch.setattr(Image.Image, "load", no_decoding)
  monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
  with pytest.raises(images.ImageDecodeError, match="above the limit") as e:
    images.load_image(tmp_path / "b.png", 16, 3, max_pixels=1599)
  assert e.value.reason == "pixel limit"


def test_a_pixel_bomb_header_is_a_skipped_file_for_every_header_reader(tmp_path):
  """Pillow refuses a 30000x30000 PNG header with its own `DecompressionBombError` (not an OSError); the one
  header reader turns it into the `pixel limit` skip that decoding gives, and the readers of headers
  (model card, format audit, the processed copy's median size, a figure's owner) go through it."""
  from conftest import pixel_bomb_png

  from freqforensics.data import format_audit, processing_plan
  from freqforensics.evaluation import model_card
  from freqforensics.files import figure_marks

  bomb = tmp_path / "bomb.png"
  bomb.write_bytes(pixel_bomb_png())
  with pytest.raises(Image.DecompressionBombError):
    Image.open(bomb)  # the file is a bomb to Pillow itself
  for source in (bomb, bomb.read_bytes()):
    with pytest.raises(images.ImageDecodeError) as e:
      images.read_header(source)
    assert e.value.reason == "pixel limit"
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "big.png")  # below Pillow's limit, above ours
  with pytest.raises(images.ImageDecodeError, match="40x30 pixels, above the limit of 1,000") as e:
    images.read_header(tmp_path / "big.png", max_pixels=1000)
  assert e.value.reason == "pixel limit"
  Image.fromarray(RGB).save(tmp_path / "ok.jpg", quality=75)
  header = images.read_header(tmp_path / "ok.jpg")
  assert (header.format, header.width, header.height, header.mode, header.subsampling) == ("JPEG", 16, 16, "RGB", 2)
  assert header.quantization[0][0] == 8  # the IJG luminance table at quality 75 starts (16 * 50 + 50) // 100
  ok = tmp_path / "ok.png"
  Image.fromarray(RGB).save(ok)
  assert model_card.headers([bomb, ok], 10) == {
    "sampled": 2,
    "of": 2,
    "sizes": {"16x16": 1},
    "formats": {"PNG": 1},
    "skipped": {"pixel limit": 1},
  }
  assert format_audit.inspect(bomb) == {"format": "unreadable", "skipped": "pixel limit"}
  assert processing_plan.median_short_side([bomb, ok]) == 16
  assert not figure_marks.is_our_figure(bomb)


def _tree(root: Path) -> None:
  for rel in [
    "A/1.png",
    "A/sub/2.png",
    "A/sub/deeper/3.jpg",
    "A/.hidden.png",
    "A/.cache/4.png",
    "A/notes.txt",
    "A/Z.png",
    "A/a.png",
    "A/sub-x/5.png",
    "outside/6.png",
  ]:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(b"x")
  os.symlink(root / "outside", root / "A" / "linked_dir")  # pathlib's rglob does not enter it either
  os.symlink(root / "outside" / "6.png", root / "A" / "linked_file.png")
  os.symlink(root / "missing.png", root / "A" / "broken.png")


def test_files_under_equals_rglob_without_hidden_parts(tmp_path):
  _tree(tmp_path)
  folder = tmp_path / "A"
  expected = [
    p
    for p in sorted(folder.rglob("*"))
    if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
  ]
  got = images.files_under(folder)
  assert got == expected
  names = [str(p.relative_to(folder)) for p in got]
  assert "linked_file.png" in names and "sub/deeper/3.jpg" in names and "notes.txt" in names
  assert not any(n.startswith(".") or "/." in n or n.startswith("linked_dir") or n == "broken.png" for n in names)


def test_relative_name_equals_relative_to(tmp_path, monkeypatch):
  _tree(tmp_path)
  for root in (tmp_path, tmp_path / "A", Path(str(tmp_path) + "/")):
    for path in images.files_under(tmp_path / "A"):
      assert images.relative_name(path, root) == str(path.relative_to(root))
  monkeypatch.chdir(tmp_path)
  for path in images.files_under(Path("A")):  # a relative root, also "."
    assert images.relative_name(path, Path(".")) == str(path.relative_to(Path(".")))
    assert images.relative_name(path, Path("A")) == str(path.relative_to(Path("A")))
