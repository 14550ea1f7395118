"""Training: resume after an interruption, 1 vs 4 devices, work-dir safety, non-finite loss."""

from __future__ import annotations

import json
import logging

import jax
import numpy as np
import pytest
from conftest import tiny_folder_config, write_fingerprinted_folders

from freqforensics import bundle, checkpointing, sharding, stats, steps, train, workdir
from freqforensics.data import loading
from freqforensics.errors import UserError


@pytest.fixture
def config(tmp_path):
  c = tiny_folder_config(write_fingerprinted_folders(tmp_path / "src", 24), tmp_path / "data", epochs=4)
  c.train.patience = 10
  return c


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(config, tmp_path, monkeypatch, caplog):
  full = train.train_and_evaluate(config, tmp_path / "full")
  original_save = checkpointing.Checkpointer.save

  def save_then_crash(self, step, *args, **kwargs):
    original_save(self, step, *args, **kwargs)
    if step == 2 * 4:  # global step at the end of epoch 2 (4 steps per epoch)
      raise KeyboardInterrupt  # as if the job were killed right after epoch 2's checkpoint

  monkeypatch.setattr(checkpointing.Checkpointer, "save", save_then_crash)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, tmp_path / "cut")
  assert [r["epoch"] for r in _rows(tmp_path / "cut")] == [1, 2]
  monkeypatch.setattr(checkpointing.Checkpointer, "save", original_save)
  with caplog.at_level(logging.INFO, logger="freqforensics"):
    resumed = train.train_and_evaluate(config, tmp_path / "cut")
  assert "resumed at epoch 2, step 0" in caplog.text
  rows_full, rows_cut = _rows(tmp_path / "full"), _rows(tmp_path / "cut")
  assert [r["epoch"] for r in rows_cut] == [1, 2, 3, 4]
  for a, b in zip(rows_full, rows_cut):
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
  assert resumed["confusion_matrix"] == full["confusion_matrix"]
  assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-6)
  assert (tmp_path / "cut" / "test_metrics.json").is_file()
  # Re-running a finished run trains nothing more and gives the same result.
  again = train.train_and_evaluate(config, tmp_path / "cut")
  assert len(_rows(tmp_path / "cut")) == 4 and again["loss"] == pytest.approx(full["loss"], rel=1e-6)


def test_training_learns_and_restores_the_best_epoch(config, tmp_path):
  config.train.epochs = 6
  m = train.train_and_evaluate(config, tmp_path / "wd")
  rows = _rows(tmp_path / "wd")
  best = min(rows, key=lambda r: r["val_loss"])
  assert m["epoch"] == best["epoch"]
  val = json.loads((tmp_path / "wd" / "val_metrics.json").read_text())
  assert val["loss"] == pytest.approx(best["val_loss"], rel=1e-5)
  assert m["accuracy"] == 1.0 and m["label_names"] == ["A_real", "B_gan"]
  b = bundle.load(tmp_path / "wd" / "bundle")
  assert b.label_names == ("A_real", "B_gan") and b.info["features"] == "dct_log"
  assert b.feature_stats is not None and b.info["input_shape"] == [16, 16, 3]


def test_same_train_step_on_1_and_4_devices(config):
  assert len(jax.devices()) == 4
  prepared = loading.prepare_from_config(config, progress=False)
  fs, _ = stats.feature_stats(prepared, "dct_log", sharding.make_mesh(1), batch_size=8, progress=False)
  src = prepared.source("train")
  batch = {"image": np.stack([src[i]["image"] for i in range(8)]),
           "label": np.array([src[i]["label"] for i in range(8)], np.int32)}
  results = []
  for n in (1, 4):
    mesh = sharding.make_mesh(n)
    graphdef, state, _ = steps.create_state(config, prepared.image_shape, 2)
    state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    step = steps.make_train_step(graphdef, "dct_log", mesh)
    put = sharding.make_put(mesh)
    assert len(put(batch)["image"].sharding.device_set) == n
    for _ in range(3):
      state, sums = step(state, put(batch), fs)
    results.append((jax.tree.map(np.asarray, state), jax.tree.map(float, sums)))
  (s1, m1), (s4, m4) = results
  assert m1["loss"] == pytest.approx(m4["loss"], rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s1, s4)
  # and training really moved the weights
  _, fresh, _ = steps.create_state(config, prepared.image_shape, 2)
  assert not np.allclose(jax.tree.leaves(s1)[0], jax.tree.leaves(jax.tree.map(np.asarray, fresh))[0])


def test_workdir_of_another_config_is_refused_unless_overwrite(config, tmp_path):
  wd = tmp_path / "wd"
  workdir.check(config, wd, overwrite=False)
  (wd / "metrics.jsonl").write_text("")
  (wd / "my_notes.txt").write_text("mine")
  workdir.check(config, wd, overwrite=False)  # same config: resume is fine
  config.model.name = "log1"
  with pytest.raises(UserError, match="holds a run of another config \\(model.name: 'log2' -> 'log1'\\)"):
    workdir.check(config, wd, overwrite=False)
  workdir.check(config, wd, overwrite=True)
  assert not (wd / "metrics.jsonl").exists() and (wd / "my_notes.txt").read_text() == "mine"
  assert json.loads((wd / "config.json").read_text())["model"]["name"] == "log1"


def test_non_finite_loss_stops_with_a_clear_message(config, tmp_path):
  config.train.learning_rate = 1e38
  with pytest.raises(UserError, match="training loss became (nan|inf) in epoch 1: lower train.learning_rate"):
    train.train_and_evaluate(config, tmp_path / "wd")


def test_device_count_follows_the_batch_sizes(config):
  config.train.batch_size = 6
  config.eval.batch_size = 8
  assert steps.num_devices(config) == 2  # 4 devices exist; 6 and 8 both split over 2
  config.num_devices = 4
  with pytest.raises(UserError, match="num_devices=4 does not fit"):
    steps.num_devices(config)
  config.train.batch_size = 8
  assert steps.num_devices(config) == 4


def test_early_stopping_on_a_crafted_validation_curve():
  curve = [1.0, 0.8, 0.79, 0.85, 0.9, 0.7, 0.75, 0.76, 0.77]
  record = {"best_epoch": 0, "best_val_loss": float("inf"), "bad_epochs": 0}
  history = []
  for epoch, loss in enumerate(curve, start=1):
    record = train.early_stopping(record, epoch, loss, patience=3, min_delta=0.02)
    history.append((record["best_epoch"], record["bad_epochs"], record["stopped"]))
    if record["stopped"]:
      break
  # 0.79 is not better than 0.8 by more than 0.02, so epochs 3-5 do not improve: stop after epoch 5.
  assert history == [(1, 0, False), (2, 0, False), (2, 1, False), (2, 2, False), (2, 3, True)]
  record = {"best_epoch": 0, "best_val_loss": float("inf"), "bad_epochs": 0}
  for epoch, loss in enumerate(curve, start=1):
    record = train.early_stopping(record, epoch, loss, patience=3, min_delta=0.0)
  assert record["best_epoch"] == 6 and record["bad_epochs"] == 3 and record["stopped"]


def test_mid_epoch_checkpoint_resumes_at_the_data_position(config, tmp_path, monkeypatch, caplog):
  config.train.checkpoint_every_steps = 1
  full = train.train_and_evaluate(config, tmp_path / "full")
  original_save = checkpointing.Checkpointer.save

  def save_then_crash(self, step, *args, **kwargs):
    original_save(self, step, *args, **kwargs)
    if step == 6:  # epoch 2, step 2 of 4: mid-epoch
      raise KeyboardInterrupt

  monkeypatch.setattr(checkpointing.Checkpointer, "save", save_then_crash)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, tmp_path / "cut")
  monkeypatch.setattr(checkpointing.Checkpointer, "save", original_save)
  with caplog.at_level(logging.INFO, logger="freqforensics"):
    resumed = train.train_and_evaluate(config, tmp_path / "cut")
  assert "resumed at epoch 2, step 2" in caplog.text
  for a, b in zip(_rows(tmp_path / "full"), _rows(tmp_path / "cut")):
    assert a["epoch"] == b["epoch"] and a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
  a = np.load(tmp_path / "full" / "bundle" / "params.npz")
  b = np.load(tmp_path / "cut" / "bundle" / "params.npz")
  for k in a.files:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
  assert resumed["confusion_matrix"] == full["confusion_matrix"]


def test_warmup_cosine_schedule_starts_at_zero_and_reaches_the_peak(config):
  import optax

  config.train.schedule = "warmup_cosine"
  config.train.warmup_epochs = 1.0
  config.train.epochs = 3
  tx = steps.make_optimizer(config, steps_per_epoch=4)
  params = {"w": np.ones(3, np.float32)}
  opt_state = tx.init(params)
  updates = []
  for _ in range(12):
    u, opt_state = tx.update({"w": np.ones(3, np.float32)}, opt_state, params)
    updates.append(float(np.abs(u["w"]).max()))
  # Adam's normalised step is ~lr: 0 at step 0, rising over the 4 warm-up steps to the peak 1e-3,
  # then decaying by the cosine to 0 after 12 steps.
  want = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 4, 12)
  np.testing.assert_allclose(updates, [float(want(i)) for i in range(12)], rtol=1e-3, atol=1e-9)
  assert updates[0] == 0.0 and max(updates) == pytest.approx(1e-3, rel=1e-3)
  config.train.schedule = "linear"
  with pytest.raises(UserError, match="unknown train.schedule"):
    steps.make_optimizer(config, 4)


def test_resnet_resume_restores_batchnorm_and_dropout_state(config, tmp_path, monkeypatch):
  """BatchNorm running statistics and the dropout RNG are part of the checkpoint: resume is exact."""
  config.model.name = "resnet"
  config.train.epochs = 3
  config.train.checkpoint_every_steps = 1
  train.train_and_evaluate(config, tmp_path / "full")
  original_save = checkpointing.Checkpointer.save

  def save_then_crash(self, step, *args, **kwargs):
    original_save(self, step, *args, **kwargs)
    if step == 5:
      raise KeyboardInterrupt

  monkeypatch.setattr(checkpointing.Checkpointer, "save", save_then_crash)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, tmp_path / "cut")
  monkeypatch.setattr(checkpointing.Checkpointer, "save", original_save)
  train.train_and_evaluate(config, tmp_path / "cut")
  a = np.load(tmp_path / "full" / "bundle" / "params.npz")
  b = np.load(tmp_path / "cut" / "bundle" / "params.npz")
  assert any("bn1" in k and "mean" in k for k in a.files)  # running statistics are in the bundle
  for k in a.files:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_a_run_of_an_older_version_without_newer_fields_resumes_only_at_their_defaults(config, tmp_path):
  wd = tmp_path / "wd"
  workdir.check(config, wd, overwrite=False)
  stored = json.loads((wd / "config.json").read_text())
  del stored["data"]["crop"], stored["data"]["max_pixels"]  # fields an older version did not have
  (wd / "config.json").write_text(json.dumps(stored))
  workdir.check(config, wd, overwrite=False)  # at their defaults: the same run
  stored = json.loads((wd / "config.json").read_text())
  del stored["data"]["crop"]
  (wd / "config.json").write_text(json.dumps(stored))
  config.data.crop = "resize"
  with pytest.raises(UserError, match="data.crop: 'center' -> 'resize'"):
    workdir.check(config, wd, overwrite=False)


def test_train_subset_is_class_balanced_reproducible_and_trains(config, tmp_path):
  from freqforensics.data import loading

  prepared = loading.prepare_from_config(config, progress=False)
  full, tag = loading.train_subset(prepared, 1.0, seed=0)
  assert tag == "" and len(full) == prepared.num_examples["train"]
  per_class = {name: len(prepared.class_range("train", k)) for k, name in enumerate(prepared.label_names)}
  for subset, want in ((0.25, {n: round(0.25 * c) for n, c in per_class.items()}), (3.0, dict.fromkeys(per_class, 3))):
    part, tag = loading.train_subset(prepared, subset, seed=1)
    again, _ = loading.train_subset(prepared, subset, seed=1)
    other, _ = loading.train_subset(prepared, subset, seed=2)
    labels = [int(part[i]["label"]) for i in range(len(part))]
    assert {n: labels.count(k) for k, n in enumerate(prepared.label_names)} == want
    assert list(part.indices) == list(again.indices) and list(part.indices) != list(other.indices)
    assert tag == f"_subset{subset}_seed1"
    batch = part.read_batch([0, len(part) - 1])
    np.testing.assert_array_equal(batch["image"][1], full[int(part.indices[-1])]["image"])
  with pytest.raises(UserError, match="train_subset=2.5"):
    loading.train_subset(prepared, 2.5, seed=0)
  config.data.train_subset = 0.5
  metrics = train.train_and_evaluate(config, tmp_path / "wd")
  assert (prepared.path / f"stats_{config.features}_subset0.5_seed{config.seed}.npz").is_file()
  assert sum(map(sum, metrics["confusion_matrix"])) == prepared.num_examples["test"]
