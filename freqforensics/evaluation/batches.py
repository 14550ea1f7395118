"""Files through a model of one input shape, a batch at a time: decoded (`data.decode`), padded to a
full batch (`padded`, the one padding of inference), run, and each file's outputs or `Unreadable`.

A file read natively is its patches (`data.patches`): every patch goes through the model, in the same
padded batches, and the file's outputs are their aggregate (`aggregate.image_outputs`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from freqforensics.data import decode, patches
from freqforensics.evaluation import aggregate

# One file's result: its outputs (`logits` and open-set scores, one row each) or why it could not be used.
Row = tuple[Path, dict[str, np.ndarray] | decode.Unreadable]
Decoded = np.ndarray | patches.Patches | decode.Unreadable


def padded(batch: np.ndarray, size: int) -> np.ndarray:
  """`batch` `(n, ...)` with zero rows appended up to `size` rows (unchanged when it has that many)."""
  if len(batch) >= size:
    return batch
  return np.concatenate([batch, np.zeros((size - len(batch),) + batch.shape[1:], batch.dtype)])


def run(
  images: np.ndarray, outputs: Callable[[np.ndarray], dict[str, np.ndarray]], batch_size: int
) -> dict[str, np.ndarray]:
  """`outputs` of uint8 `images` `(N, H, W, C)`, `batch_size` at a time, the last batch padded (one shape)."""
  parts = [outputs(padded(images[i : i + batch_size], batch_size)) for i in range(0, len(images), batch_size)]
  n = [min(batch_size, len(images) - i) for i in range(0, len(images), batch_size)]
  return {k: np.concatenate([p[k][:m] for p, m in zip(parts, n)]) for k in parts[0]}


def predicted(
  files: Sequence[Path],
  decoder: Callable[[Path], Decoded],
  outputs: Callable[[np.ndarray], dict[str, np.ndarray]],
  batch_size: int,
  rule: str = aggregate.DEFAULT,
) -> Iterator[list[Row]]:
  """Per batch of `files`, in order: `(path, outputs or Unreadable)`; `outputs` maps a uint8 batch to
  per-image arrays (`Classifier.outputs`); a file read as patches gets their aggregate by `rule`.

  Decoding runs a batch ahead in threads (`decode.decoded_batches`); a short last batch is padded to
  `batch_size`, so the model compiles for one shape (eval mode is per image: padding changes nothing).

  Args:
    files: the image files, in output order.
    decoder: path -> decoded image `(H, W, C)`, its patches `(P, S, S, C)`, or `Unreadable`.
    outputs: a uint8 batch -> per-image arrays (`logits`, open-set scores).
    batch_size: images (or patches) per model call.
    rule: how a file's patch outputs become its own (`aggregate`).
  """
  for paths, decoded in decode.decoded_batches(files, decoder, batch_size):
    good = [x for x in decoded if not isinstance(x, decode.Unreadable)]
    stacks = [x.images if isinstance(x, patches.Patches) else x[None] for x in good]
    rows: Iterator[dict[str, np.ndarray]] = iter(())
    if good:
      out = run(np.concatenate(stacks), outputs, batch_size)
      ends = np.cumsum([len(s) for s in stacks])
      each = [{k: v[end - len(s) : end] for k, v in out.items()} for s, end in zip(stacks, ends)]
      rows = iter(
        [
          aggregate.image_outputs(o, x, rule) if isinstance(x, patches.Patches) else {k: v[0] for k, v in o.items()}
          for o, x in zip(each, good)
        ]
      )
    yield [(path, x if isinstance(x, decode.Unreadable) else next(rows)) for path, x in zip(paths, decoded)]
