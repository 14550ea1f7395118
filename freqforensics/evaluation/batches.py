"""Files through a model of one input shape, a batch at a time: decoded (`data.decode`), padded to a
full batch (`padded`, the one padding of inference), run, and each file's outputs or `Unreadable`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from freqforensics.data import decode

# One file's result: its outputs (`logits` and open-set scores, one row each) or why it could not be used.
Row = tuple[Path, dict[str, np.ndarray] | decode.Unreadable]


def padded(batch: np.ndarray, size: int) -> np.ndarray:
  """`batch` `(n, ...)` with zero rows appended up to `size` rows (unchanged when it has that many)."""
  if len(batch) >= size:
    return batch
  return np.concatenate([batch, np.zeros((size - len(batch),) + batch.shape[1:], batch.dtype)])


def predicted(
  files: Sequence[Path],
  decoder: Callable[[Path], np.ndarray | decode.Unreadable],
  outputs: Callable[[np.ndarray], dict[str, np.ndarray]],
  batch_size: int,
) -> Iterator[list[Row]]:
  """Per batch of `files`, in order: `(path, outputs or Unreadable)`; `outputs` maps a uint8 batch to
  per-image arrays (`Classifier.outputs`).

  Decoding runs a batch ahead in threads (`decode.decoded_batches`); a short last batch is padded to
  `batch_size`, so the model compiles for one shape (eval mode is per image: padding changes nothing).
  """
  for paths, decoded in decode.decoded_batches(files, decoder, batch_size):
    good = [x for x in decoded if not isinstance(x, decode.Unreadable)]
    rows: Iterator[dict[str, np.ndarray]] = iter(())
    if good:
      out = outputs(padded(np.stack(good), batch_size))
      rows = iter([{k: v[i] for k, v in out.items()} for i in range(len(good))])
    yield [(path, x if isinstance(x, decode.Unreadable) else next(rows)) for path, x in zip(paths, decoded)]
