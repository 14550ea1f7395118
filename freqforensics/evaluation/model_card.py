"""The model card of a bundle: what the model was trained on, how to read its output, and where it fails.

Written at the end of training as `bundle/MODEL_CARD.md` and, as fields, under `model_card` in
`bundle.json`: the data (class folders, image counts per split, the image sizes and file formats seen),
the label order and which label is real, the preprocessing, the decision threshold with its policy,
the calibration, validation and test metrics, the cross-generator table when `mode=eval` ran the
protocol on this bundle (`add_cross_generator`), and the known failure modes, stated plainly.
`classify` prints the card's summary line and warns once when its inputs' sizes or formats differ
from the ones seen in training (`input_warning`).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqforensics import bundle, text

SAMPLE = 2000  # files whose header is read to record the sizes and formats seen in training
INPUT_SAMPLE = 256  # files of a classify run whose header is compared with them


def headers(files: Sequence[Path], limit: int) -> dict[str, Any]:
  """Sizes (`WxH`) and formats (Pillow's names) of up to `limit` files evenly spread over `files`
  (headers only, no decoding, by the one reader `images.read_header` with its pixel limit); files it
  refuses (a decompression bomb, a damaged file) are counted per reason under `skipped`."""
  from freqforensics.data import images  # pylint: disable=g-import-not-at-top

  files = list(files)
  pick = np.unique(np.linspace(0, len(files) - 1, min(limit, len(files))).round().astype(int)) if files else []
  sizes: collections.Counter = collections.Counter()
  formats: collections.Counter = collections.Counter()
  skipped: collections.Counter = collections.Counter()
  for i in pick:
    try:
      header = images.read_header(files[i])
    except images.ImageDecodeError as e:
      skipped[e.reason] += 1
      continue
    sizes[f"{header.width}x{header.height}"] += 1
    formats[header.format] += 1
  return {
    "sampled": len(pick),
    "of": len(files),
    "sizes": dict(sizes.most_common()),
    "formats": dict(formats.most_common()),
    "skipped": dict(skipped.most_common()),
  }


def training_files(prepared) -> list[Path]:
  """The source files a prepared dataset holds (by the listing rule), or [] when the folder is gone.

  Preparation keeps, per class, the first usable files in sorted order up to its split counts: the
  files it skipped (`skipped_files.csv`) and the ones beyond the counts are not the training data.
  """
  from freqforensics.data import images, reader  # pylint: disable=g-import-not-at-top
  from freqforensics.errors import UserError  # pylint: disable=g-import-not-at-top

  source = prepared.metadata.get("source_dir")
  try:
    folders = images.list_class_folders(source, min_classes=1, classes=prepared.label_names) if source else None
  except UserError:
    return []
  if folders is None:
    return []
  try:
    skipped = {row["path"] for row in reader.read_report(prepared.path)}
  except (OSError, KeyError, csv.Error):
    skipped = set()
  counts = prepared.metadata.get("counts") or {}
  out = []
  for name in folders.class_names:
    usable = [f for f in folders.files[name] if images.relative_name(f, folders.root) not in skipped]
    kept = sum(int(v) for v in (counts.get(name) or {}).values()) if name in counts else len(usable)
    out += usable[:kept]
  return out


FAILURE_MODES = (
  "Generators whose upsampling differs from every training class can pass as real: a detector trained on one"
  " GAN family caught another family's images or missed them entirely in our tests (docs/generalization.md).",
  "Blur removes the high frequencies the model reads: blurred fakes look real to it (docs/robustness.md).",
  "JPEG compression removes fine detail and adds its own 8x8 block pattern to the spectrum: scores drop on"
  " re-compressed images unless the model was trained with JPEG augmentation.",
  "Images of other sizes or formats than the ones listed under data are resized or decoded differently, which"
  " changes their spectrum; classify warns when its inputs differ.",
)


def _fmt(x: Any, spec: str = ".4f") -> str:
  return "n/a" if x is None else format(x, spec)


def _split_metrics(m: dict[str, Any] | None) -> dict[str, Any] | None:
  if not m:
    return None
  out = {"accuracy": m.get("accuracy"), "num_examples": m.get("num_examples")}
  if m.get("detection"):
    d = m["detection"]
    out.update({k: d.get(k) for k in ("roc_auc", "ap", "tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "eer", "ece")})
    out["accuracy_at_threshold"] = d.get("accuracy")
  return out


def build(
  info: bundle.BundleInfo,
  prepared,
  *,
  source: str,
  val: dict[str, Any] | None,
  test: dict[str, Any] | None,
) -> dict[str, Any]:
  """The card's fields from the bundle description and the final validation and test metrics.

  Args:
    info: the bundle's description with its calibration (and open-set) block.
    prepared: the prepared dataset it was trained on (class counts; file headers are sampled).
    source: the config's `data.source` (`synthetic` or `folder`).
    val: the validation metrics (with the detection block for a detector).
    test: the test metrics, or None when test has no images.
  """
  labels = list(info.label_names)
  real = info.real_label
  counts = prepared.metadata.get("counts") or {}
  seen = headers(training_files(prepared), SAMPLE)
  c, o = info.calibration or {}, info.outliers
  failure = list(FAILURE_MODES)
  if source == "synthetic":
    failure.append(
      "Trained on synthetic data (the embedded synthetic data set of bundled photographs and small generators): this"
      " model is not a detector for images in the wild."
    )
  if (info.augment or {}).get("kind", "none") == "none":
    failure.append("Trained without augmentation: no blur, JPEG or noise was seen in training.")
  if real is None:
    failure.append("No class is named as real: the model attributes images to its classes but is no detector.")
  card = {
    "data": {
      "source": source,
      "dataset": info.dataset,
      "source_dir": prepared.metadata.get("source_dir"),
      "classes": {n: counts.get(n, {}) for n in labels},
      "image_sizes": seen["sizes"],
      "formats": seen["formats"],
      "headers_sampled": seen["sampled"],
      "files": seen["of"],
    },
    "label_names": labels,
    "real_class": labels[real] if real is not None else None,
    "preprocessing": {
      "image_size": info.image_size,
      "channels": info.channels,
      "crop": info.crop,
      "features": info.features,
      "augment": (info.augment or {}).get("kind", "none"),
    },
    "threshold": {k: c.get(k) for k in ("policy", "threshold", "val_fpr", "val_tpr")} if real is not None else None,
    "calibration": {
      k: c.get(k) for k in ("temperature", "nll_before", "nll_after", "ece_before", "ece_after", "val_all_right")
    },
    "outliers": {k: o.get(k) for k in ("score", "fpr", "thresholds", "val_real_flagged")} if o else None,
    "metrics": {"val": _split_metrics(val), "test": _split_metrics(test)},
    "cross_generator": {},
    "failure_modes": failure,
  }
  card["summary"] = summary_line(info, card)
  return card


# The card's fields that classify, mode=eval and `render` read, with the JSON types `build` gives each.
_FIELDS: dict[str, tuple[type, ...]] = {
  "summary": (str,),
  "data": (dict,),
  "label_names": (list,),
  "real_class": (str, type(None)),
  "preprocessing": (dict,),
  "threshold": (dict, type(None)),
  "calibration": (dict,),
  "outliers": (dict, type(None)),
  "metrics": (dict,),
  "cross_generator": (dict,),
  "failure_modes": (list,),
}
_DATA_FIELDS = ("classes", "image_sizes", "formats")  # objects: class -> counts, size or format -> files


def problem(card: Any) -> str | None:
  """What is wrong with a bundle's `model_card` block (as `build` writes it), or None: checked when the bundle
  is loaded, so an edited card is one line, not a KeyError later."""
  if not isinstance(card, dict):
    return "is not an object"
  for key, kinds in _FIELDS.items():
    if key not in card or not isinstance(card[key], kinds):
      return f"lacks {key}, or it is not a JSON {' or '.join(_JSON_NAMES[k] for k in kinds)}"
  for key in _DATA_FIELDS:
    value = card["data"].get(key)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
      return f"lacks data.{key}, or it is not a JSON object"
  return None


_JSON_NAMES = {str: "string", dict: "object", list: "list", type(None): "null"}


def summary_line(info: bundle.BundleInfo, card: dict[str, Any]) -> str:
  """One line: model, classes, what it was trained on, its operating point and test numbers."""
  d, t = card["data"], (card["metrics"].get("test") or {})
  train = sum(int(v.get("train", 0)) for v in d["classes"].values())
  sizes = ", ".join(list(d["image_sizes"])[:2]) or "unknown sizes"
  parts = [
    f"{info.model} on {info.features} features, {len(card['label_names'])} classes ({', '.join(card['label_names'])})",
    f"trained on {train} {d['source']} images ({sizes})",
  ]
  if card["real_class"] is not None and card["threshold"]:
    th = card["threshold"]
    parts.append(f"real class {card['real_class']}, decision p_fake > {_fmt(th['threshold'], '.3g')} ({th['policy']})")
  if t:
    parts.append(
      f"test accuracy {_fmt(t.get('accuracy'), '.3f')}"
      + (f", ROC-AUC {_fmt(t['roc_auc'])}" if t.get("roc_auc") is not None else "")
    )
  return "; ".join(parts)


def render(info: bundle.BundleInfo, card: dict[str, Any]) -> str:
  """`MODEL_CARD.md`."""
  d, p, md = card["data"], card["preprocessing"], text.for_markdown  # every name from folders or a bundle escaped
  lines = [f"# Model card: {md(info.model)} on {md(info.features)} features", "", md(card["summary"])]
  lines += ["", "## Data", ""]
  lines.append(f"Source: {md(d['source'])} ({md(d.get('source_dir'))}); prepared dataset {md(d.get('dataset'))}.")
  lines += ["", "| class (label) | train | val | test |", "|---|---|---|---|"]
  for i, (name, n) in enumerate(d["classes"].items()):
    real = " **real**" if name == card["real_class"] else ""
    cells = [md(n.get(s, "-")) for s in ("train", "val", "test")]
    lines.append(f"| {md(name)} ({i}){real} | " + " | ".join(cells) + " |")
  lines += [
    "",
    f"Image sizes seen (headers of {d['headers_sampled']} of {d['files']} files): "
    + (", ".join(f"{md(k)} ({v})" for k, v in d["image_sizes"].items()) or "unknown"),
    "Formats seen: " + (", ".join(f"{md(k)} ({v})" for k, v in d["formats"].items()) or "unknown"),
    "",
    "## Preprocessing",
    "",
    f"Decoded to {md(p['channels'])} channel(s), crop rule {md(p['crop'])} to {md(p['image_size'])}x"
    f"{md(p['image_size'])}, features {md(p['features'])}; training augmentation: {md(p['augment'])}.",
    "",
    "## Output and operating point",
    "",
  ]
  cal = card["calibration"]
  if card["real_class"] is not None and card["threshold"]:
    th = card["threshold"]
    lines.append(
      f"`p_fake` = 1 - p({md(card['real_class'])}). Decision: fake when p_fake > {_fmt(th['threshold'], '.4g')},"
      f" chosen on the validation split by policy {md(th['policy'])} (there: {_fmt(th['val_fpr'], '.3f')} of reals flagged,"
      f" {_fmt(th['val_tpr'], '.3f')} of fakes caught)."
    )
  else:
    lines.append("No real class: the model gives class probabilities only (no p_fake, no decision).")
  if cal.get("val_all_right"):
    lines.append(
      "Calibration: temperature 1, kept: every validation image was classified right, so the validation NLL"
      " has no minimum to fit (it only falls as the model is made surer)."
    )
  else:
    lines.append(
      f"Calibration: temperature {_fmt(cal.get('temperature'), '.3g')} fit on validation (NLL"
      f" {_fmt(cal.get('nll_before'))} -> {_fmt(cal.get('nll_after'))}, ECE {_fmt(cal.get('ece_before'))} ->"
      f" {_fmt(cal.get('ece_after'))})."
    )
  if card["outliers"]:
    o = card["outliers"]
    lines.append(
      f"Open-set score {md(o['score'])}: an image is flagged as an outlier (unlike the training data) when it is above"
      f" {_fmt(o['thresholds'][o['score']], '.4g')}, set so that at most {o['fpr']:.0%} of real validation images are"
      f" flagged ({_fmt(o['val_real_flagged'][o['score']], '.3f')} were)."
    )
  lines += [
    "",
    "## Metrics",
    "",
    "| split | accuracy | acc at threshold | ROC-AUC | AP | TPR@1% | TPR@5% | EER | ECE |",
  ]
  lines.append("|---|---|---|---|---|---|---|---|---|")
  for split, m in card["metrics"].items():
    if m:
      keys = ("accuracy", "accuracy_at_threshold", "roc_auc", "ap", "tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "eer", "ece")
      lines.append(f"| {split} | " + " | ".join(_fmt(m.get(k), ".3f") for k in keys) + " |")
  if card["cross_generator"]:
    lines += ["", "## Cross-generator tests (mode=eval)", ""]
    for name, table in card["cross_generator"].items():  # one table per source, added by `add_cross_generator`
      where = f" ({md(table['source_dir'])})" if table.get("source_dir") else ""
      lines += [f"{md(name)}{where}:", "", table["markdown"]]
  lines += ["", "## Known failure modes", ""] + [f"- {f}" for f in card["failure_modes"]]
  return "\n".join(lines) + "\n"


def add_cross_generator(info: bundle.BundleInfo, name: str, report: dict[str, Any], markdown: str) -> bundle.BundleInfo:
  """`info` with the card's cross-generator entry `name` set (its mean row, table and source folder).

  `name` is the report's name, one per source folder (`cross_generator.report_name`): a second source
  adds its table beside the first, the same source again replaces its own. `markdown` is escaped
  already (`detection.markdown`)."""
  card = dict(info.model_card or {})
  entry = {"mean": report["mean"], "markdown": markdown, "source_dir": report.get("source_dir")}
  card["cross_generator"] = {**(card.get("cross_generator") or {}), name: entry}
  return dataclasses.replace(info, model_card=card)


def input_warning(card: dict[str, Any] | None, files: Sequence[Path], limit: int = INPUT_SAMPLE) -> str | None:
  """A one-paragraph warning when inputs' sizes or formats were not seen in training; None when they were
  (or the bundle has no card). Headers of up to `limit` files, evenly spread, are read."""
  if not card or not files:
    return None
  trained_sizes, trained_formats = list(card["data"]["image_sizes"]), list(card["data"]["formats"])
  if not trained_sizes and not trained_formats:
    return None
  seen = headers(files, limit)
  sizes = [s for s in seen["sizes"] if trained_sizes and s not in trained_sizes]
  formats = [f for f in seen["formats"] if trained_formats and f not in trained_formats and f != "unreadable"]
  if not sizes and not formats:
    return None
  what = []
  if formats:
    what.append(f"formats {', '.join(formats)} (trained on {', '.join(trained_formats)})")
  if sizes:
    shown = ", ".join(sizes[:4]) + (" ..." if len(sizes) > 4 else "")
    what.append(f"sizes {shown} (trained on {', '.join(trained_sizes[:4])})")
  return (
    f"warning: inputs differ from what this model was trained on: {'; '.join(what)} (headers of {seen['sampled']}"
    f" of {seen['of']} input files checked). Its scores may not hold for them: see the model card's known"
    " failure modes (MODEL_CARD.md in the bundle)."
  )
