"""A run's work dir: another config is refused unless --overwrite; an older run resumes at new fields' defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import killed_writer

from freqforensics import workdir
from freqforensics.errors import UserError


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


def test_a_run_from_before_operating_points_resumes_at_their_defaults(config, tmp_path):
  wd = tmp_path / "wd"
  workdir.check(config, wd, overwrite=False)
  stored = json.loads((wd / "config.json").read_text())
  for key in ("threshold", "outlier_fpr", "outlier_score"):  # the fields this version added
    del stored["eval"][key]
  del stored["data"]["real_class"]
  (wd / "config.json").write_text(json.dumps(stored))
  workdir.check(config, wd, overwrite=False)
  config.eval.threshold = "balanced"
  with pytest.raises(UserError, match="eval.threshold: 'fpr:0.05' -> 'balanced'"):
    workdir.check(config, wd, overwrite=False)


def _files(root) -> dict[str, bytes]:
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
  "other_config",
  [
    {"model_type": "bert", "hidden_size": 768, "architectures": ["BertModel"]},
    # our core keys, but a section with keys no freqforensics config has
    {
      "seed": 0,
      "model": {"name": "resnet"},
      "data": {"image_size": 3},
      "train": {"epochs": 1, "batch_size": 2, "gpus": 8},
    },
  ],
)
def test_another_tools_folder_with_a_config_json_is_never_taken_for_a_run(config, tmp_path, other_config):
  wd = tmp_path / "other_tool"
  (wd / "bundle").mkdir(parents=True)
  (wd / "config.json").write_text(json.dumps(other_config))
  (wd / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
  (wd / "bundle" / "params.npz").write_bytes(b"their weights")
  (wd / "bundle" / "stats_x.npz").write_bytes(b"their statistics")
  before = _files(wd)
  for overwrite in (False, True):
    with pytest.raises(UserError, match="not a freqforensics run config"):
      workdir.check(config, wd, overwrite=overwrite)
    assert _files(wd) == before  # nothing deleted, and no ownership record written


def test_a_refused_overwrite_of_an_older_run_claims_nothing(config, tmp_path):
  wd = tmp_path / "wd"
  workdir.check(config, wd, overwrite=False)
  workdir.record(wd).path.unlink()  # a run of a version without ownership records
  (wd / "bundle").mkdir()
  (wd / "bundle" / "notes.txt").write_text("mine")
  before = _files(wd)
  config.model.name = "log1"
  with pytest.raises(UserError, match="bundle/notes.txt inside it was not written by freqforensics"):
    workdir.check(config, wd, overwrite=True)
  assert _files(wd) == before and not workdir.record(wd).exists()


def test_a_damaged_config_json_without_a_record_is_never_replaced(config, tmp_path):
  wd = tmp_path / "wd"
  wd.mkdir()
  (wd / "config.json").write_text('{"their": "config", cut')
  with pytest.raises(UserError, match="no record of what a run wrote"):
    workdir.check(config, wd, overwrite=True)
  assert _files(wd) == {"config.json": b'{"their": "config", cut'}


def test_a_run_removes_the_temporary_files_a_killed_run_left(config, tmp_path):

  wd = tmp_path / "wd"
  workdir.check(config, wd, overwrite=False)
  (wd / "bundle").mkdir()
  killed_writer(wd / "test_metrics_confusion.png")  # killed in the end phase
  killed_writer(wd / "bundle" / "bundle.json")
  assert len([p for p in wd.rglob(".*") if p.name != workdir.LOCK and p.name != workdir.RECORD]) == 2
  config.model.name = "log1"
  workdir.check(config, wd, overwrite=True)  # a temporary file in bundle/ is not a user's file: no refusal
  assert sorted(p.name for p in wd.rglob(".*")) == sorted([workdir.LOCK, workdir.RECORD])


def test_a_failure_before_the_first_checkpoint_leaves_one_row_per_epoch(config, tmp_path, monkeypatch):
  """A full disk at the end of epoch 1 fails the first checkpoint after epoch 1's row was written: the rerun
  starts from scratch and must not append a second `epoch 1` row."""
  import errno

  from freqforensics import checkpointing, train

  original_save = checkpointing.Checkpointer.save

  def disk_full(self, step, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "wd" / "checkpoints"))

  monkeypatch.setattr(checkpointing.Checkpointer, "save", disk_full)
  with pytest.raises(OSError):
    train.train_and_evaluate(config, tmp_path / "wd")
  rows = [json.loads(line) for line in (tmp_path / "wd" / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in rows] == [1] and not list((tmp_path / "wd" / "checkpoints").glob("[0-9]*"))
  monkeypatch.setattr(checkpointing.Checkpointer, "save", original_save)
  train.train_and_evaluate(config, tmp_path / "wd")
  rows = [json.loads(line) for line in (tmp_path / "wd" / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in rows] == [1, 2, 3, 4]


def test_register_and_claim_take_paths_relative_to_the_current_folder(config, tmp_path, monkeypatch):
  """A relative --workdir: `runs/demo/x.json` is the work dir's `x.json`, not a `runs/demo/x.json` inside it."""
  monkeypatch.chdir(tmp_path)
  wd = Path("runs/demo")
  workdir.check(config, wd, overwrite=False)
  workdir.register(wd, wd / "eval_a.json")
  workdir.claim(wd, wd / "eval_b.json")
  entries = workdir.record(wd).entries()
  assert entries.get("eval_a.json") == "file" and entries.get("eval_b.json") == "file"
  assert not [e for e in entries if e.startswith("runs")]
  (wd / "eval_a.json").write_text("{}")
  workdir.claim(wd, wd / "eval_a.json")  # ours: claimed again without a refusal
