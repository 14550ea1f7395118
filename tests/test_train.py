"""Training: resume after an interruption, 1 vs 4 devices, work-dir safety, non-finite loss."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from freqforensics import bundle, checkpointing, train
from freqforensics.errors import UserError


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
  assert b.label_names == ("A_real", "B_gan") and b.info.features == "dct_log"
  assert b.feature_stats is not None and b.info.input_shape == (16, 16, 3)


def test_non_finite_loss_stops_with_a_clear_message(config, tmp_path):
  config.train.learning_rate = 1e38
  with pytest.raises(UserError, match="training loss became (nan|inf) in epoch 1: lower train.learning_rate"):
    train.train_and_evaluate(config, tmp_path / "wd")


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
