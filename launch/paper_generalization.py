r"""Generators it never saw: train on some generator families, test on every held-out one (the field's protocol).

  python launch/paper_generalization.py [--config=configs/families.py] [--models=log2,cnn] \
      [--features=pixel,dct_log,fft_log,wpt_log,azimuthal] [--augment=none,blur_jpeg] \
      [--settings=one,all_but_one,no_access] [--families=gan_transposed,...] [--results=runs/results] [--tiny] \
      [--resume=FOLDER] [--config.KEY=VALUE ...]

The synthetic data of `--config` (default: the six trained generator families of `configs/families.py`) is
split as training splits it (per class, by sorted file name); the test part of every family, with the
real class's test part as its reals, becomes the protocol's layout `protocol/<family>/{0_real,1_fake}/`
(links, nothing copied). Settings:

  one          train on real vs one family (binary), test on every family
  all_but_one  train on real vs the other five (multi-class, used as a detector), test on the one left out
  no_access    train on real vs the simulated upsamplers only (`configs/demo.py`'s classes), test on every family

for each model (`cnn` skips `azimuthal`, a 1-D profile) and feature view, without augmentation and with
CNNDetection's (`blur_jpeg`: Gaussian blur, sigma U[0, 3], and JPEG, quality U{30..100}, each with
probability 0.5). Every run is trained by `scripts.run` (training's entry point: threshold, temperature
and the open-set score are fit on its validation split) and tested by `mode=eval` on the layout. Writes
`generalization.md` / `.json` (per run: in-distribution test accuracy, mean over the held-out families
of ROC-AUC, AP, accuracy, accuracy on reals and fakes at the bundle's threshold, TPR at 5% FPR and the
open-set rates; per family in the JSON; wall times), `outlier_candidates.md` / `.json` (each open-set
candidate's share of held-out fakes flagged and of test reals flagged, at 5% real validation FPR), and
`generalization.png` (ROC-AUC of every train family on every test family, `one` setting, no augmentation).
`--tiny` is the smoke version (the config's `:tiny` form).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from freqforensics.files import atomic
from freqforensics.tools import scripts

FEATURES = ("pixel", "dct_log", "fft_log", "wpt_log", "azimuthal")
SETTINGS = ("one", "all_but_one", "no_access")
# CNNDetection's training augmentation (Wang et al., 2020): blur and JPEG, each with probability 0.5.
AUGMENT = {
  "kind": "blur_jpeg",
  "probability": 0.5,
  "blur_sigma": (0.0, 3.0),
  "blur_kernel": (19,),
  "jpeg_quality": (30, 100),
}
COLUMNS = [
  ("setting", "setting", "s"),
  ("trained_on", "trained on", "s"),
  ("model", "model", "s"),
  ("features", "features", "s"),
  ("augment", "augment", "s"),
  ("test_accuracy", "in-dist. acc", ".3f"),
  ("roc_auc", "held-out AUC", ".3f"),
  ("ap", "AP", ".3f"),
  ("accuracy", "acc", ".3f"),
  ("real_accuracy", "real acc", ".3f"),
  ("fake_accuracy", "fake acc", ".3f"),
  ("tpr_at_fpr_0.05", "TPR@5%", ".3f"),
  ("detected", "detected", ".3f"),
  ("real_flagged", "real flagged", ".3f"),
  ("seconds", "wall (s)", ".0f"),
]
CANDIDATE_COLUMNS = [
  ("candidate", "candidate", "s"),
  ("runs", "runs", "d"),
  ("fake_flagged", "held-out fakes flagged", ".3f"),
  ("fake_flagged_min", "worst run", ".3f"),
  ("real_flagged", "test reals flagged", ".3f"),
]


def short(folder: str) -> str:
  """`B_gan_transposed` -> `gan_transposed` (a family's name without its class letter)."""
  return folder.split("_", 1)[1] if len(folder) > 2 and folder[1] == "_" else folder


def protocol_layout(config, out: Path) -> tuple[str, list[str]]:
  """Links the test part of the synthetic data as `out/<family>/{0_real,1_fake}`; returns (real class, family folders)."""
  from freqforensics.data import images, loading, preparation  # pylint: disable=g-import-not-at-top

  src = loading.source_dir(config, progress=False)
  folders = images.list_class_folders(src)
  real, families = folders.class_names[0], list(folders.class_names[1:])

  def test_part(name: str) -> tuple[Path, ...]:
    files = folders.files[name]
    n_train, n_val, n_test = preparation.split_counts(len(files), tuple(config.data.split), name)
    return files[n_train + n_val : n_train + n_val + n_test]

  for fam in families:
    for cls, name in (("0_real", real), ("1_fake", fam)):
      d = out / short(fam) / cls
      d.mkdir(parents=True, exist_ok=True)
      for f in test_part(name):
        if not (d / f.name).is_symlink():
          os.symlink(f.resolve(), d / f.name)
  return real, families


def evaluate(config, workdir: Path, layout: Path) -> tuple[dict[str, Any], float]:
  """`mode=eval` of a run's bundle on the layout (read back when an earlier call wrote it); (report, seconds)."""
  from freqforensics.evaluation import cross_generator, runner  # pylint: disable=g-import-not-at-top

  path = workdir / f"eval_{cross_generator.report_name(layout)}.json"
  if path.is_file():
    report = json.loads(path.read_text())
    return report, report.get("seconds", 0.0)
  c = config.copy_and_resolve_references()
  c.mode, c.eval.source_dir = "eval", str(layout)
  start = time.perf_counter()
  report = next(iter(runner.evaluate_workdir(c, workdir).values())).metrics
  seconds = time.perf_counter() - start
  atomic.write_json(path, dict(json.loads(path.read_text()), seconds=seconds))
  return report, seconds


def _fmt(value: float | None) -> str:
  return "-" if value is None else f"{value:.3f}"


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
  values = [r[key] for r in rows if r.get(key) is not None]
  return float(np.mean(values)) if values else None


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.set_defaults(config="configs/families.py")
  parser.add_argument("--models", default="log2,cnn")
  parser.add_argument("--features", default=",".join(FEATURES))
  parser.add_argument("--augment", default="none,blur_jpeg", help="none and/or blur_jpeg")
  parser.add_argument("--settings", default=",".join(SETTINGS))
  parser.add_argument("--families", default="", help="train-set families of one/all_but_one (default: every family)")
  args = scripts.parse_args(parser, argv)
  from freqforensics.errors import UserError  # pylint: disable=g-import-not-at-top
  from freqforensics.generators import synthetic  # pylint: disable=g-import-not-at-top

  split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
  models, features, augments, settings = (
    split(args.models),
    split(args.features),
    split(args.augment),
    split(args.settings),
  )
  for name, values, allowed in (
    ("--features", features, FEATURES),
    ("--augment", augments, ("none", "blur_jpeg")),
    ("--settings", settings, SETTINGS),
  ):
    if any(v not in allowed for v in values):
      raise UserError(f"{name}={','.join(values)}: use any of {', '.join(allowed)}")
  base = scripts.script_config(args)
  wanted = split(args.families)
  if wanted:  # a mistyped family would leave no run to do: refused before the results folder is made
    from freqforensics.data import images, loading  # pylint: disable=g-import-not-at-top

    known = [short(f) for f in images.list_class_folders(loading.source_dir(base, progress=False)).class_names[1:]]
    unknown = [f for f in wanted if f not in known]
    if unknown:
      raise UserError(
        f"--families={args.families}: unknown family {', '.join(unknown)} (not in the synthetic data of --config);"
        f" use any of {', '.join(known)}"
      )
  out = scripts.output_dir(args, "generalization")
  layout = out / "protocol"
  real, families = protocol_layout(base, layout)
  chosen = [f for f in families if not wanted or short(f) in wanted]
  plans = []  # (setting, trained-on label, data.classes, held-out family folders, simulated generators?)
  for setting in settings:
    if setting == "one":
      plans += [(setting, short(f), (real, f), [g for g in families if g != f], False) for f in chosen]
    elif setting == "all_but_one":
      plans += [(setting, f"all but {short(f)}", (real, *[g for g in families if g != f]), [f], False) for f in chosen]
    else:
      plans.append((setting, "simulated upsamplers", (), families, True))
  rows, candidate_runs = [], []
  for setting, trained_on, classes, held_out, simulated in plans:
    for model in models:
      for feature in features:
        if model in ("cnn", "resnet") and feature == "azimuthal":
          continue
        for aug in augments:
          c = scripts.script_config(args)
          c.model.name, c.features, c.progress, c.data.classes = model, feature, False, classes
          if simulated:
            c.data.synthetic.generators = synthetic.GENERATORS
          if aug != "none":
            for k, v in AUGMENT.items():
              c.augment[k] = v
          tag = f"{setting}_{trained_on.replace(' ', '_')}_{model}_{feature}_{aug}"
          workdir = out / "runs" / tag
          m = scripts.run(c, workdir)
          report, eval_seconds = evaluate(c, workdir, layout)
          by = {g: report["by_generator"][short(g)] for g in families}
          held = [by[g] for g in held_out]
          row = {
            "setting": setting,
            "trained_on": trained_on,
            "model": model,
            "features": feature,
            "augment": aug,
            "test_accuracy": m["accuracy"],
            **{k: _mean(held, k) for k, _, _ in COLUMNS[6:-1]},
            "seconds": m["seconds"] + eval_seconds,
            "held_out": [short(g) for g in held_out],
            "by_family": {short(g): r for g, r in by.items()},
          }
          rows.append(row)
          cands = report.get("outlier_candidates") or {}
          candidate_runs.append({short(g): cands[short(g)] for g in held_out if short(g) in cands})
          print(
            f"{tag}: in-dist {m['accuracy']:.3f}, held-out AUC {row['roc_auc']:.3f}, fake acc {row['fake_accuracy']:.3f},"
            f" detected {_fmt(row['detected'])} ({row['seconds']:.0f} s)",
            flush=True,
          )
  candidates = _candidate_rows(candidate_runs)
  notes = (
    f"Config {scripts.config_label(args)}. Held-out columns are means over the families each run never saw"
    " (one: the other five; all but one: the one left out; no access: all six), each tested on its test split"
    " with the real class's test split as its reals. Decisions at each bundle's own threshold (eval.threshold,"
    " chosen on its validation split); detected = fake or flagged by the open-set score; wall time = training"
    " and test + mode=eval."
  )
  md = scripts.write_results(out, "generalization", rows, COLUMNS, title="Cross-generator generalization", notes=notes)
  scripts.write_results(
    out,
    "outlier_candidates",
    candidates,
    CANDIDATE_COLUMNS,
    title="Open-set score candidates on held-out families",
    notes="Mean over runs (and their held-out families) of the share flagged; thresholds at 5% real validation FPR.",
  )
  _figure(out, rows, families)
  print(md.read_text())
  return out


def _candidate_rows(runs: list[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
  names = sorted({k for run in runs for fam in run.values() for k in fam})
  out = []
  for k in names:
    per_run = [np.mean([fam[k]["fake_flagged"] for fam in run.values()]) for run in runs if run]
    reals = [np.mean([fam[k]["real_flagged"] for fam in run.values()]) for run in runs if run]
    out.append(
      {
        "candidate": k,
        "runs": len(per_run),
        "fake_flagged": float(np.mean(per_run)),
        "fake_flagged_min": float(np.min(per_run)),
        "real_flagged": float(np.mean(reals)),
      }
    )
  return sorted(out, key=lambda r: -r["fake_flagged"])


def _figure(out: Path, rows: list[dict[str, Any]], families: list[str]) -> None:
  """ROC-AUC of each train family (rows) on each test family (columns): `one` setting, first model, no augmentation."""
  from freqforensics.evaluation import figures  # pylint: disable=g-import-not-at-top

  one = [r for r in rows if r["setting"] == "one" and r["augment"] == "none"]
  if not one:
    return
  model = one[0]["model"]
  names = [short(f) for f in families]
  panels = {}
  for feature in dict.fromkeys(r["features"] for r in one if r["model"] == model):
    grid = np.full((len(names), len(names)), np.nan)
    for r in one:
      if r["model"] == model and r["features"] == feature and r["trained_on"] in names:
        grid[names.index(r["trained_on"])] = [r["by_family"][n]["roc_auc"] for n in names]
    panels[feature] = grid
  figures.matrix_png(
    panels,
    names,
    names,
    out / "generalization.png",
    f"{model}: trained on real vs one family (rows), tested on each family (columns)",
    "ROC-AUC",
  )


if __name__ == "__main__":
  scripts.launch(main)
