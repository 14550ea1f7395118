"""Files through a model a batch at a time: the one padding, the rows in order, failures kept apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from freqforensics.data import decode
from freqforensics.evaluation import batches


def test_padded_appends_zero_rows_up_to_the_size():
  x = np.full((3, 2, 2, 1), 7, np.uint8)
  got = batches.padded(x, 5)
  assert got.shape == (5, 2, 2, 1) and got.dtype == np.uint8
  np.testing.assert_array_equal(got[:3], x)
  assert not got[3:].any()
  assert batches.padded(x, 3) is x and batches.padded(x, 2) is x


def test_predicted_gives_each_file_its_row_and_the_model_full_batches():
  files = [Path(f"f{i}.png") for i in range(7)]

  def decoder(path: Path) -> np.ndarray | decode.Unreadable:
    i = int(path.stem[1:])
    return decode.Unreadable(path, "broken") if i in (1, 5) else np.full((2, 2, 1), i, np.uint8)

  seen = []

  def outputs(batch: np.ndarray) -> dict[str, np.ndarray]:
    seen.append(len(batch))
    return {"logits": batch[:, 0, 0, :].astype(np.float32), "score": batch[:, 0, 0, 0] * 2.0}

  got = list(batches.predicted(files, decoder, outputs, batch_size=3))
  assert [len(rows) for rows in got] == [3, 3, 1] and seen == [3, 3, 3]  # padded: one shape
  rows = [row for rows in got for row in rows]
  assert [path for path, _ in rows] == files
  for i, (path, x) in enumerate(rows):
    if i in (1, 5):
      assert x == decode.Unreadable(path, "broken") and str(x) == f"cannot use {path}: broken"
    else:
      assert x["logits"].tolist() == [float(i)] and float(x["score"]) == 2.0 * i
