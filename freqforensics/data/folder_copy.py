"""A perturbed copy of a class-folder directory (`perturb_folder`), and the copy itself (`copy_folder`).

Run by `python -m freqforensics.tools.perturb`. `copy_folder` is the resumable, never-overwriting
copy for any per-file transform (`processing_plan` writes its processed test set with it): every
image is read at its own size by the one reader (`images.read_image`), transformed with draws that
depend only on the seed and its relative path (`file_rng`), and written to the same relative path;
`manifest.jsonl` records each file, so an interrupted copy resumes. No JAX: this runs anywhere Pillow
and SciPy do.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import itertools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
from PIL import Image

from freqforensics.data import distortions as P
from freqforensics.data import images
from freqforensics.errors import UserError
from freqforensics.files import atomic, ownership

_VERSION = 1
_CHUNK = 64  # files decoded, perturbed and written (in threads) between manifest updates


def file_rng(seed: int, relative_path: str) -> np.random.Generator:
  """The generator of one file's draws: a function of the seed and the file's relative path only."""
  digest = hashlib.sha256(relative_path.encode()).digest()
  return np.random.default_rng([int(seed) % (1 << 63), int.from_bytes(digest[:8], "little")])


def _output_names(files: Sequence[Path], root: Path) -> dict[Path, str]:
  """Relative output names before the extension: `a/x.jpg` -> `a/x`, or `a/x.jpg` where `a/x.png` exists too."""
  stems = collections.Counter(str(f.relative_to(root).with_suffix("")) for f in files)
  return {
    f: str(f.relative_to(root).with_suffix(""))
    if stems[str(f.relative_to(root).with_suffix(""))] == 1
    else str(f.relative_to(root))
    for f in files
  }


def write_output(out: ownership.OwnershipRecord, name: str, data: bytes) -> None:
  """Writes one output file of a copy into the folder of its record `out` (registered there, its folder made
  as needed), atomically."""
  out.write_bytes(name, data)


def _one(
  path: Path, rel: str, out_name: str, folder: ownership.OwnershipRecord, perturbation: P.Perturbation, seed: int
) -> dict:
  try:
    image = images.read_image(path)
  except images.ImageDecodeError as e:
    return {"source": rel, "error": str(e)}
  rng = file_rng(seed, rel)
  steps = perturbation.sample(rng)
  out, jpeg_bytes = P.apply(image, steps, rng)
  if jpeg_bytes is not None:
    name, data = out_name + ".jpg", jpeg_bytes
  else:
    buf = io.BytesIO()
    Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out).save(buf, format="PNG")
    name, data = out_name + ".png", buf.getvalue()
  write_output(folder, name, data)
  return {"source": rel, "output": name, "perturbations": steps}


def _read_manifest(manifest: Path) -> list[dict]:
  """The rows of a copy's manifest. A line that does not parse (the last one, cut by a kill -9) is dropped:
  its file is made again."""
  if not manifest.is_file():
    return []
  rows = []
  for line in manifest.read_text(errors="replace").splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(row, dict) and isinstance(row.get("source"), str):
      rows.append(row)
  return rows


def _read_settings(settings_file: Path) -> dict | None:
  """The settings of the copy in a folder; None when the file is damaged (a kill while an older version
  wrote it, or an edit)."""
  try:
    old = json.loads(settings_file.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError):
    return None
  return old if isinstance(old, dict) else None


def _older_copy(out_dir: Path, settings_name: str, extras: Sequence[str]) -> dict[str, str]:
  """What a version without ownership records wrote in `out_dir`, recognised by its settings file: that file,
  the manifest, the `extras` and the outputs the manifest names (checked by `ownership.owned_path` before
  anything is deleted)."""
  if not (out_dir / settings_name).is_file():
    return {}
  manifest = out_dir / "manifest.jsonl"
  names = [settings_name, manifest.name, *extras]
  names += [row["output"] for row in _read_manifest(manifest) if isinstance(row.get("output"), str)]
  return dict.fromkeys(names, "file")


def _prepare_out(
  out: ownership.OwnershipRecord,
  source: Path,
  settings: dict,
  overwrite: bool,
  settings_name: str,
  what: str,
  extras: Sequence[str],
) -> dict[str, dict]:
  """Checks OUT, returns the manifest rows of a copy to resume (empty for a fresh one)."""
  out_dir = out.folder
  src, resolved = source.resolve(), out_dir.resolve()
  if resolved == src or src in resolved.parents or resolved in src.parents:
    raise UserError(f"--out_dir={out_dir} and --source_dir={source} overlap: write the copy to a separate folder")
  settings_file, manifest = out_dir / settings_name, out_dir / "manifest.jsonl"
  if settings_file.is_file():
    old = _read_settings(settings_file)
    if old != settings:
      if not overwrite:
        why = "is damaged" if old is None else f"holds a {what} of other settings"
        raise UserError(
          f"{out_dir} {why} ({settings_name}): use another --out_dir, or --overwrite to replace that copy"
          " (only the files it wrote)"
        )
      # Every output the manifest names is checked before anything is deleted (`ownership.owned_path`), then
      # exactly what the record names is.
      for row in _read_manifest(manifest):
        if "output" in row:
          ownership.owned_path(out_dir, row["output"], manifest)
      out.remove_owned()
      atomic.remove_stale_temps(out_dir)
      for d in sorted((p for p in out_dir.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(d.iterdir()):  # emptied class folders
          d.rmdir()
  elif out_dir.is_dir() and any(out_dir.iterdir()) and not out.exists():
    raise UserError(
      f"--out_dir={out_dir} is not empty and holds no {what} ({settings_name}): give a new or empty folder"
    )
  out_dir.mkdir(parents=True, exist_ok=True)
  if not settings_file.is_file():
    out.add(manifest.name, *extras)
    out.write_json(settings_name, settings)
    return {}
  done = {}
  for row in _read_manifest(manifest):
    if "error" in row or ("output" in row and ownership.owned_path(out_dir, row["output"], manifest).is_file()):
      done[row["source"]] = row
  return done


def copy_folder(
  source: str | os.PathLike | images.ClassFolders,
  out_dir: str | os.PathLike,
  settings: dict[str, Any],
  one: Callable[[Path, str, str, ownership.OwnershipRecord], dict],
  *,
  settings_name: str,
  what: str,
  num_threads: int = 0,
  overwrite: bool = False,
  progress: bool = True,
  extras: Sequence[str] = (),
) -> tuple[list[dict], int]:
  """A copy of every image of a class-folder directory (or its listing) in `out_dir`, in the same layout.

  `one(path, relative path, output name without extension, out_dir's record)` writes one file's output
  (`write_output`, registered in the record) and returns its manifest row: `{"source": relative path, "output": name, ...}`,
  or `{"source": ..., "error": why}`. `settings` (JSON; `source_dir` is added) are kept in
  `out_dir/settings_name`: a copy of the same settings resumes from its `manifest.jsonl`, one of
  other settings is replaced only with `overwrite` (removing only what its ownership record names: its
  outputs, the manifest, the settings and the `extras` files), and a non-empty folder that holds no such copy is
  refused; `what` names the copy in those messages. Returns (every row, how many were resumed).

  Args:
    source: the class-folder directory, or its listing.
    out_dir: where the copy goes (new, empty, or an earlier copy to resume or replace).
    settings: the copy's settings (JSON); `source_dir` is added.
    one: writes one file's output: (path, relative path, output name without extension, the record)
      -> its manifest row.
    settings_name: the settings file's name in `out_dir` (e.g. `perturb.json`).
    what: how messages name the copy (e.g. "perturbed copy").
    num_threads: worker threads; 0 = one per core.
    overwrite: replace a copy of other settings (only what its record names).
    progress: a progress bar on stderr.
    extras: further files of the copy that `overwrite` removes.
  """
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  folders = (
    source
    if isinstance(source, images.ClassFolders)
    else images.list_class_folders(source, min_classes=1, option="--source_dir")
  )
  out_dir = Path(out_dir).expanduser()
  settings = json.loads(json.dumps(dict(settings, source_dir=str(folders.root.resolve()))))  # tuples -> lists
  out = ownership.OwnershipRecord(out_dir, adopt=lambda folder: _older_copy(folder, settings_name, extras))
  done = _prepare_out(out, folders.root, settings, overwrite, settings_name, what, extras)
  files = [f for name in folders.class_names for f in folders.files[name]]
  names = _output_names(files, folders.root)
  todo = [f for f in files if str(f.relative_to(folders.root)) not in done]
  rows = list(done.values())
  atomic.remove_stale_temps(out_dir)  # of files being written when an earlier run was killed
  # The resumed rows, written whole (a line cut by a kill is gone), then appended to chunk by chunk.
  out.write_text("manifest.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
  with (
    concurrent.futures.ThreadPoolExecutor(num_threads or os.cpu_count() or 1) as pool,
    open(out_dir / "manifest.jsonl", "a") as manifest,
    tqdm(total=len(files), initial=len(files) - len(todo), unit="img", desc=what, disable=not progress) as bar,
  ):
    it = iter(todo)
    while chunk := list(itertools.islice(it, _CHUNK)):
      new = list(pool.map(lambda f: one(f, str(f.relative_to(folders.root)), names[f], out), chunk))
      for row in new:
        manifest.write(json.dumps(row) + "\n")
      manifest.flush()
      os.fsync(manifest.fileno())
      rows += new
      bar.update(len(chunk))
  return rows, len(done)


class CopyOptions(TypedDict, total=False):
  """How a copy command's library call runs (`perturb_folder`, `processing_plan.process_folder`).

  `seed` of the per-file draws, which depend on it and the file's relative path only (default 0);
  `num_threads` workers (0, the default, is one per core); `overwrite` a copy of other settings in the
  output (default False); `progress` bar on stderr (default True).
  """

  seed: int
  num_threads: int
  overwrite: bool
  progress: bool


def copy_run(options: CopyOptions) -> dict[str, Any]:
  """The `copy_folder` keywords among `options` (all but the seed); a misspelt option is a TypeError."""
  if unknown := set(options) - set(CopyOptions.__annotations__):
    raise TypeError(f"unexpected copy options {sorted(unknown)}")
  return {k: v for k, v in options.items() if k != "seed"}


def perturb_folder(
  source_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  perturbation: P.Perturbation,
  **options: Unpack[CopyOptions],
) -> dict[str, Any]:
  """Writes the perturbed copy of `source_dir` (class folders) into `out_dir` by `perturbation`; returns
  counts (`written`, `resumed`, `skipped`, per perturbation). `options` as `CopyOptions` says."""
  seed = options.get("seed", 0)
  settings = {"version": _VERSION, "seed": int(seed), "perturbation": dataclasses.asdict(perturbation)}
  rows, resumed = copy_folder(
    source_dir,
    out_dir,
    settings,
    lambda f, rel, name, out: _one(f, rel, name, out, perturbation, seed),
    settings_name="perturb.json",
    what="perturbed copy",
    **copy_run(options),
  )
  kinds = collections.Counter(
    "+".join(s["name"] for s in r["perturbations"]) or "none" for r in rows if "perturbations" in r
  )
  return {
    "written": sum("output" in r for r in rows),
    "resumed": resumed,
    "skipped": sum("error" in r for r in rows),
    "perturbations": dict(sorted(kinds.items())),
    "out_dir": str(Path(out_dir).expanduser()),
  }


def summary(counts: dict[str, Any], details: Sequence[str] = ()) -> str:
  """What a copy command prints of `copy_folder`'s counts: images written (and resumed), `details`, skips."""
  if counts["resumed"] and counts["resumed"] >= counts["written"] + counts["skipped"]:
    head = f"{counts['out_dir']} already holds the finished copy of {counts['written']} images: nothing to do"
  else:
    resumed = f" ({counts['resumed']} from an earlier, interrupted run)" if counts["resumed"] else ""
    head = f"wrote {counts['written']} images to {counts['out_dir']}{resumed}"
  lines = [head, *(f"  {d}" for d in details)]
  if counts["skipped"]:
    lines.append(f"skipped {counts['skipped']} unreadable files (listed with the reason in manifest.jsonl)")
  return "\n".join(lines)
