"""Stand-ins of the paper's data sets: their layout and geometry, and the configs' crops recover the
synthetic images exactly; one paper config end to end on its stand-in."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from freqforensics.data import preparation
from freqforensics.generators import standins

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
  "layout,size,raw", [("celeba", 128, (218, 178)), ("lsun", 48, (48, 64)), ("ffhq", 32, (32, 32))]
)
def test_standin_layout_geometry_and_crop_recover_the_synthetic_images(tmp_path, layout, size, raw):
  out = standins.write(layout, tmp_path / layout, num_per_class=3, image_size=size, progress=False)
  spec = standins.LAYOUTS[layout]
  assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.is_dir()) == list(spec.classes)
  crop = _paper_config(layout).data.crop
  ds = preparation.prepare_to(
    out, tmp_path / "prepared", preparation.PrepareOptions(size, 3, (1, 1, 1), crop=crop), progress=False
  )
  assert ds.label_names == spec.classes and ds.metadata["skipped"] == 0
  train = ds.source("train")
  for i in range(len(train)):
    ex = train[i]
    rel = Path(ex["path"].decode())
    assert np.asarray(Image.open(out / rel)).shape[:2] == raw  # the data set's raw geometry
    source = spec.sources[spec.classes.index(rel.parts[0])]
    original = np.asarray(Image.open(out / ".synthetic" / source / rel.name))
    np.testing.assert_array_equal(ex["image"], original)  # the crop cuts exactly the synthetic image


def _paper_config(layout: str, model: str = "log2", arg: str | None = None):
  spec = importlib.util.spec_from_file_location(f"{layout}_{model}", ROOT / "configs" / f"{layout}_{model}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_paper_configs_switch_features_and_refuse_unknown_arguments():
  c = _paper_config("lsun", "cnn", "pixel")
  assert (c.features, c.model.name, c.data.crop, c.data.split) == ("pixel", "cnn", "center", (100000, 20000, 30000))
  f = _paper_config("ffhq", "log2", None)
  assert (f.data.image_size, f.data.crop, f.data.split) == (1024, "none", (10000, 1000, 5000))
  assert f.data.classes == standins.LAYOUTS["ffhq"].classes  # the class folders the config names
  with pytest.raises(ValueError, match="unknown config argument 'big'"):
    _paper_config("celeba", "log2", "tiny,big")


def test_ffhq_config_tiny_runs_end_to_end_on_its_standin(tmp_path):
  from freqforensics import train

  spec = importlib.util.spec_from_file_location("ffhq_log2", ROOT / "configs" / "ffhq_log2.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("tiny")
  c.data.data_dir, c.progress = str(tmp_path / "data"), False
  c.data.synthetic.num_per_class = 16
  metrics = train.train_and_evaluate(c, tmp_path / "wd")
  assert metrics["label_names"] == ["0_ffhq", "1_stylegan"]
  assert sum(map(sum, metrics["confusion_matrix"])) == 8  # 20% of 2 x 16 images
