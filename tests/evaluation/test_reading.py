"""Reading natively: the rule a bundle stores or a caller gives, scores that are the aggregate of patches
scored one at a time, pixels that reach the model untouched, and bundles from before it read as before."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from freqforensics import bundle, models
from freqforensics.data import images, patches
from freqforensics.errors import UserError
from freqforensics.evaluation import aggregate, batches, inference, predictions, reading

SIDE = 16


def _bundle(tmp_path, outputs: int = 1, **read) -> bundle.BundleInfo:
  """A tiny pixel-feature `log2` bundle (random weights) with the reading fields `read`."""
  rng = np.random.default_rng(outputs)
  model = models.create_model("log2", (SIDE, SIDE, 3), outputs, seed=1)
  model.dense.kernel.value = rng.normal(size=model.dense.kernel.value.shape).astype(np.float32) * 0.1
  labels = ["A_real", "B_gan"] if outputs == 1 else [f"c{k}" for k in range(outputs)]
  info = bundle.BundleInfo("log2", "pixel", (SIDE, SIDE, 3), outputs, tuple(labels), **read)
  bundle.save(tmp_path / "bundle", model, info, None)
  return info


def _png(path, pixels: np.ndarray):
  Image.fromarray(pixels).save(path)
  return path


def test_a_bundle_from_before_reads_by_resizing_and_writes_no_reading_keys(tmp_path):
  info = _bundle(tmp_path)
  written = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
  assert not {"read", "aggregate", "patch_stride", "max_patches"} & set(written)
  clf = inference.load(tmp_path)
  assert clf.reading == reading.Reading("resize", "mean", SIDE, patches.DEFAULT_MAX_PATCHES)
  big = _png(tmp_path / "big.png", np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8))
  got = inference.predict_files(clf, [big])
  # today's path: the centre crop and its resize, one image per file, in a batch padded to 64 as before
  want = clf.predict(batches.padded(images.load_image(big, SIDE, 3, crop="center")[None], 64))[:1]
  np.testing.assert_array_equal(got.probs, want)
  assert got.patches == [1]
  assert info.to_json() == written


def test_a_native_bundle_stores_its_rule_and_a_caller_overrides_it(tmp_path):
  info = _bundle(tmp_path, read="native", aggregate="topk_mean:2", patch_stride=8, max_patches=9)
  written = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
  assert [written[k] for k in ("read", "aggregate", "patch_stride", "max_patches")] == ["native", "topk_mean:2", 8, 9]
  assert bundle.BundleInfo.from_json(tmp_path / "bundle", written) == info
  assert inference.load(tmp_path).reading == reading.Reading("native", "topk_mean:2", 8, 9)
  clf = inference.load(tmp_path, read="native", aggregate="max", patch_stride=16)
  assert clf.reading == reading.Reading("native", "max", 16, 9)


@pytest.mark.parametrize(
  "given,needle",
  [
    ({"aggregate": "median"}, "unknown aggregation rule 'median'"),
    ({"patch_stride": 17}, "patch_stride=17 must lie in 1..16"),
    ({"patch_stride": 0}, "patch_stride=0 must lie in 1..16"),
    ({"max_patches": 0}, "max_patches=0 must be a positive integer"),
    ({"read": "crop"}, "read='crop' is not one of native, resize"),
    ({"read": "resize", "aggregate": "max"}, "aggregate apply to native reading only"),
  ],
)
def test_bad_reading_rules_are_one_line_errors(tmp_path, given, needle):
  info = _bundle(tmp_path)
  with pytest.raises(UserError, match=needle) as e:
    reading.of(info, **{"read": "native", **given})
  assert "\n" not in str(e.value)


def test_a_bundle_json_with_a_bad_rule_is_refused(tmp_path):
  _bundle(tmp_path)
  path = tmp_path / "bundle" / "bundle.json"
  path.write_text(json.dumps(dict(json.loads(path.read_text()), read="native", aggregate="median")))
  with pytest.raises(UserError, match="unknown aggregation rule"):
    bundle.load(tmp_path / "bundle")


@pytest.mark.parametrize("outputs,rule", [(1, "mean"), (1, "max"), (1, "topk_mean:3"), (3, "mean"), (3, "topk_mean:2")])
def test_the_score_is_the_aggregate_of_patches_scored_one_at_a_time(tmp_path, outputs, rule):
  _bundle(tmp_path, outputs)
  rng = np.random.default_rng(2)
  files = [
    _png(tmp_path / f"{h}x{w}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    for h, w in ((40, 27), (16, 16), (17, 50))
  ]
  small = _png(tmp_path / "small.png", rng.integers(0, 256, (15, 400, 3), dtype=np.uint8))
  clf = inference.load(tmp_path, read="native", aggregate=rule, patch_stride=5)
  got = inference.predict_files(clf, [*files, small], batch_size=4)  # patches of several files in one batch
  assert got.paths == files and got.failed == [
    (small, f"cannot use {small}: is 400x15 pixels, below the model's side 16 (images are never upsampled)")
  ]
  for path, probs, n in zip(files, got.probs, got.patches):
    pixels = np.asarray(Image.open(path))
    g = patches.grid(*pixels.shape[:2], SIDE, 5)
    one_at_a_time = np.stack([clf.outputs(pixels[None, y : y + SIDE, x : x + SIDE])["logits"][0] for y, x in g.corners])
    assert n == len(g.corners) == g.total
    np.testing.assert_allclose(
      probs, clf.calibrated(aggregate.logits(one_at_a_time, rule)[None])[0], rtol=1e-5, atol=1e-6
    )


def test_a_nyquist_trace_reaches_the_model_untouched(tmp_path, monkeypatch):
  """A one-pixel checkerboard (all its energy at the Nyquist frequency) goes through classify's native path:
  every patch the model is given is the file's pixels, exactly; any resize on the way would blur it."""
  _bundle(tmp_path)
  yy, xx = np.mgrid[:128, :192]
  board = np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[..., None], 3, axis=-1)
  path = _png(tmp_path / "board.png", board)
  clf = inference.load(tmp_path, read="native")
  given = []
  real_outputs = clf.outputs
  monkeypatch.setattr(clf, "outputs", lambda batch: (given.append(np.array(batch)), real_outputs(batch))[1])
  rows = tmp_path / "rows.jsonl"
  with rows.open("w") as stream:
    writer = predictions.RowWriter(stream, "jsonl", clf.detector, native=True, patch_logits=True)
    predictions.classify_files(clf, [path], writer, batch_size=7, progress=False)
  record = json.loads(rows.read_text())
  corners = record["patch_corners"]
  assert record["patches"] == len(corners) == (128 // SIDE) * (192 // SIDE)
  fed = np.concatenate(given)[: len(corners)]  # (the last batch's padding rows follow)
  for patch, (y, x) in zip(fed, corners):
    np.testing.assert_array_equal(patch, board[y : y + SIDE, x : x + SIDE])
  assert (np.abs(np.diff(fed.astype(int), axis=1)) == 255).all()  # still alternating at every pixel
  np.testing.assert_allclose(
    aggregate.logits(np.array(record["patch_logits"])), clf.outputs(fed)["logits"].mean(0), rtol=1e-5
  )


def test_prepare_file_gives_the_patches_reading_natively(tmp_path):
  _bundle(tmp_path)
  pixels = np.random.default_rng(3).integers(0, 256, (20, 33, 3), dtype=np.uint8)
  path = _png(tmp_path / "a.png", pixels)
  clf = dataclasses.replace(inference.load(tmp_path), reading=reading.Reading("native", "mean", SIDE, 256))
  got = clf.prepare_file(path)
  assert got.shape == (6, SIDE, SIDE, 3)
  np.testing.assert_array_equal(got, patches.read(pixels, SIDE).images)
