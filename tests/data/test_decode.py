"""Decoding files on the host with a bundle's preprocessing: the typed failure, the thread-pooled batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from freqforensics.data import decode, images


def _files(folder: Path) -> list[Path]:
  folder.mkdir()
  files = []
  for i in range(5):
    Image.new("RGB", (20 + i, 20), (10 * i, 0, 0)).save(folder / f"img_{i}.png")
    files.append(folder / f"img_{i}.png")
  (folder / "broken.png").write_bytes(b"not a png")
  return files[:2] + [folder / "broken.png"] + files[2:]


def test_a_decoder_gives_the_models_image_or_a_typed_failure(tmp_path):
  files = _files(tmp_path / "in")
  decoder = decode.Decoder(16, 3)
  image = decoder(files[0])
  assert image.dtype == np.uint8 and image.shape == (16, 16, 3)
  broken = decoder(files[2])
  assert isinstance(broken, decode.Unreadable) and broken.path == files[2]
  assert str(broken) == f"cannot use {files[2]}: {broken.reason}" and "not an image file" in broken.reason
  refused = decode.Decoder(16, 3, crop="none")(files[0])  # 20x20 is not the model's size without a crop
  assert isinstance(refused, decode.Unreadable) and "needs exactly 16x16" in refused.reason


def test_decoded_batches_keep_the_order_and_the_batch_size(tmp_path):
  files = _files(tmp_path / "in")
  got = list(decode.decoded_batches(files, decode.Decoder(16, 1), batch_size=4, workers=2))
  assert [paths for paths, _ in got] == [files[:4], files[4:]]
  decoded = [x for _, xs in got for x in xs]
  assert [isinstance(x, decode.Unreadable) for x in decoded] == [False, False, True, False, False, False]
  np.testing.assert_array_equal(decoded[3], images.load_image(files[3], 16, 1))
