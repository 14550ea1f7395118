"""Format matching: every class through the same JPEG step before it is stored, recorded in the dataset and
the bundle, applied at classify time when asked; a dataset prepared without it keeps its fingerprint."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_folder_config, write_fingerprinted_folders
from PIL import Image

from freqforensics import bundle, defaults
from freqforensics.data import format_matching, images, preparation
from freqforensics.errors import UserError


def _round_trip(path: Path, quality: int) -> np.ndarray:
  """What the test expects: the file decoded to RGB, saved as JPEG at `quality` by Pillow, decoded again."""
  buf = io.BytesIO()
  Image.open(path).convert("RGB").save(buf, format="JPEG", quality=quality)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _biased_folders(root: Path, n: int = 6, size: int = 16) -> Path:
  """Reals as JPEG (quality 70), fakes as PNG, all at `size`: the shortcut the option removes."""
  rng = np.random.default_rng(0)
  for name, ext in (("A_real", ".jpg"), ("B_gan", ".png")):
    (root / name).mkdir(parents=True)
    for i in range(n):
      Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i}{ext}", quality=70)
  return root


def test_specs_are_checked_and_normalised():
  assert format_matching.check("") == "" and format_matching.check("JPEG:90") == "jpeg:90"
  assert format_matching.check("jpeg:65-100") == "jpeg:65-100" and format_matching.check("jpeg:80-80") == "jpeg:80"
  for bad in ("png", "jpeg", "jpeg:0", "jpeg:101", "jpeg:90-80", "jpeg:9x"):
    with pytest.raises(UserError, match=r"data.match_format=.*jpeg:Q .*jpeg:LO-HI"):
      format_matching.check(bad)
  c = defaults.base_config()
  c.data.match_format = "webp:80"
  with pytest.raises(UserError, match="data.match_format='webp:80' is not valid"):
    defaults.validate(c)


def test_matched_prepare_stores_every_class_after_the_same_jpeg_step(tmp_path):
  src = _biased_folders(tmp_path / "src")
  options = preparation.PrepareOptions(16, 3, (2, 2, 2), match_format="jpeg:80")
  ds = preparation.prepare(src, tmp_path / "data", options, progress=False)
  assert ds.metadata["match_format"] == "jpeg:80"
  seen = set()
  for split in ("train", "val", "test"):
    source = ds.source(split)
    for i in range(len(source)):
      ex = source[i]
      rel = ex["path"].decode()
      np.testing.assert_array_equal(ex["image"], _round_trip(src / rel, 80), err_msg=rel)
      seen.add(rel.split("/")[0])
  assert seen == {"A_real", "B_gan"}
  # The audit still describes the source files (what the option had to match).
  assert ds.metadata["audit"]["classes"]["A_real"]["format"] == {"JPEG": 6}


def test_a_quality_range_draws_one_quality_per_image_the_same_for_every_run(tmp_path):
  src = _biased_folders(tmp_path / "src", n=8)
  options = preparation.PrepareOptions(16, 3, (1.0, 0.0, 0.0), match_format="jpeg:50-95")
  a = preparation.prepare_to(src, tmp_path / "a", options, progress=False)
  b = preparation.prepare_to(src, tmp_path / "b", options, progress=False)
  train_a, train_b = a.source("train"), b.source("train")
  found = {}
  for i in range(len(train_a)):
    ex = train_a[i]
    rel = ex["path"].decode()
    np.testing.assert_array_equal(ex["image"], train_b[i]["image"])  # the same draw in another run
    matches = [q for q in range(50, 96) if np.array_equal(ex["image"], _round_trip(src / rel, q))]
    assert matches, rel  # some quality in the range, applied to reals and fakes alike
    found[rel] = matches
  assert len({m[0] for m in found.values()}) > 3  # the qualities vary from image to image


def test_the_fingerprint_without_matching_is_the_one_from_before_the_option(tmp_path):
  src = _biased_folders(tmp_path / "src")
  options = preparation.PrepareOptions(16, 3, (2, 2, 2))
  folders = images.list_class_folders(src)
  h = hashlib.sha256()  # the fingerprint as it was defined before format matching existed
  h.update(
    json.dumps(
      {"v": 3, "size": 16, "channels": 3, "split": [2, 2, 2], "crop": "center", "max_pixels": 50_000_000}
    ).encode()
  )
  for name in ("A_real", "B_gan"):
    for path in sorted((src / name).iterdir()):
      st = path.stat()
      h.update(f"{name}/{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  assert preparation.fingerprint(folders, options) == h.hexdigest()
  matched = preparation.PrepareOptions(16, 3, (2, 2, 2), match_format="jpeg:80")
  assert preparation.fingerprint(folders, matched) != h.hexdigest()
  with pytest.raises(UserError, match="match_format"):
    preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(16, 3, (2, 2, 2), match_format="jpeg:0"))


def test_the_bundle_records_it_and_classify_applies_it_when_asked(tmp_path):
  from freqforensics import train
  from freqforensics.data import decode
  from freqforensics.evaluation import inference

  src = write_fingerprinted_folders(tmp_path / "src", 12)
  c = tiny_folder_config(src, tmp_path / "data", split=(8, 2, 2), epochs=1)
  c.data.match_format = "jpeg:60-90"
  train.train_and_evaluate(c, tmp_path / "wd")
  info = json.loads((tmp_path / "wd" / "bundle" / "bundle.json").read_text())
  assert info["match_format"] == "jpeg:60-90"
  old = {k: v for k, v in info.items() if k != "match_format"}  # a bundle from before the option
  assert bundle.BundleInfo.from_json(tmp_path / "wd" / "bundle", old).to_json() == dict(old, match_format="")
  with pytest.raises(UserError, match="damaged or edited.*match_format"):
    bundle.BundleInfo.from_json(tmp_path / "wd" / "bundle", dict(info, match_format="jpeg:200"))

  clf = inference.load(tmp_path / "wd")
  files, _ = decode.collect_files([src])
  names = decode.relative_names([src], files)
  assert names[src / "A_real" / "img_0003.png"] == "A_real/img_0003.png"
  matching = clf.matching(names)
  # The prepared training images are what classify --match_format gives for the same files.
  from freqforensics.data import reader

  prepared = reader.open_prepared(json.loads((tmp_path / "wd" / "bundle" / "bundle.json").read_text())["dataset"])
  train_split = prepared.source("train")
  for i in range(len(train_split)):
    ex = train_split[i]
    path = src / ex["path"].decode()
    np.testing.assert_array_equal(matching.prepare_file(path), ex["image"])
  plain = clf.prepare_file(src / "A_real" / "img_0000.png")  # without --match_format: as decoded
  np.testing.assert_array_equal(plain, np.asarray(Image.open(src / "A_real" / "img_0000.png")))
  unmatched = inference.Classifier(bundle=clf.bundle, _placed=clf._placed)
  unmatched.bundle.info = dataclasses.replace(unmatched.bundle.info, match_format="")  # as a bundle from before it
  with pytest.raises(UserError, match="trained without format matching"):
    unmatched.matching(names)
