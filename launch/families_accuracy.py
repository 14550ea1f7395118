r"""Test accuracy on the trained generator families: log2 and cnn, pixels vs log-DCT, multi-class and real vs each.

  python launch/families_accuracy.py [--config=configs/families.py] [--models=log2,cnn] [--binary=1] [--control=0] \
      [--results=runs/results] [--tiny] [--config.KEY=VALUE ...]

Runs the config as it is (every class: attribution) and, with `--binary=1`, once per fake class on
`data.classes = (A_real, that class)` (one sigmoid output), each model on `pixel` and `dct_log`
features, all through `scripts.run` (the training entry point `python -m freqforensics.main`
uses). Writes `families_accuracy.md` / `.json` (test accuracy, wall time, parameters; ROC-AUC for the
binary runs) into a new folder under `--results`. `--tiny` is the smoke version.
`--control=1` adds a control task: real crops of the photos' training half (`families.TRAIN_REGION`,
what the generators learned from) against real crops of the synthetic data's half, as many as the config
has per class, so the table shows how far content alone (which half of the photos) tells them apart.
"""

from __future__ import annotations

from pathlib import Path

from freqforensics.tools import scripts

COLUMNS = [
  ("task", "task", "s"),
  ("model", "model", "s"),
  ("features", "features", "s"),
  ("accuracy", "test accuracy", ".3f"),
  ("roc_auc", "ROC-AUC", ".4f"),
  ("epoch", "best epoch", "d"),
  ("seconds", "wall time (s)", ".0f"),
]
FEATURES = ("pixel", "dct_log")


def _control_folders(args, out: Path) -> Path:
  """Class folders `A_right_half` (the synthetic data's real crops' half) and `B_left_half` (the generators' training
  half), real crops only, on streams of their own; as many per class and as large as the config's synthetic data."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from freqforensics.generators import families, synthetic  # pylint: disable=g-import-not-at-top

  s = scripts.script_config(args).data.synthetic
  for folder, region, stream in (
    ("A_right_half", families.BENCH_REGION, 50),
    ("B_left_half", families.TRAIN_REGION, 51),
  ):
    (out / folder).mkdir(parents=True, exist_ok=True)
    for i in range(s.num_per_class):
      crop = synthetic.random_crop(np.random.default_rng([s.seed, stream, i]), s.image_size, region=region)
      Image.fromarray(crop).save(out / folder / f"{i:05d}.png")
  return out


def main(argv: list[str] | None = None) -> Path:
  parser = scripts.script_parser(__doc__)
  parser.set_defaults(config="configs/families.py")
  parser.add_argument("--models", default="log2,cnn")
  parser.add_argument("--binary", type=int, default=1, help="1 = also real vs each fake class; 0 = multi-class only")
  parser.add_argument(
    "--control", type=int, default=0, help="1 = also the photos' training half vs the synthetic data's half"
  )
  args = scripts.parse_args(parser, argv)
  out = scripts.output_dir(args, "families_accuracy")
  models = [m for m in args.models.split(",") if m]
  from freqforensics.data import loading  # pylint: disable=g-import-not-at-top

  classes = sorted(p.name for p in loading.source_dir(scripts.script_config(args)).iterdir() if p.is_dir())
  # (task, run-folder tag, data.classes, class-folder directory instead of the config's synthetic data)
  tasks = [("all classes", "all", (), "")]
  if args.binary:
    tasks += [(f"{classes[0]} vs {c}", c, (classes[0], c), "") for c in classes[1:]]
  if args.control:
    tasks.append(("control: right vs left photo half", "control", (), str(_control_folders(args, out / "control"))))
  rows = []
  for task, tag, task_classes, folder in tasks:
    for model in models:
      for features in FEATURES:
        c = scripts.script_config(args)
        c.model.name, c.features, c.progress = model, features, False
        c.data.classes = task_classes
        if folder:
          c.data.source, c.data.source_dir = "folder", folder
        m = scripts.run(c, out / "runs" / f"{model}_{features}_{tag}")
        rows.append(
          {
            "task": task,
            "model": model,
            "features": {"pixel": "pixels", "dct_log": "log DCT"}[features],
            "accuracy": m["accuracy"],
            "roc_auc": (m.get("binary") or {}).get("roc_auc"),
            "epoch": m.get("epoch"),
            "seconds": m["seconds"],
            "parameters": m["parameters"],
          }
        )
        print(f"{task} {model} {features}: {m['accuracy']:.3f} ({m['seconds']:.0f} s)", flush=True)
  title = "Trained generator families: test accuracy, pixels vs log DCT"
  notes = f"Config {scripts.config_label(args)}; test split; ours."
  scripts.write_results(out, "families_accuracy", rows, COLUMNS, title=title, notes=notes, show=True)
  return out


if __name__ == "__main__":
  scripts.launch(main)
