"""The cross-generator layout: `ROOT/<generator>/[<subset>/]{0_real,1_fake}/`, with and without subsets."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_class_folders

from freqforensics.data import protocol
from freqforensics.errors import UserError


def _pair(folder: Path, n_real: int, n_fake: int, seed: int = 0) -> None:
  write_class_folders(folder, {"0_real": n_real, "1_fake": n_fake}, size=(8, 8), seed=seed)


def test_generators_with_and_without_subsets(tmp_path):
  root = tmp_path / "test"
  _pair(root / "stylegan", 3, 2)  # no subsets
  _pair(root / "progan" / "airplane", 2, 2, seed=1)  # ForenSynths' object-class subsets
  _pair(root / "progan" / "cat", 1, 3, seed=2)
  (root / "progan" / "cat" / "1_fake" / ".DS_Store").write_text("x")  # the listing rule applies
  (root / "README.txt").write_text("beside the generators: not data")
  assert protocol.is_layout(root) and not protocol.is_layout(root / "progan" / "cat" / "0_real")
  got = protocol.read_layout(root)
  assert list(got) == ["progan", "stylegan"]
  progan = got["progan"]
  assert progan.class_names == ("0_real", "1_fake") and progan.root == root / "progan"
  assert [p.relative_to(root).as_posix() for p in progan.files["0_real"]] == [
    "progan/airplane/0_real/img_0000.png",
    "progan/airplane/0_real/img_0001.png",
    "progan/cat/0_real/img_0000.png",
  ]
  assert len(progan.files["1_fake"]) == 5 and [r for _, r in progan.skipped] == ["hidden"]
  assert (len(got["stylegan"].files["0_real"]), len(got["stylegan"].files["1_fake"])) == (3, 2)
  assert protocol.subsets(root) == {"progan": ["airplane", "cat"], "stylegan": []}


def test_a_bare_pair_is_one_generator(tmp_path):
  _pair(tmp_path / "biggan", 2, 2)
  got = protocol.read_layout(tmp_path / "biggan")
  assert list(got) == ["biggan"] and got["biggan"].root == tmp_path / "biggan"


def test_class_folders_are_not_the_layout_and_gaps_are_named(tmp_path):
  write_class_folders(tmp_path / "classes", {"A_real": 2, "B_gan": 2}, size=(8, 8))
  assert not protocol.is_layout(tmp_path / "classes")
  with pytest.raises(UserError, match="holds no generator folders"):
    protocol.read_layout(tmp_path / "classes")
  root = tmp_path / "test"
  _pair(root / "gan_a", 2, 2)
  write_class_folders(root / "gan_b", {"0_real": 2}, size=(8, 8))  # no fakes
  with pytest.raises(UserError, match="generator gan_b has no fake images"):
    protocol.read_layout(root)
  write_class_folders(root / "gan_b", {"1_fake": 1}, size=(8, 8))
  write_class_folders(root / "notes", {"misc": 1}, size=(8, 8))
  with pytest.raises(UserError, match=r"notes has neither 0_real/ and 1_fake/"):
    protocol.read_layout(root)


def test_what_the_layout_would_leave_out_or_count_twice_is_refused_with_the_folder_named(tmp_path):
  # A generator with both its own pair and subset folders: the subsets' images would be left out.
  root = tmp_path / "both"
  _pair(root / "gan_a", 2, 2)
  _pair(root / "gan_a" / "cats", 2, 2, seed=1)
  with pytest.raises(UserError, match=r"gan_a holds 0_real/ or 1_fake/ and also the folders cats"):
    protocol.read_layout(root)
  # A bare ROOT/{0_real,1_fake} beside generator folders: the generators would be left out.
  root = tmp_path / "bare"
  _pair(root, 2, 2)
  _pair(root / "gan_b", 2, 2, seed=1)
  with pytest.raises(UserError, match=r"bare holds 0_real/ or 1_fake/ and also the folders gan_b"):
    protocol.read_layout(root)
  # Class folders, one with a sub-folder named 0_real: its other images belong to neither class.
  root = tmp_path / "classes"
  write_class_folders(root, {"A_real": 2, "B_gan": 2}, size=(8, 8))
  write_class_folders(root / "A_real", {"0_real": 1, "1_fake": 1}, size=(8, 8))
  assert protocol.is_layout(root)
  with pytest.raises(UserError, match=r"A_real holds 0_real/ or 1_fake/ and also images beside them"):
    protocol.read_layout(root)
  # A generator with a subset beside the ones holding a pair: its images would be left out.
  root = tmp_path / "subsets"
  _pair(root / "progan" / "cat", 2, 2)
  write_class_folders(root / "progan" / "dog", {"real": 1}, size=(8, 8))
  with pytest.raises(UserError, match=r"dog has neither 0_real/ nor 1_fake/ beside the subsets of .*progan"):
    protocol.read_layout(root)


def test_links_to_folders_are_not_followed_at_any_level(tmp_path):
  root = tmp_path / "test"
  _pair(root / "gan_a", 2, 2)
  _pair(root / "gan_b", 3, 3, seed=1)
  (root / "again").symlink_to(root / "gan_a")  # the same images a second time in the mean
  with pytest.raises(UserError, match=r"again is a link to a folder: the cross-generator layout follows no links"):
    protocol.read_layout(root)
  (root / "again").unlink()
  (root / "gan_b" / "loop").symlink_to(root)  # a subset-level link back to ROOT
  with pytest.raises(UserError, match=r"gan_b/loop is a link to a folder"):
    protocol.read_layout(root)
  (root / "gan_b" / "loop").unlink()
  _pair(tmp_path / "elsewhere", 1, 1)
  (root / "gan_c").mkdir()
  (root / "gan_c" / "0_real").symlink_to(tmp_path / "elsewhere" / "0_real")
  _pair(root / "gan_c", 0, 2)
  with pytest.raises(UserError, match=r"gan_c/0_real is a link to a folder"):
    protocol.read_layout(root)
  (root / "gan_c" / "0_real").unlink()
  write_class_folders(root / "gan_c", {"0_real": 2}, size=(8, 8))
  got = protocol.read_layout(root)  # no links left: every generator once
  assert {k: len(v.files["0_real"]) for k, v in got.items()} == {"gan_a": 2, "gan_b": 3, "gan_c": 2}


def test_a_generator_whose_fakes_are_all_too_small_is_named_with_the_size(tmp_path):
  from freqforensics.data import preparation

  root = tmp_path / "test"
  _pair(root / "gan_ok", 2, 2)
  write_class_folders(root / "gan_small", {"0_real": 2}, size=(8, 8))
  write_class_folders(root / "gan_small", {"1_fake": 3}, size=(4, 4))  # below the 8x8 crop: never upsampled
  folders = protocol.read_layout(root)["gan_small"]
  options = preparation.PrepareOptions(8, 3, (0.0, 0.0, 1.0))
  with pytest.raises(UserError) as e:
    preparation.prepare_to(folders, tmp_path / "prepared", options, progress=False)
  assert f"class 1_fake of {root / 'gan_small'} has no usable image: all 3 of its files were skipped" in str(e.value)
  assert "too small: 3" in str(e.value) and "4x4 pixels" in str(e.value) and "target size 8" in str(e.value)
