"""Class folders -> array_record: labels, splits, resizing, reuse, and every bad input."""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import write_class_folders
from PIL import Image

from freqforensics.data import images, pipeline, preparation, reader, shards
from freqforensics.errors import UserError

OPTS = preparation.PrepareOptions(image_size=16, channels=3, split=(0.6, 0.2, 0.2))


def test_labels_follow_sorted_folder_names_and_splits_sorted_file_names(make_folders, tmp_path):
  src = make_folders({"C_sngan": 10, "A_real": 10, "B_progan": 10})
  ds = preparation.prepare(src, tmp_path / "data", OPTS, progress=False)
  assert ds.label_names == ("A_real", "B_progan", "C_sngan")
  assert ds.num_examples == {"train": 18, "val": 6, "test": 6}
  assert ds.image_shape == (16, 16, 3)
  meta = ds.metadata
  assert meta["label_names"] == ["A_real", "B_progan", "C_sngan"] and meta["source_dir"] == str(src.resolve())
  test = ds.source("test")
  got = sorted((ex["path"].decode(), int(ex["label"])) for ex in (test[i] for i in range(len(test))))
  want = sorted((f"{c}/img_{i:04d}.png", label) for label, c in enumerate(ds.label_names) for i in (8, 9))
  assert got == want


def test_split_counts_fractions_and_counts():
  assert preparation.split_counts(10, (0.7, 0.1, 0.2), "A") == (7, 1, 2)
  assert preparation.split_counts(11, (0.7, 0.1, 0.2), "A") == (7, 1, 3)  # the remainder goes to test
  assert preparation.split_counts(100, (0.5, 0.1, 0.1), "A") == (50, 10, 10)
  assert preparation.split_counts(50, (30, 5, 10), "A") == (30, 5, 10)
  with pytest.raises(UserError, match="class A has 40 images, fewer than the requested split 30\\+5\\+10=45"):
    preparation.split_counts(40, (30, 5, 10), "A")
  with pytest.raises(UserError, match="sum to more than 1"):
    preparation.split_counts(40, (0.8, 0.2, 0.2), "A")
  assert preparation.split_counts(40, (1, 1, 1), "A") == (1, 1, 1)  # integers are counts
  assert preparation.split_counts(40, (1.0, 0.0, 0.0), "A") == (40, 0, 0)  # floats are fractions


def test_counts_split_and_images_brought_to_size(make_folders, tmp_path):
  src = make_folders({"A_real": 9, "B_gan": 9}, size=(30, 50))  # wide images: centre crop then resize
  ds = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(8, 1, (5, 2, 2)), progress=False)
  assert ds.num_examples == {"train": 10, "val": 4, "test": 4}
  ex = ds.source("train")[0]
  assert ex["image"].shape == (8, 8, 1) and ex["image"].dtype == np.uint8
  original = np.asarray(Image.open(src / ex["path"].decode()).convert("L"))
  want = np.asarray(Image.fromarray(original[:, 10:40]).resize((8, 8), Image.Resampling.LANCZOS, reducing_gap=None))
  np.testing.assert_array_equal(ex["image"][..., 0], want)


def test_images_at_size_are_stored_losslessly(make_folders, tmp_path):
  src = make_folders({"A_real": 5, "B_gan": 5}, size=(16, 16))
  ds = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(16, 3, (3, 1, 1)), progress=False)
  ex = ds.source("val")[0]
  np.testing.assert_array_equal(ex["image"], np.asarray(Image.open(src / ex["path"].decode())))


def test_rerun_reuses_and_changed_inputs_give_a_new_dataset(make_folders, tmp_path):
  src = make_folders({"A_real": 5, "B_gan": 5})
  a = preparation.prepare(src, tmp_path / "data", OPTS, progress=False)
  stamp = (a.path / "dataset_info.json").stat().st_mtime_ns
  b = preparation.prepare(src, tmp_path / "data", OPTS, progress=False)
  assert b.path == a.path and (a.path / "dataset_info.json").stat().st_mtime_ns == stamp
  c = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(8, 3, OPTS.split), progress=False)
  assert c.path != a.path and a.path.exists()


def test_unreadable_and_truncated_images_are_skipped_counted_listed_and_replaced(make_folders, tmp_path):
  src = make_folders({"A_real": 7, "B_gan": 7})
  (src / "A_real" / "img_0000.png").write_bytes(b"not an image at all")
  data = (src / "B_gan" / "img_0001.png").read_bytes()
  (src / "B_gan" / "img_0001.png").write_bytes(data[: len(data) // 2])
  (src / "B_gan" / "notes.txt").write_text("hello")
  ds = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(16, 3, (4, 1, 1)), progress=False)
  # The counts are met from the next usable files in sorted order: the bad ones do not shrink a split.
  assert ds.num_examples == {"train": 8, "val": 2, "test": 2}
  train = ds.source("train")
  got = sorted(train[i]["path"].decode() for i in range(len(train)))
  assert got == [f"A_real/img_{i:04d}.png" for i in (1, 2, 3, 4)] + [f"B_gan/img_{i:04d}.png" for i in (0, 2, 3, 4)]
  assert ds.metadata["skipped"] == 3
  assert ds.metadata["skipped_by_reason"] == {"not an image": 2, "truncated": 1}
  report = reader.read_report(ds.path)
  assert sorted(row["path"] for row in report) == ["A_real/img_0000.png", "B_gan/img_0001.png", "B_gan/notes.txt"]


def test_a_class_short_of_usable_images_names_itself_and_both_numbers(make_folders, tmp_path):
  src = make_folders({"A_real": 6, "B_gan": 6})
  (src / "B_gan" / "img_0003.png").write_bytes(b"")
  with pytest.raises(
    UserError,
    match=r"class B_gan has 5 usable images \(1 of its 6 files skipped, listed in .*"
    r"skipped_files.csv\), fewer than the requested split 4\+1\+1=6",
  ) as e:
    preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(16, 3, (4, 1, 1)), progress=False)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize(
  "case,match",
  [
    ("missing", "does not exist"),
    ("empty", "holds no class folders"),
    ("one_class", "only one class folder"),
    ("no_images", "class folder .*B_gan holds no images"),
    ("too_few", "class B_gan has 3 images, fewer than the requested split"),
  ],
)
def test_bad_sources_give_one_clear_line(case, match, make_folders, tmp_path):
  if case == "missing":
    src = tmp_path / "nope"
  elif case == "empty":
    src = tmp_path / "empty"
    src.mkdir()
  elif case == "one_class":
    src = make_folders({"A_real": 3})
  elif case == "no_images":
    src = make_folders({"A_real": 3})
    (src / "B_gan").mkdir()
    (src / "B_gan" / "readme.txt").write_text("x")
  else:
    src = make_folders({"A_real": 10, "B_gan": 3})
  with pytest.raises(UserError, match=match) as e:
    preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(16, 3, (4, 1, 1)), progress=False)
  assert "\n" not in str(e.value)


def test_open_prepared_refuses_other_directories(tmp_path):
  with pytest.raises(UserError, match="not a prepared dataset"):
    reader.open_prepared(tmp_path)


def test_grayscale_rgba_and_palette_inputs_decode(tmp_path):
  rgba = tmp_path / "a.png"
  Image.fromarray(np.zeros((10, 12, 4), np.uint8)).save(rgba)
  pal = tmp_path / "b.bmp"
  Image.fromarray(np.zeros((10, 12), np.uint8)).convert("P").save(pal)
  jpg = tmp_path / "c.jpg"
  Image.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(jpg)
  for p in (rgba, pal, jpg):
    assert images.load_image(p, 8, 3).shape == (8, 8, 3)
    assert images.load_image(p, 8, 1).shape == (8, 8, 1)


def test_train_batches_reshuffle_per_epoch_deterministically(make_folders, tmp_path):
  src = make_folders({"A_real": 10, "B_gan": 10})
  ds = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(8, 3, (8, 1, 1)), progress=False)
  train = ds.source("train")

  def order(seed, epoch):
    return [tuple(b["image"][:, 0, 0, 0]) for b in pipeline.train_batches(train, 4, seed=seed, epoch=epoch)]

  e1 = order(0, 1)
  assert len(e1) == 4 and e1 == order(0, 1)
  assert e1 != order(0, 2) and e1 != order(1, 1)
  assert sorted(sum(e1, ())) == sorted(int(train[i]["image"][0, 0, 0]) for i in range(16))
  json.dumps(ds.metadata)  # metadata is plain JSON


def _record_work(monkeypatch, name: str, calls: list, crash_at: int = 0):
  """Wraps `shards.<name>`: records the tasks that do work, raises KeyboardInterrupt once, at the `crash_at`-th."""
  original = getattr(shards, name)
  armed = [crash_at > 0]

  def wrapped(task, *args, **kwargs):
    if shards.read_record(task.out) is None:
      calls.append(Path(task.out).name)
      if armed[0] and len(calls) == crash_at:
        armed[0] = False
        raise KeyboardInterrupt
    return original(task, *args, **kwargs)

  monkeypatch.setattr(shards, name, wrapped)


def test_interrupted_preparation_resumes_at_the_first_unfinished_task(make_folders, tmp_path, monkeypatch):
  src = make_folders({"A_real": 12, "B_gan": 12}, size=(8, 8))
  monkeypatch.setattr(preparation, "_CHUNK_FILES", (4, 4))  # at most 4 files per decoding task
  opts = preparation.PrepareOptions(8, 3, (10, 1, 1), num_threads=1, parallel="thread")
  # Per class, tasks never cross a split boundary: files [0, 4), [4, 8), [8, 10) | [10, 11) | [11, 12).
  assert preparation.chunk_bounds(12, (10, 1, 1), 4) == [(0, 4), (4, 8), (8, 10), (10, 11), (11, 12)]
  chunk_names = [f"class{c:04d}-{j:06d}.array_record" for c in (0, 1) for j in range(5)]
  shard_names = [
    f"freqforensics-{s}.array_record-{i:05d}-of-{n:05d}"
    for s, n in (("train", 6), ("val", 2), ("test", 2))
    for i in range(n)
  ]
  decoded, packed = [], []
  _record_work(monkeypatch, "write_chunk", decoded, crash_at=3)
  with pytest.raises(KeyboardInterrupt):
    preparation.prepare(src, tmp_path / "data", opts, progress=False)
  out = next((tmp_path / "data").glob("*"))
  finished = [n for n in chunk_names if shards.read_record(out / ".chunks" / n) is not None]
  assert len(finished) >= 2 and decoded[2] not in finished  # the third task crashed, earlier ones were kept
  decoded.clear()
  _record_work(monkeypatch, "pack_shard", packed, crash_at=2)
  with pytest.raises(KeyboardInterrupt):
    preparation.prepare(src, tmp_path / "data", opts, progress=False)
  assert sorted(decoded) == [n for n in chunk_names if n not in finished]  # only unfinished tasks ran again
  done_shards = [n for n in shard_names if shards.read_record(out / n) is not None]
  assert len(done_shards) >= 1 and packed[1] not in done_shards
  decoded.clear(), packed.clear()
  ds = preparation.prepare(src, tmp_path / "data", opts, progress=False)
  assert decoded == [] and sorted(packed) == sorted(n for n in shard_names if n not in done_shards)
  assert ds.num_examples == {"train": 20, "val": 2, "test": 2}
  paths = sorted(ds.source("train")[i]["path"].decode() for i in range(20))
  assert paths == sorted(f"{c}/img_{i:04d}.png" for c in ("A_real", "B_gan") for i in range(10))
  assert not (ds.path / ".chunks").exists()  # temporary chunk files are gone once the dataset is complete


def test_a_class_whose_images_are_all_unreadable_is_a_clear_error(make_folders, tmp_path):
  src = make_folders({"A_real": 4, "B_gan": 4})
  for i in range(4):
    (src / "B_gan" / f"img_{i:04d}.png").write_bytes(b"broken")
  with pytest.raises(UserError, match=r"class B_gan of .* has no usable image: all 4 of its files were skipped"):
    preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(8, 3, (0.5, 0.25, 0.25)), progress=False)


def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path, monkeypatch):
  import tracemalloc

  from conftest import write_class_folders

  monkeypatch.setattr(preparation, "_CHUNK_FILES", (8, 8))
  peaks = {}
  for n in (20, 200):
    src = write_class_folders(tmp_path / f"src{n}", {"A_real": n, "B_gan": n}, size=(64, 64))
    tracemalloc.start()
    preparation.prepare(
      src, tmp_path / f"data{n}", preparation.PrepareOptions(64, 3, (0.8, 0.1, 0.1), parallel="thread"), progress=False
    )
    peaks[n] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
  # 360 more images are 4.4 MB of pixels; a pipeline that held them all would grow by at least that.
  assert peaks[200] - peaks[20] < 1.5e6, peaks


def test_record_and_in_memory_sources_agree_with_tfds(make_folders, tmp_path):
  import tensorflow_datasets as tfds

  from freqforensics.data import reader

  src = make_folders({"A_real": 6, "B_gan": 6})
  ds = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(8, 3, (4, 1, 1)), progress=False)
  reference = tfds.builder_from_directory(str(ds.path)).as_data_source("train")
  source = ds.source("train")
  memory = reader.maybe_in_memory(source, budget_gb=1.0)
  assert isinstance(source, reader.RecordSource) and isinstance(memory, reader.InMemorySource)
  assert reader.maybe_in_memory(source, budget_gb=0.0) is source  # over budget: stays on disk
  for i in range(len(reference)):
    for s in (source, memory):
      assert np.array_equal(s[i]["image"], reference[i]["image"]) and int(s[i]["label"]) == int(reference[i]["label"])
      assert s[i]["path"] == reference[i]["path"]
  idx = [5, 0, 3]
  a, b = source.read_batch(idx), memory.read_batch(idx)
  assert a["image"].shape == (3, 8, 8, 3) and np.array_equal(a["image"], b["image"])
  assert np.array_equal(a["label"], b["label"]) and a["label"].dtype == np.int32


def test_a_subset_of_the_class_folders_makes_its_own_dataset(make_folders, tmp_path):
  src = make_folders({"A_real": 5, "B_nearest": 5, "C_bilinear": 5})
  both = preparation.prepare(
    src,
    tmp_path / "data",
    preparation.PrepareOptions(8, 3, (3, 1, 1)),
    progress=False,
    classes=("A_real", "C_bilinear"),
  )
  assert both.label_names == ("A_real", "C_bilinear") and both.num_examples == {"train": 6, "val": 2, "test": 2}
  test = both.source("test")
  assert sorted(test[i]["path"].decode().split("/")[0] for i in range(len(test))) == ["A_real", "C_bilinear"]
  every = preparation.prepare(src, tmp_path / "data", preparation.PrepareOptions(8, 3, (3, 1, 1)), progress=False)
  assert every.path != both.path and len(every.label_names) == 3
  with pytest.raises(UserError, match="data.classes names folders that .* does not have \\(D_gan\\)"):
    preparation.prepare(
      src, tmp_path / "data", preparation.PrepareOptions(8, 3, (3, 1, 1)), progress=False, classes=("A_real", "D_gan")
    )


def test_skipped_files_report_reads_back_any_file_name(tmp_path):
  src = write_class_folders(tmp_path / "src", {"A_real": 6, "B_gan": 6}, size=(16, 16))
  odd = ["new\nline.png", "tab\there.png", 'quote",comma.png']
  for name in odd:
    (src / "B_gan" / name).write_bytes(b"not an image")
  ds = preparation.prepare_to(
    src, tmp_path / "out", preparation.PrepareOptions(16, 3, (0.5, 0.25, 0.25)), progress=False
  )
  rows = reader.read_report(ds.path)
  assert sorted(r["path"] for r in rows) == sorted(f"B_gan/{n}" for n in odd)
  assert {r["reason"] for r in rows} == {"not an image"}


def test_overwrite_deletes_only_the_files_preparation_and_training_write_by_exact_name(make_folders, tmp_path):
  src = make_folders({"A_real": 10, "B_gan": 10})
  out = tmp_path / "prepared"
  preparation.prepare_to(src, out, OPTS, progress=False)
  preparation.dataset_record(out).write_with(  # as training caches its statistics there
    "stats_dct_log.npz", lambda tmp: np.savez(tmp, kind=np.asarray("dct_log"), mean=np.zeros(3), var=np.ones(3))
  )
  mine = {  # a user's files, named like what the project writes
    "stats_mine.npz": None,
    "stats_dct_log_by_hand.npz": None,
    "my.labels.txt": b"cat\ndog\n",
    ".notes.tmp1": b"hidden notes",
  }
  for name in ("stats_mine.npz", "stats_dct_log_by_hand.npz"):
    np.savez(out / name, mean=np.arange(3.0))
  for name, data in mine.items():
    if data is not None:
      (out / name).write_bytes(data)
  before = {name: (out / name).read_bytes() for name in mine}
  ds = preparation.prepare_to(
    src, out, dataclasses.replace(OPTS, split=(0.8, 0.1, 0.1)), overwrite=True, progress=False
  )
  assert ds.num_examples == {"train": 16, "val": 2, "test": 2}
  assert {name: (out / name).read_bytes() for name in mine} == before
  assert not (out / "stats_dct_log.npz").exists()  # statistics of the replaced dataset


def _evil_module(folder: Path) -> tuple[str, Path]:
  """A module `qa_evilmod_<random>` in `folder` that writes a marker file when imported: (its name, the marker)."""
  name = f"qa_evilmod_{uuid.uuid4().hex[:12]}"
  marker = folder / f"{name}.imported"
  (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
  return name, marker


def _edit_json(path: Path, edit) -> None:
  value = json.loads(path.read_text())
  edit(value)
  path.write_text(json.dumps(value))


@pytest.mark.parametrize(
  "file,edit",
  [  # each names the module's class where tfds would import it
    ("features.json", lambda f, cls: f["featuresDict"]["features"]["path"].update(pythonClassName=cls)),
    ("features.json", lambda f, cls: f.update(pythonClassName=cls)),
    ("features.json", lambda f, cls: (f.clear(), f.update(type=cls, content={}))),  # tfds' legacy form
    ("dataset_info.json", lambda f, cls: f.update(features={"pythonClassName": cls, "text": {}})),
  ],
)
def test_a_dataset_naming_a_module_is_refused_before_tfds_imports_it(make_folders, tmp_path, monkeypatch, file, edit):
  src = make_folders({"A_real": 5, "B_gan": 5}, size=(16, 16))
  path = preparation.prepare(src, tmp_path / "data", OPTS, progress=False).path
  name, marker = _evil_module(path)
  monkeypatch.syspath_prepend(str(path))  # where an import of that name would find it
  _edit_json(path / file, lambda f: edit(f, f"{name}.Text"))
  with pytest.raises(UserError, match="is not a dataset prepared by freqforensics") as e:
    reader.open_prepared(path)
  assert "\n" not in str(e.value)
  assert name not in sys.modules and not marker.exists()


@pytest.mark.parametrize(
  "file,edit,needle",
  [
    ("features.json", lambda f: f["featuresDict"]["features"]["image"]["tensor"].update(dtype="float32"), "spec of"),
    ("features.json", lambda f: f["featuresDict"]["features"]["image"]["tensor"]["shape"].update(dimensions=["9"]), ""),
    ("features.json", lambda f: f["featuresDict"]["features"].pop("path"), "spec of 16x16x3 images with 2 labels"),
    ("metadata.json", lambda f: f.update(label_names=["A_real", "B_gan", "C"]), "spec of"),
    ("metadata.json", lambda f: f.pop("image_size"), "lacks its image_size"),
    ("dataset_info.json", lambda f: f.update(name=7), "not a tfds description"),
  ],
)
def test_a_dataset_description_unlike_the_one_preparation_writes_is_refused(make_folders, tmp_path, file, edit, needle):
  src = make_folders({"A_real": 5, "B_gan": 5}, size=(16, 16))
  path = preparation.prepare(src, tmp_path / "data", OPTS, progress=False).path
  _edit_json(path / file, edit)
  with pytest.raises(UserError, match=f"not a dataset prepared by freqforensics .*{needle}"):
    reader.open_prepared(path)


def test_a_dataset_whose_features_json_is_not_json_is_one_line(make_folders, tmp_path):
  src = make_folders({"A_real": 5, "B_gan": 5}, size=(16, 16))
  path = preparation.prepare(src, tmp_path / "data", OPTS, progress=False).path
  (path / "features.json").write_text("[" * 100_000)  # deeper than json's recursion limit
  with pytest.raises(UserError, match="features.json cannot be read"):
    reader.open_prepared(path)
