r"""What a linear detector looks at: its weights as a map over DCT frequencies.

  python -m freqforensics.explain --workdir=WORKDIR [--out=PNG]

The `log*` models are one dense layer on the flattened (H, W, C) feature, so the absolute weight of
each input coefficient is a direct measure of how much that frequency moves each logit (inputs are
standardised per coefficient, so weights of different coefficients are comparable). Frank et al.
(2020) show such maps to locate the grid-like high-frequency artefacts of up-sampling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from freqforensics import cli
from freqforensics.errors import UserError
from freqforensics.models import linear


def weight_map(model: linear.LinearClassifier, input_shape: tuple[int, ...] | None = None) -> np.ndarray:
  """`|kernel|` of a linear model as `(classes, H, W)`, averaged over channels.

  The kernel is `(H*W*C, classes)`, flattened from `(H, W, C)` in C order (`reshape` in
  `LinearClassifier.__call__`). Without `input_shape`, a square input is inferred for C = 3, then
  C = 1; give it (e.g. `bundle.info["input_shape"]`) for anything else.
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
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def explain_workdir(workdir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
  """Loads `WORKDIR/bundle` and writes its weight map (default `WORKDIR/weight_map.png`)."""
  from freqforensics import bundle as bundle_lib  # pylint: disable=g-import-not-at-top  (fast --help)

  b = bundle_lib.load(Path(workdir) / "bundle")
  if not isinstance(b.model, linear.LinearClassifier):
    raise UserError(f"the model of {workdir} is {b.info.get('model')!r}: weight maps need a linear model"
                    " (log, log1, log2 or log3)")
  wm = weight_map(b.model, tuple(b.info["input_shape"]))
  return plot_weight_map(wm, b.label_names, out or Path(workdir) / "weight_map.png")


_fail = cli.fail


def main(argv: Sequence[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  absl_logging.set_verbosity(absl_logging.WARNING)  # as main.py: no backend-probe chatter

  if len(argv) > 1:
    _fail(f"unexpected arguments {' '.join(argv[1:])}: options take the form --name=value")
  if not flags.FLAGS.workdir:
    _fail("no work dir given: pass --workdir=DIR of a finished run (it holds bundle/)")
  try:
    path = explain_workdir(flags.FLAGS.workdir, flags.FLAGS.out)
  except UserError as e:
    _fail(str(e))
  print(f"weight map written to {path}")


if __name__ == "__main__":
  from absl import flags

  flags.DEFINE_string("workdir", None, "Work dir of a finished run (reads WORKDIR/bundle).")
  flags.DEFINE_string("out", None, "PNG to write (default WORKDIR/weight_map.png).")
  cli.run(main)
