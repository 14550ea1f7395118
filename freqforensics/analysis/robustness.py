"""Robustness report: a trained model's accuracy under each perturbation, at a sweep of strengths.
Run by `python -m freqforensics.tools.robustness`.

The data are a split of the dataset the model was trained on, or class folders prepared with the
bundle's preprocessing. Every image is perturbed (probability 1) at each strength, on the fly with a
fixed seed (`data/augment.py`), and evaluated with the masked loop of `evaluation.runner`; nothing
perturbed is written to disk. `robustness.json` (settings, the clean metrics, and per perturbation
the strengths with accuracy, loss, per-class accuracy and ROC-AUC) is rewritten after every point,
so an interrupted report resumes where it stopped; a report of other settings is kept unless
`overwrite`. `robustness.png` plots accuracy against strength, one panel per perturbation. A user's
`robustness.json` or `robustness.png` is never replaced (checked before any work).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from freqforensics import text
from freqforensics.data.distortions import Perturbation, blur_kernel_for
from freqforensics.errors import UserError
from freqforensics.files import atomic, figure_marks

# perturbation -> (parameter, strengths from mild to strong)
DEFAULT_SWEEPS: dict[str, tuple[str, tuple[float, ...]]] = {
  "jpeg": ("quality", (90, 80, 70, 60, 50, 40, 30, 20, 10)),
  "blur": ("sigma", (0.5, 1.0, 1.5, 2.0, 3.0)),
  "noise": ("std", (2.0, 5.0, 10.0, 20.0, 30.0)),
  "crop": ("fraction", (0.05, 0.1, 0.2, 0.3)),
}


def at_strength(kind: str, value: float) -> Perturbation:
  """Every image perturbed by `kind` at exactly `value` (blur: a kernel holding +-3 sigma)."""
  if kind == "jpeg":
    if value != int(value):
      raise UserError(f"JPEG quality {value} is not an integer: give qualities such as 90,50,10")
    return Perturbation("jpeg", 1.0, jpeg_quality=(int(value),))
  if kind == "blur":
    return Perturbation("blur", 1.0, blur_kernel=(blur_kernel_for(value),), blur_sigma=(value,))
  if kind == "noise":
    return Perturbation("noise", 1.0, noise_std=(value,))
  if kind == "crop":
    return Perturbation("crop", 1.0, crop_fraction=(value,))
  raise UserError(f"unknown perturbation {kind!r} in the sweep: use {', '.join(DEFAULT_SWEEPS)}")


def summary(m: dict[str, Any]) -> dict[str, Any]:
  """The numbers of one evaluation a report keeps."""
  auc = m["binary"]["roc_auc"] if "binary" in m else m.get("one_vs_rest", {}).get("macro_roc_auc")
  return {
    "accuracy": m["accuracy"],
    "loss": m["loss"],
    "roc_auc": auc,
    "num_examples": m["num_examples"],
    "per_class_accuracy": m["per_class_accuracy"],
  }


def describe(b, workdir: str | os.PathLike, data: str | os.PathLike, split: str, num_examples: int) -> dict[str, Any]:
  """What a report is about (a bundle and a split): part of the settings a report resumes with.

  Args:
    b: the bundle evaluated.
    workdir: the run's work dir (the report names its bundle folder by absolute path).
    data: the prepared dataset or folder the split comes from.
    split: the split's name (`test`, or a folder's report name).
    num_examples: how many images the split holds.
  """
  return {
    "bundle": str((Path(workdir).expanduser() / "bundle").resolve()),
    "model": b.info.model,
    "features": b.info.features,
    "augment": b.info.augment,
    "data": str(data),
    "split": split,
    "num_examples": num_examples,
  }


def _our_report(path: Path) -> dict[str, Any] | None:
  """The report in `path` when it is one this module wrote (a JSON object with `settings`, `clean` and
  `results`), else None: a user's file of that name, or not JSON at all."""
  try:
    old = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  if isinstance(old, dict) and isinstance(old.get("settings"), dict) and isinstance(old.get("results"), dict):
    return old if "clean" in old else None
  return None


def _check_outputs(out_dir: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
  """The earlier report to resume (same settings), or None; refuses a user's file (never replaced) and an
  earlier report of other settings (replaced only with `overwrite`)."""
  path, figure = out_dir / "robustness.json", out_dir / "robustness.png"
  old = None
  if path.exists() or path.is_symlink():
    old = _our_report(path)
    if old is None:
      raise UserError(
        f"{path} exists and is not a robustness report written by freqforensics: it is never replaced (with or"
        " without --overwrite); give another --out_dir"
      )
    if old["settings"] != json.loads(json.dumps(settings)):
      if not overwrite:
        raise UserError(f"{path} holds a report of other settings: use another --out_dir, or --overwrite to replace it")
      old = None
  if figure.exists() or figure.is_symlink():
    if figure.is_symlink() or not figure_marks.is_our_figure(figure):
      raise UserError(
        f"{figure} exists and was not written by freqforensics: it is never replaced (with or without"
        " --overwrite); give another --out_dir"
      )
    if old is None and not overwrite and not path.exists():
      raise UserError(
        f"{figure} exists: give another --out_dir, or --overwrite to replace the figure of an earlier report"
      )
  return old


def run_report(
  evaluate_fn: Callable[[Any, str], Any],
  source,
  out_dir: str | os.PathLike,
  about: Mapping[str, Any],
  *,
  sweeps: Mapping[str, Sequence[float]] | None = None,
  seed: int = 0,
  overwrite: bool = False,
  progress: bool = True,
  label: str = "",
) -> dict[str, Any]:
  """Evaluates `source` clean and under every perturbation of `sweeps`; writes the JSON and the figure.

  Args:
    evaluate_fn: `(source, name) -> results.SplitResult` (`evaluation.runner.bundle_evaluator`).
    source: the split evaluated, labels in the model's order.
    out_dir: where `robustness.json` and `robustness.png` go.
    about: what is evaluated (`describe`: bundle, split, ...): part of the settings, which must match for a
      report to resume.
    sweeps: kind -> strengths (default: `DEFAULT_SWEEPS`).
    seed: seeds the perturbations' draws.
    overwrite: replace a report of other settings.
    progress: print each point.
    label: names the line in the figure.
  """
  from freqforensics.data import augment  # pylint: disable=g-import-not-at-top

  sweeps = {k: [float(v) for v in vs] for k, vs in (sweeps or {k: v[1] for k, v in DEFAULT_SWEEPS.items()}).items()}
  points = [(kind, v, at_strength(kind, v)) for kind, values in sweeps.items() for v in values]  # checks first
  out_dir = Path(out_dir).expanduser()
  out_dir.mkdir(parents=True, exist_ok=True)
  path = out_dir / "robustness.json"
  settings = {**about, "seed": seed, "sweeps": sweeps, "parameters": {k: DEFAULT_SWEEPS[k][0] for k in sweeps}}
  report = _check_outputs(out_dir, settings, overwrite) or {
    "settings": settings,
    "clean": None,
    "results": {k: [] for k in sweeps},
  }
  if report["clean"] is None:
    report["clean"] = summary(evaluate_fn(source, "clean").metrics)
    atomic.write_json(path, report)
  done = {(k, r["strength"]) for k, rows in report["results"].items() for r in rows}
  for i, (kind, value, perturbation) in enumerate(points):
    if (kind, value) in done:
      continue
    m = evaluate_fn(augment.perturbed_for_eval(source, perturbation, seed=seed), f"{kind} {value:g}").metrics
    report["results"][kind].append({"strength": value, **summary(m)})
    atomic.write_json(path, report)
    if progress:
      print(
        f"[{i + 1}/{len(points)}] {kind} {settings['parameters'][kind]} {value:g}: accuracy {m['accuracy']:.4f}",
        flush=True,
      )
  plot(
    {label or f"{about.get('model', 'model')} {about.get('features', '')}".strip(): report}, out_dir / "robustness.png"
  )
  return report


def plot(
  reports: Mapping[str, dict[str, Any]],
  path: str | os.PathLike,
  *,
  styles: Mapping[str, dict] | None = None,
  title: str = "",
) -> None:
  """Accuracy against strength, one panel per perturbation, one line per report; clean accuracy dashed."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  kinds = [k for k in DEFAULT_SWEEPS if any(r["results"].get(k) for r in reports.values())]
  fig, axes = plt.subplots(1, len(kinds), figsize=(3.4 * len(kinds) + 0.6, 3.4), sharey=True, squeeze=False)
  for ax, kind in zip(axes[0], kinds):
    for j, (name, r) in enumerate(reports.items()):
      style = {"color": f"C{j}", "marker": "o", "markersize": 3, **(styles or {}).get(name, {})}
      rows = sorted(r["results"].get(kind, []), key=lambda row: row["strength"])
      ax.plot([row["strength"] for row in rows], [row["accuracy"] for row in rows], label=name, **style)
      ax.axhline(r["clean"]["accuracy"], color=style["color"], linestyle=":", linewidth=1)
    ax.set_xlabel(f"{kind}: {DEFAULT_SWEEPS[kind][0]}")
    if kind == "jpeg":
      ax.invert_xaxis()  # stronger to the right, as in the other panels
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("accuracy (dotted: clean)")
  axes[0][0].set_ylim(0, 1.02)
  axes[0][-1].legend(fontsize="small", loc="lower left")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  figure_marks.save_figure(fig, Path(path), dpi=90)
  plt.close(fig)


def table(reports: Mapping[str, dict[str, Any]]) -> str:
  """A markdown table: one row per perturbation strength, one accuracy column per report."""
  names = list(reports)
  lines = ["| perturbation | " + " | ".join(map(text.for_markdown, names)) + " |", "|---|" + "---|" * len(names)]
  lines.append("| none (clean) | " + " | ".join(f"{reports[n]['clean']['accuracy']:.3f}" for n in names) + " |")
  for kind, (param, _) in DEFAULT_SWEEPS.items():
    strengths = sorted(
      {row["strength"] for r in reports.values() for row in r["results"].get(kind, [])}, reverse=kind == "jpeg"
    )
    for s in strengths:
      cells = []
      for n in names:
        acc = [row["accuracy"] for row in reports[n]["results"].get(kind, []) if row["strength"] == s]
        cells.append(f"{acc[0]:.3f}" if acc else "")
      lines.append(f"| {kind} {param} {s:g} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def sweep_workdir(
  workdir: str | os.PathLike,
  sweeps: Mapping[str, Sequence[float]],
  *,
  split: str = "test",
  source_dir: str = "",
  data_dir: str = "",
  out_dir: str = "",
  seed: int = 0,
  batch_size: int = 256,
  overwrite: bool = False,
  progress: bool = True,
) -> tuple[dict[str, Any], Path, dict[str, Any]]:
  """The report of `WORKDIR/bundle` on a split of its training dataset, or on class folders (`source_dir`,
  prepared with the bundle's preprocessing under `data_dir`); returns (report, out folder, what it is about).

  The default out folder is `WORKDIR/robustness_<split>` (or `robustness_<loading.source_name>` of the
  folder); the two files written there are registered as the run's own, never the folder (a user's
  notes in it stay), after refusing files of those names the run did not write (`workdir.claim`).

  Args:
    workdir: the run's work dir (its `bundle/`).
    sweeps: kind -> strengths.
    split: the split of the bundle's training dataset to evaluate.
    source_dir: class folders to evaluate instead.
    data_dir: the data root `source_dir` is prepared under (default `loading.default_data_root()`).
    out_dir: where the report goes (default above).
    seed: seeds the perturbations' draws.
    batch_size: the evaluation batch size (the devices used divide it).
    overwrite: replace a report of other settings.
    progress: show progress.
  """
  import jax  # pylint: disable=g-import-not-at-top

  from freqforensics import bundle  # pylint: disable=g-import-not-at-top
  from freqforensics import workdir as wd  # pylint: disable=g-import-not-at-top
  from freqforensics.data import images, loading, reader  # pylint: disable=g-import-not-at-top
  from freqforensics.evaluation import runner  # pylint: disable=g-import-not-at-top

  workdir = Path(workdir).expanduser()
  b = bundle.load(workdir / "bundle")
  if source_dir:
    root = Path(data_dir).expanduser() if data_dir else loading.default_data_root()
    options = b.info.prepare_options(max_pixels=images.DEFAULT_MAX_PIXELS)
    prepared = loading.folder_dataset(source_dir, root, options, progress=progress, source_option="--source_dir")
    split, name = "test", loading.source_name("folder", source_dir)
  else:
    if not b.info.dataset or not Path(b.info.dataset).is_dir():
      raise UserError(
        f"the dataset this model was trained on ({b.info.dataset}) is not here: pass"
        " --source_dir=DIR with class folders to evaluate"
      )
    prepared = reader.open_prepared(b.info.dataset)
    name = split
    if split not in prepared.num_examples:
      raise UserError(f"--split={split} is not a split of {prepared.path}: use one of {list(prepared.num_examples)}")
  source = loading.relabelled_split(prepared, b.label_names, split)
  devices = max(d for d in range(1, jax.device_count() + 1) if batch_size % d == 0)
  evaluate_fn = runner.bundle_evaluator(b, num_devices=devices, batch_size=batch_size, progress=progress)
  out = Path(out_dir or workdir / f"robustness_{name}").expanduser()
  if not out_dir and (workdir / "config.json").is_file():
    wd.claim(workdir, out / "robustness.json", out / "robustness.png")
  about = describe(b, workdir, prepared.path, split, len(source))
  report = run_report(evaluate_fn, source, out, about, sweeps=sweeps, seed=seed, overwrite=overwrite, progress=progress)
  return report, out, about
