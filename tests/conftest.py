"""Test setup: JAX on CPU with 4 fake devices, data caches in a temporary directory.

The environment variables must be set before JAX is imported anywhere, hence at module level.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("FREQFORENSICS_DATA", tempfile.mkdtemp(prefix="ff_data_"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def write_class_folders(root: Path, counts: dict[str, int], size: tuple[int, int] = (20, 24), seed: int = 0,
                        ext: str = ".png") -> Path:
  """Writes random images: `counts` maps class folder name -> number of images."""
  rng = np.random.default_rng(seed)
  for name, n in counts.items():
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
      Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(d / f"img_{i:04d}{ext}")
  return root


def write_fingerprinted_folders(root: Path, per_class: int, size: int = 16, seed: int = 0) -> Path:
  """Two classes of random images; `B_gan` is 2x nearest-neighbour upsampled noise, a strong
  spectral fingerprint of the kind GANs leave, so tiny models learn it in a few steps."""
  src = write_class_folders(root, {"A_real": per_class, "B_gan": per_class}, size=(size, size), seed=seed)
  for p in sorted((src / "B_gan").glob("*.png")):
    a = np.asarray(Image.open(p))[::2, ::2]
    Image.fromarray(a.repeat(2, axis=0).repeat(2, axis=1)).save(p)
  return src


def tiny_folder_config(src: Path, data_dir: Path, *, split=(16, 4, 4), batch_size: int = 8, epochs: int = 3):
  """The `:tiny` config on class folders at 16x16, quiet, with its caches under `data_dir`."""
  from freqforensics import defaults  # after the XLA flags above

  c = defaults.shrink_tiny(defaults.base_config())
  c.data.source, c.data.source_dir, c.data.data_dir = "folder", str(src), str(data_dir)
  c.data.image_size, c.data.split = 16, split
  c.train.batch_size = c.eval.batch_size = batch_size
  c.train.epochs, c.progress = epochs, False
  return c


@pytest.fixture
def make_folders(tmp_path):
  """Factory fixture: `make_folders({'A_real': 10, 'B_gan': 10})` -> source dir."""
  def make(counts: dict[str, int], **kwargs) -> Path:
    return write_class_folders(tmp_path / "src", counts, **kwargs)
  return make


def one_line_error(r) -> str:
  """Asserts a command ended with exit code 2 and exactly one `error:` line, no traceback; returns it."""
  assert r.returncode == 2, r.stderr[-2000:]
  assert "Traceback" not in r.stderr
  lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1, r.stderr[-2000:]
  return lines[0]
