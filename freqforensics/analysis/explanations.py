"""What a detector looks at: a linear model's weights over DCT frequencies; one image's spectrum.

The command is `python -m freqforensics.tools.explain`. An existing output file is refused;
`overwrite` replaces it only if freqforensics wrote it (a figure carries a mark saying so), and never
the image being read.

The `log*` models are one dense layer on the flattened (H, W, C) feature, so the absolute weight of
each input coefficient is a direct measure of how much that frequency moves each logit (inputs are
standardised per coefficient, so weights of different coefficients are comparable). Frank et al.
(2020) show such maps to locate the grid-like high-frequency artefacts of up-sampling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqforensics.errors import UserError
from freqforensics.files import figure_marks, output_paths
from freqforensics.models import linear


def weight_map(model: linear.LinearClassifier, input_shape: tuple[int, ...] | None = None) -> np.ndarray:
  """`|kernel|` of a linear model as `(classes, H, W)`, averaged over channels.

  The kernel is `(H*W*C, classes)`, flattened from `(H, W, C)` in C order (`reshape` in
  `LinearClassifier.__call__`). Without `input_shape`, a square input is inferred for C = 3, then
  C = 1; give it (e.g. `bundle.info.input_shape`) for anything else.
  """
  if not isinstance(model, linear.LinearClassifier):
    raise UserError(f"a weight map needs a linear model (log, log1, log2, log3), not {type(model).__name__}")
  kernel = np.asarray(model.dense.kernel[...], np.float64)
  inputs, classes = kernel.shape
  if input_shape is None:
    input_shape = _infer_shape(inputs)
  if int(np.prod(input_shape)) != inputs:
    raise UserError(f"input shape {tuple(input_shape)} does not match the model's {inputs} inputs")
  h, w, c = (*input_shape, 1) if len(input_shape) == 2 else tuple(input_shape)  # (H, W) = one channel
  # (H*W*C, K) -> (H, W, C, K): the same C-order reshape as the model's flatten, then classes first.
  per_coeff = np.abs(kernel).reshape(h, w, c, classes)
  return np.moveaxis(per_coeff.mean(axis=2), -1, 0)


def _infer_shape(inputs: int) -> tuple[int, int, int]:
  for c in (3, 1):
    side = int(round(np.sqrt(inputs / c)))
    if side * side * c == inputs:
      return side, side, c
  raise UserError(f"cannot infer an image shape from {inputs} inputs: pass input_shape=(H, W, C)")


def panel_titles(label_names: Sequence[str], classes: int) -> list[str]:
  """One title per output: the label name, or for a single sigmoid output, which label it scores."""
  names = [str(n) for n in label_names]
  if classes == 1 and len(names) == 2:
    return [f"{names[1]} vs {names[0]}"]  # a sigmoid logit is positive for label 1
  if len(names) == classes:
    return names
  return [f"output {k}" for k in range(classes)]


def plot_weight_map(weight_map: np.ndarray, label_names: Sequence[str], path: str | os.PathLike) -> Path:
  """Writes one panel per class on one shared log colour scale; returns the PNG path."""
  import matplotlib  # pylint: disable=g-import-not-at-top  (plotting only when asked)

  matplotlib.use("Agg")  # headless servers; must precede pyplot
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib.colors import LogNorm  # pylint: disable=g-import-not-at-top

  maps = np.asarray(weight_map, np.float64)
  titles = panel_titles(label_names, maps.shape[0])
  positive = maps[maps > 0]
  # LogNorm needs positive limits; zero weights (e.g. pruned by L1) show as the lowest colour.
  vmax = float(positive.max()) if positive.size else 1.0
  vmin = max(float(positive.min()) if positive.size else vmax * 1e-6, vmax * 1e-6)
  if vmin >= vmax:
    vmin = vmax / 10.0
  k = maps.shape[0]
  fig, axes = plt.subplots(1, k, figsize=(3.4 * k + 1.0, 3.2), squeeze=False, constrained_layout=True)
  for ax, title, m in zip(axes[0], titles, maps):
    im = ax.imshow(np.clip(m, vmin, None), cmap="magma", norm=LogNorm(vmin=vmin, vmax=vmax))
    ax.set_title(title)
    ax.set_xlabel("horizontal frequency (column)")
    ax.set_ylabel("vertical frequency (row)")
  fig.colorbar(im, ax=axes, shrink=0.85, label="|weight| (mean over channels)")
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  figure_marks.save_figure(fig, path, dpi=120)
  plt.close(fig)
  return path


FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def output_path(
  out: str | os.PathLike | None, default: Path, *, overwrite: bool = False, inputs: Sequence[str | os.PathLike] = ()
) -> Path:
  """The figure file to write: `out` or `default`; checked before any work (`output_paths.check_new_output`).

  An existing file is refused unless `overwrite` and freqforensics wrote it; an input is never replaced.
  """
  path = Path(out).expanduser() if out else default
  if path.suffix.lower() not in FIGURE_SUFFIXES:
    raise UserError(f"--out={path}: give a figure file ending in {', '.join(FIGURE_SUFFIXES)}")
  return output_paths.check_new_output(path, overwrite=overwrite, inputs=inputs)


def explain_workdir(
  workdir: str | os.PathLike,
  out: str | os.PathLike | None = None,
  *,
  overwrite: bool = False,
  allow_unfinished: bool = False,
) -> Path:
  """Loads `WORKDIR/bundle` and writes its weight map (default `WORKDIR/weight_map.png`); the bundle of a run
  that has not finished only with `allow_unfinished`."""
  from freqforensics import bundle as bundle_lib  # pylint: disable=g-import-not-at-top  (fast --help)
  from freqforensics.evaluation import inference  # pylint: disable=g-import-not-at-top

  inference.bundle_dir(workdir)  # a missing work dir, or a file given as one, before anything else
  path = output_path(out, Path(workdir) / "weight_map.png", overwrite=overwrite)
  b = bundle_lib.load(Path(workdir) / "bundle", allow_unfinished=allow_unfinished)
  if not isinstance(b.model, linear.LinearClassifier):
    raise UserError(
      f"the model of {workdir} is {b.info.model!r}: weight maps need a linear model (log, log1, log2 or log3)"
    )
  shape = b.info.feature_shape
  if len(shape) != 3:
    raise UserError(
      f"the model of {workdir} reads {b.info.features} features of shape {shape}, not a 2-D"
      " spectrum: weight maps need image-shaped features (dct_log, fft_log, wpt_log, ...)"
    )
  wm = weight_map(b.model, shape)
  if not out:
    _register(workdir, path)
  return plot_weight_map(wm, b.label_names, path)


def _register(workdir: str | os.PathLike, path: Path) -> None:
  """A default output in a run's work dir is registered there (`--overwrite` of the run may remove it)."""
  from freqforensics import workdir as wd  # pylint: disable=g-import-not-at-top

  if (Path(workdir) / "config.json").is_file():
    wd.register(workdir, path)


def image_vs_classes(
  image_path: str | os.PathLike,
  workdir: str | os.PathLike,
  out: str | os.PathLike | None = None,
  *,
  overwrite: bool = False,
  allow_unfinished: bool = False,
  **rule: Any,
) -> Path:
  """The log-DCT spectrum of one image beside the mean spectra of the training classes, with the
  model's probability for each class in the panel titles (channel-averaged, one colour scale); read
  natively, the image is scored by its patches' aggregate, as classify scores it, and the figure adds
  the patch map (`patch_maps`). The bundle of a run that has not finished is used only with `allow_unfinished`.

  Args:
    image_path: the image file to show (read by the bundle's own decoding, as classify reads it).
    workdir: a finished run's work dir (or a bundle folder); its training dataset must exist here.
    out: the PNG to write; default `WORKDIR/spectrum_<image stem>.png`.
    overwrite: replace a figure this command wrote earlier (never another file, never the image).
    allow_unfinished: use the bundle of a run that has not finished.
    **rule: the reading rule's parts instead of the bundle's: `read`, `aggregate`, `patch_stride`,
      `max_patches` (`inference.load`; None keeps the bundle's).
  """
  from freqforensics.analysis import mean_spectra, patch_maps  # pylint: disable=g-import-not-at-top
  from freqforensics.evaluation import inference  # pylint: disable=g-import-not-at-top

  inference.bundle_dir(workdir)  # a missing work dir, or a file given as one, before anything else
  path = output_path(
    out, Path(workdir) / f"spectrum_{Path(image_path).stem}.png", overwrite=overwrite, inputs=[image_path]
  )
  clf = inference.load(workdir, allow_unfinished=allow_unfinished, **rule)
  dataset_dir = clf.bundle.info.dataset
  if not dataset_dir or not Path(dataset_dir).is_dir():
    raise UserError(
      f"the bundle of {workdir} names no training dataset that exists here ({dataset_dir}): the class"
      " spectra come from it; run where the run's data cache is"
    )
  scored = patch_maps.score(clf, image_path)
  classes = mean_spectra.class_mean_spectra(dataset_dir)
  if not out:
    _register(workdir, path)
  return patch_maps.plot(Path(image_path).name, scored, classes, clf, path)
