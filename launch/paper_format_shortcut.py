r"""Is it detecting the generator or the file format? The shortcut gap, on the synthetic data (issue 19).

  python launch/paper_format_shortcut.py [--config=configs/demo.py] [--real_quality=90] [--models=log2,cnn] \
      [--features=pixel,dct_log] [--results=runs/results] [--tiny] [--resume=FOLDER] [--config.KEY=VALUE ...]

The config's class folders (the synthetic data set by default, every class PNG) become two
training sets with the same images:
- **biased**: the real class (the first class folder, or `--real`) saved as JPEG at
  `--real_quality`, the generated classes kept as PNG: the format difference of the paper's own
  data sets (CelebA and LSUN reals in JPEG, GAN samples in PNG);
- **matched**: the same files prepared with `data.match_format=jpeg:<real_quality>`, so every
  class goes through the same JPEG step before it is stored (`data/format_matching.py`).
Each model (`--models`) on each feature kind (`--features`) is trained on each set and tested on
its own test split, on the matched test split (the same test images, formats matched) and on a
processed test set (`data/processing_plan.py`: the test files of the biased set through one
crop, resize and JPEG chain from a seeded per-image plan, as Corvi et al. do; at the model's
input size). The **shortcut gap** is the accuracy on a model's own test split minus its accuracy on
the matched one. Writes `format_shortcut.md` / `.json`, `format_shortcut.png`, the format audit of
the biased set (`audit/`), the processed set with its `plan.csv` (`data/processed/`) and every
run's work dir (with `eval_matched_test.json`, `eval_processed_test.json`) into a new folder under
`--results`. `--tiny` is the smoke version (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from freqforensics.tools import scripts

COLUMNS = [
  ("trained_on", "trained on", "s"),
  ("model", "model", "s"),
  ("features", "features", "s"),
  ("own", "own test", ".3f"),
  ("matched", "matched test", ".3f"),
  ("processed", "processed test", ".3f"),
  ("gap", "shortcut gap", "+.3f"),
  ("fakes_as_real_matched", "fakes called real: matched", ".3f"),
  ("fakes_as_real_processed", "processed", ".3f"),
  ("epoch_seconds", "training s", ".0f"),
]


def write_biased(source: Path, out: Path, real: str, quality: int) -> Path:
  """`out`: `source`'s class folders with the class `real` saved as JPEG at `quality`, the others copied as they are.

  Written once (its files registered in the folder's ownership record; `variant.json`, its parameters, is
  written last); a folder holding another variant is refused.
  """
  from freqforensics.data import distortions, images  # pylint: disable=g-import-not-at-top
  from freqforensics.errors import UserError  # pylint: disable=g-import-not-at-top
  from freqforensics.files import ownership  # pylint: disable=g-import-not-at-top

  marker, record = out / "variant.json", ownership.OwnershipRecord(out)
  want = {"source": str(source.resolve()), "real": real, "real_quality": quality}
  if marker.is_file():
    if json.loads(marker.read_text()) != want:
      raise UserError(f"{out} holds another biased variant: resume the results folder that made it, or start anew")
    return out
  folders = images.list_class_folders(source, option="--config.data.source_dir")
  if real not in folders.class_names:
    raise UserError(f"--real={real} is not a class folder of {source} ({', '.join(folders.class_names)})")
  for name in folders.class_names:
    for f in folders.files[name]:
      rel = Path(images.relative_name(f, folders.root))
      if name == real:
        record.write_bytes(rel.with_suffix(".jpg"), distortions.encode_jpeg(images.read_image(f), quality))
      else:
        record.write_with(rel, lambda tmp, f=f: shutil.copyfile(f, tmp))
  record.write_json(marker.name, want)
  return out


def _fakes_as_real(m: dict[str, Any], real: str) -> float:
  """The share of test images of the generated classes that the model called real."""
  confusion = np.asarray(m["confusion_matrix"])
  r = list(m["label_names"]).index(real)
  fakes = np.delete(confusion, r, axis=0)
  return float(fakes[:, r].sum() / max(1, fakes.sum()))


def _epoch_seconds(workdir: Path) -> float:
  """Wall time of a run's training epochs (its metrics.jsonl): the same whether the run was trained now or reused."""
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  return float(sum(r.get("seconds", 0.0) for r in rows))


def _plot(rows: list[dict], path: Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  from freqforensics.files import figure_marks  # pylint: disable=g-import-not-at-top

  fig, (top, bottom) = plt.subplots(
    2, 1, figsize=(max(6.5, 1.1 * len(rows)), 7), sharex=True, constrained_layout=True, height_ratios=(3, 2)
  )
  x = np.arange(len(rows))
  for k, (key, label) in enumerate((("own", "own test"), ("matched", "matched test"), ("processed", "processed test"))):
    top.bar(x + (k - 1) * 0.27, [r[key] for r in rows], 0.27, label=label, color=f"C{k}")
  for i, r in enumerate(rows):
    top.annotate(f"gap {r['gap']:+.2f}", (i, 1.02), ha="center", fontsize=8, annotation_clip=False)
  top.set_ylim(0, 1.1)
  top.set_ylabel("test accuracy")
  top.set_title("Trained on biased (reals JPEG, fakes PNG) or format-matched data", fontsize=10)
  top.legend(fontsize=8, loc="lower left")
  for k, (key, label) in enumerate(
    (("fakes_as_real_matched", "matched test"), ("fakes_as_real_processed", "processed test"))
  ):
    bottom.bar(x + (k - 0.5) * 0.35, [r[key] for r in rows], 0.35, label=label, color=f"C{k + 1}")
  bottom.set_ylabel("fakes called real")
  bottom.legend(fontsize=8, loc="upper right")
  bottom.set_xticks(x, [f"{r['model']}\n{r['features']}\n{r['trained_on']}" for r in rows], fontsize=8)
  figure_marks.save_figure(fig, path, dpi=110)
  plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
  from freqforensics import bundle, steps  # pylint: disable=g-import-not-at-top
  from freqforensics.data import (  # pylint: disable=g-import-not-at-top
    format_audit,
    images,
    loading,
    preparation,
    processing_plan,
  )
  from freqforensics.evaluation import runner  # pylint: disable=g-import-not-at-top

  parser = scripts.script_parser(__doc__)
  parser.add_argument("--real", default="", help="the real class folder; default the first class")
  parser.add_argument("--real_quality", type=int, default=90, help="JPEG quality of the biased set's reals")
  parser.add_argument("--models", default="log2,cnn")
  parser.add_argument("--features", default="pixel,dct_log")
  args = scripts.parse_args(parser, argv)
  out = scripts.output_dir(args, "format_shortcut")
  base = scripts.script_config(args)
  base.progress = False
  source = loading.source_dir(base, progress=False)
  classes = tuple(base.data.classes) or images.list_class_folders(source).class_names
  real = args.real or sorted(classes)[0]
  biased_dir = write_biased(source, out / "data" / "biased", real, args.real_quality)
  audit = format_audit.audit_path(biased_dir)
  format_audit.write_report(audit, out / "audit")
  for line in format_audit.findings(audit):  # once here, not again for every run that prepares the data
    print(f"format audit of the biased set: {line}", file=sys.stderr)
  logging.getLogger("freqforensics.data.loading").setLevel(logging.ERROR)

  def variant(name: str):
    c = scripts.script_config(args)
    c.progress, c.data.source, c.data.source_dir = False, "folder", str(biased_dir)
    c.data.match_format = f"jpeg:{args.real_quality}" if name == "matched" else ""
    return c

  # The common test sets: the matched split, and the biased set's test files processed by one plan.
  matched = loading.prepare_from_config(variant("matched"), progress=False)
  biased = loading.prepare_from_config(variant("biased"), progress=False)
  test_files = out / "data" / "test_files"
  split = biased.source("test")
  for i in range(len(split)):
    rel = split[i]["path"].decode() if isinstance(split[i]["path"], bytes) else str(split[i]["path"])
    link = test_files / rel
    if not link.exists():
      link.parent.mkdir(parents=True, exist_ok=True)
      link.symlink_to(biased_dir / rel)
  size = base.data.image_size
  processing_plan.process_folder(
    test_files, out / "data" / "processed", processing_plan.Chain(size=size), seed=base.seed, progress=False
  )
  processed = preparation.prepare(
    out / "data" / "processed",
    loading.data_root(base) / "prepared",
    preparation.PrepareOptions(size, base.data.channels, (0.0, 0.0, 1.0), crop="none"),  # already at size
    progress=False,
    min_classes=1,
  )

  rows = []
  for trained_on in ("biased", "matched"):
    for model in args.models.split(","):
      for features in args.features.split(","):
        c = variant(trained_on)
        c.model.name, c.features = model, features
        workdir = out / "runs" / f"{trained_on}_{model}_{features}"
        m = scripts.run(c, workdir)
        b = bundle.load(workdir / "bundle")
        evaluate = runner.bundle_evaluator(
          b, num_devices=steps.num_devices(c), batch_size=c.eval.batch_size, progress=False
        )
        tested = {}  # each written as mode=eval writes its report (eval_<name>_test.json)
        for name, prepared in (("matched", matched), ("processed", processed)):
          source = loading.relabelled_split(prepared, b.label_names, "test")
          tested[name] = runner.report(
            b, workdir, evaluate, source, f"{name}_test", real_class=c.data.real_class
          ).metrics
        rows.append(
          {
            "trained_on": trained_on,
            "model": model,
            "features": features,
            "own": m["accuracy"],
            "matched": tested["matched"]["accuracy"],
            "processed": tested["processed"]["accuracy"],
            "gap": m["accuracy"] - tested["matched"]["accuracy"],
            "fakes_as_real_matched": _fakes_as_real(tested["matched"], real),
            "fakes_as_real_processed": _fakes_as_real(tested["processed"], real),
            "epoch_seconds": _epoch_seconds(workdir),
          }
        )
  md = scripts.write_results(
    out,
    "format_shortcut",
    rows,
    COLUMNS,
    title=f"Shortcut gap: {real} as JPEG q{args.real_quality}, the other classes PNG",
    notes=(
      f"Config {scripts.config_label(args)}. Own test: the test split of the data the model was trained on."
      f" Matched test: the same test images, every class JPEG q{args.real_quality} (data.match_format)."
      f" Processed test: the biased set's test files, square crop of a random side, resize to {size},"
      " JPEG quality 65-100, one seeded plan for every class (data/processed/plan.csv). Shortcut gap: own"
      " minus matched accuracy. Fakes called real: the share of the generated classes' test images the model"
      " assigned to the real class. Training s: the wall time of the training epochs."
    ),
  )
  _plot(rows, out / "format_shortcut.png")
  print(md.read_text())
  return out


if __name__ == "__main__":
  scripts.launch(main)
