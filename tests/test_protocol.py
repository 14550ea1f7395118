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
