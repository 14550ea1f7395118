"""The work dir of one run: its config, per-epoch metric files, TensorBoard events, and what it owns.

A work dir belongs to one config: a second run with another config is refused (one line, exit 2)
unless `--overwrite`. Opening a run takes a lock (`locks.DirLock`), so a second process on the
same work dir is refused with the process that holds it. Nothing is written before the run is
known to be able to start (`Run.start`, after the config, the data and the split are checked): a
refused or mistyped command leaves the work dir as it was. Every file a run writes is registered
in the work dir's ownership record before it is written, and `--overwrite` deletes exactly those
files; a user's file anywhere in the work dir is never touched, and one inside the folders a run
writes into (`checkpoints/`, `tensorboard/`, `bundle/`) makes `--overwrite` refuse instead. Only
process 0 writes here in a multi-host run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import ml_collections

from freqforensics import defaults
from freqforensics.errors import UserError
from freqforensics.files import atomic, figure_marks, locks, ownership

RECORD = ownership.RECORD  # the ownership record of a work dir
LOCK = ".freqforensics.lock"
# Folders whose children a library names: only those children are the run's.
CHECKPOINT_NAMES = r"\d+(\.orbax-checkpoint-tmp.*)?"
TENSORBOARD_NAMES = r"events\.out\.tfevents\..*"
# What a training run writes at the top of its work dir (a run of an older version is recognised by them).
RUN_FILES: tuple[str, ...] = (
  "config.json",
  "checkpoints",
  "metrics.jsonl",
  "tensorboard",
  "bundle",
  "test_metrics.json",
  "val_metrics.json",
)
_RUN_FOLDERS = ("checkpoints", "tensorboard", "bundle")
# Config fields that do not change results: a resumed run may differ in these.
RUNTIME_KEYS: tuple[str, ...] = (
  "data.num_threads",
  "data.data_dir",
  "data.cache_gb",
  "progress",
  "distributed",
  "coordinator_address",
  "num_processes",
  "process_id",
  "train.checkpoint_every_steps",
  "mode",
  "eval.splits",
  "eval.source_dir",
  "eval.batch_size",
  "eval.perturb",
)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
  return out


def record(workdir: str | os.PathLike) -> ownership.OwnershipRecord:
  """The ownership record of a work dir (it may not exist yet; a run of an older version is adopted)."""
  return ownership.OwnershipRecord(workdir, RECORD, adopt=_older_run_entries)


# Keys every run config has had: a `config.json` without them is not a run's (`is_run_config`).
_CORE_KEYS = ("seed", "model.name", "data.image_size", "train.epochs", "train.batch_size")
_SECTIONS = ("data", "model", "train", "eval", "augment", "feature_options")


def is_run_config(stored: Any) -> bool:
  """Whether a parsed `config.json` is recognisably the config of a freqforensics run: a JSON object with
  the keys every run config has had, and in each of the sections of the base config only its keys (a
  config file may add sections of its own, as the baselines' `baseline`)."""
  if not isinstance(stored, dict):
    return False
  base = json.loads(defaults.base_config().to_json())
  flat = _flatten(stored)
  if not all(k in flat for k in _CORE_KEYS):
    return False
  for section in _SECTIONS:
    if section in stored:
      if not isinstance(stored[section], dict):
        return False
      if not set(_flatten(stored[section])) <= set(_flatten(base[section])):
        return False
  return True


def _older_run_entries(workdir: Path) -> dict[str, str]:
  """What a run of a version without ownership records wrote (by their fixed names), as record entries;
  nothing unless `config.json` is recognisably a run's config (`is_run_config`): the files of another
  tool that has a `config.json` are never taken for a run's."""
  try:
    stored = json.loads((workdir / "config.json").read_text())
  except (OSError, json.JSONDecodeError, UnicodeDecodeError):
    return {}
  if not is_run_config(stored):
    return {}
  names = [
    n for n in ("config.json", "metrics.jsonl", "test_metrics.json", "val_metrics.json") if (workdir / n).is_file()
  ]
  names += [
    f"{split}_metrics_{fig}.png"
    for split in ("val", "test")
    for fig in ("confusion", "roc")
    if figure_marks.is_our_figure(workdir / f"{split}_metrics_{fig}.png")
  ]
  if _is_bundle_info(workdir / "bundle" / "bundle.json"):
    names += [
      f"bundle/{p.name}"
      for p in (workdir / "bundle").glob("*")
      if p.is_file() and (p.name in ("bundle.json", "params.npz") or re.fullmatch(r"stats_.*\.npz", p.name))
    ]
  entries = dict.fromkeys(names, "file")
  entries.update({"checkpoints": "pattern:" + CHECKPOINT_NAMES, "tensorboard": "pattern:" + TENSORBOARD_NAMES})
  return entries


def _is_bundle_info(path: Path) -> bool:
  try:
    info = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError, UnicodeDecodeError):
    return False
  return isinstance(info, dict) and {"model", "label_names"} <= set(info)


def register(workdir: str | os.PathLike, *paths: str | os.PathLike, tree: bool = False) -> None:
  """Registers outputs a command writes into a run's work dir (evaluation files, classify's CSV, figures);
  `paths` are paths like any other (relative to the current folder, or absolute), inside `workdir`."""
  rec = record(workdir)
  rec.add(*map(rec.name_of, paths), tree=tree)


def claim(workdir: str | os.PathLike, *paths: str | os.PathLike) -> None:
  """Registers files a command is about to write into a work dir (paths as in `register`), after refusing
  any that exists and was not written by freqforensics (not in the record): a user's file is never
  replaced. Call it before the work, so a refusal costs nothing."""
  rec = record(workdir)
  entries = rec.entries()
  for p in map(Path, paths):
    if (p.exists() or p.is_symlink()) and not rec.owns(rec.name_of(p), entries):
      raise UserError(
        f"{p} exists and was not written by freqforensics: it is never replaced (with or without"
        " --overwrite); move or rename it, then run again"
      )
  rec.add(*map(rec.name_of, paths))


def _stored_config(path: Path) -> dict:
  stored = atomic.read_json(path, "the config of the run in this work dir")
  if not isinstance(stored, dict):
    raise UserError(f"{path} is not a freqforensics run config: use a new --workdir")
  return stored


def _config_diff(stored: dict, current: dict) -> list[str]:
  old, new = _flatten(stored), _flatten(current)
  # A field added by a newer version is absent from an older run's config: at its default it
  # describes what that run did, so the run may resume.
  base = _flatten(json.loads(defaults.base_config().to_json()))
  old.update({k: base[k] for k in new if k not in old and k in base})
  diff = sorted(
    k
    for k in set(old) | set(new)
    if old.get(k) != new.get(k) and not any(k == r or k.startswith(r + ".") for r in RUNTIME_KEYS)
  )
  return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff]


class Run:
  """A work dir opened for one run: checked and locked on opening, written only from `start()` on.

  Use as a context manager (`with workdir.Run(config, path, overwrite) as run: ...; run.start()`).
  `write=False` (processes other than 0 of a multi-host run) checks the config only.
  """

  def __init__(
    self, config: ml_collections.ConfigDict, workdir: str | os.PathLike, overwrite: bool = False, *, write: bool = True
  ):
    self.config = config
    self.path = Path(workdir).expanduser()
    self.overwrite = overwrite
    self.write = write
    self.record = record(self.path)
    self.started = False
    self._lock: locks.DirLock | None = None
    self._created = False
    self._replace = False  # start() replaces the previous run

  # --- Checks, before anything is written.
  def _check(self) -> None:
    path = self.path
    if path.exists() and not path.is_dir():
      raise UserError(f"--workdir={path} is a file: give a folder (new, or one of an earlier run)")
    current = json.loads(self.config.to_json())
    config_path = path / "config.json"
    if config_path.is_file():
      try:
        stored = _stored_config(config_path)
      except UserError:
        if not self.record.exists():  # nothing says which files a run wrote: none is replaced
          raise UserError(
            f"{config_path} is damaged and {path} has no record of what a run wrote there: use a new --workdir"
          ) from None
        if not self.overwrite:
          raise UserError(
            f"{config_path} is damaged: pass --overwrite to replace that run, or use a new --workdir"
          ) from None
        self._replace = True
        return
      if not self.record.exists() and not is_run_config(stored):
        raise UserError(
          f"work dir {path} holds a config.json that is not a freqforensics run config (another tool's?):"
          " nothing in it is replaced, even with --overwrite; give a new or empty --workdir"
        )
      diff = _config_diff(stored, current)
      if diff and not self.overwrite:
        shown = ", ".join(diff[:3])
        raise UserError(
          f"work dir {path} holds a run of another config ({shown}{', ...' if len(diff) > 3 else ''}):"
          " use a new --workdir, or pass --overwrite to replace that run"
        )
      self._replace = self.overwrite
      return
    if path.is_dir():
      ours = {RECORD, LOCK}
      theirs = sorted(p.name for p in path.iterdir() if p.name not in ours)
      if theirs and not self.record.exists():
        run_files = [n for n in theirs if n in RUN_FILES]
        if run_files:
          raise UserError(
            f"work dir {path} holds run files ({', '.join(run_files[:3])}) but no config.json: use a new --workdir"
          )
        raise UserError(
          f"work dir {path} is not empty and holds no freqforensics run ({', '.join(theirs[:3])}"
          f"{', ...' if len(theirs) > 3 else ''}): give a new or empty --workdir"
        )
      self._replace = self.record.exists()

  def open(self) -> Run:
    self._check()
    if not self.write:
      return self
    self._created = not self.path.exists()
    self.path.mkdir(parents=True, exist_ok=True)
    self._lock = locks.DirLock(self.path, LOCK).acquire("--workdir")
    try:
      self._check()  # again under the lock: another process may have started a run meanwhile
    except BaseException:
      self.close()
      raise
    return self

  # --- The run starts: replace an earlier one, write the config.
  def start(self) -> None:
    """Called once the run is known to be able to start: replaces the earlier run (`--overwrite`,
    only the files it wrote) and writes `config.json` atomically."""
    self.started = True
    if not self.write:
      return
    atomic.remove_stale_temps(self.path)  # of a run killed while writing (under the lock: no writer runs)
    if self._replace:
      folders = [f for f in _RUN_FOLDERS if (self.path / f).exists()]
      foreign = self.record.foreign(folders) if folders else []  # (a run of an older version: as adopted)
      if foreign:  # refused before anything is written: no record claims another's files
        raise UserError(
          f"--overwrite would replace the run in {self.path}, but {', '.join(foreign[:3])}"
          f"{' and more' if len(foreign) > 3 else ''} inside it was not written by freqforensics:"
          " move that out of the work dir, then run again"
        )
      self.record.remove_owned(keep=[LOCK])
    self.record.add(LOCK, "config.json", "metrics.jsonl")
    self.record.add_pattern("checkpoints", CHECKPOINT_NAMES)
    self.record.add_pattern("tensorboard", TENSORBOARD_NAMES)
    atomic.write_text(self.path / "config.json", self.config.to_json(indent=2) + "\n")

  def close(self) -> None:
    if self._lock is not None:
      self._lock.release()
      self._lock = None
      if not self.started and self._created:
        # A run refused before it started leaves no trace: the folder it made, with its lock file.
        (self.path / LOCK).unlink(missing_ok=True)
        try:
          self.path.rmdir()
        except OSError:
          pass

  def __enter__(self) -> Run:
    return self.open()

  def __exit__(self, *exc) -> None:
    self.close()


def check(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool, *, write: bool = True) -> None:
  """Opens and starts a run at once (for tests and tools that have nothing to check in between)."""
  with Run(config, workdir, overwrite, write=write) as run:
    run.start()


class MetricsLog:
  """`metrics.jsonl` (one JSON row per epoch) and TensorBoard scalars; a no-op off process 0."""

  def __init__(self, workdir: Path, *, enabled: bool = True):
    self.path = workdir / "metrics.jsonl"
    self.enabled = enabled
    self._writer = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

      self._writer = SummaryWriter(str(workdir / "tensorboard"))

  def truncate(self, last_epoch: int) -> None:
    """Keeps one row per epoch up to the restored checkpoint (`last_epoch`, 0 when there is none): drops rows
    written after it (just before an interruption or a failed save) and repeated rows, and a row cut short by
    a crash; the file is replaced atomically. Called at every start, resumed or not."""
    if not (self.enabled and self.path.exists()):
      return
    rows, seen = [], set()
    for line in self.path.read_text().splitlines():
      try:
        row = json.loads(line)
        epoch = int(row["epoch"])
      except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        continue
      if epoch <= last_epoch and epoch not in seen:
        seen.add(epoch)
        rows.append(line)
    atomic.write_text(self.path, "".join(r + "\n" for r in rows))

  def write(self, row: dict[str, Any]) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
      f.flush()
      os.fsync(f.fileno())
    for k, v in row.items():
      if k != "epoch" and isinstance(v, (int, float)):
        self._writer.add_scalar(k, v, row["epoch"])
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
