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

import math  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pywt  # noqa: E402
from PIL import Image  # noqa: E402


def write_class_folders(
  root: Path, counts: dict[str, int], size: tuple[int, int] = (20, 24), seed: int = 0, ext: str = ".png"
) -> Path:
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


def baseline_config(src: Path, data_dir: Path, name: str, **baseline):
  """`tiny_folder_config` on pixels with the baseline `name`'s fields (batch 8, one job); `baseline` sets
  any of them by dotted key (`grid.k=(1, 3)`)."""
  from freqforensics.baselines import config as bconfig  # after the XLA flags above

  c = tiny_folder_config(src, data_dir, split=(12, 6, 6))
  c.features = "pixel"
  bconfig.add_fields(c, name)
  c.baseline.batch_size = 8
  c.baseline.n_jobs = 1
  for key, value in baseline.items():
    node = c.baseline
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return c


def killed_writer(target) -> None:
  """Runs `atomic.write_with` on `target` in a child process that is killed (SIGKILL) inside the write."""
  code = (
    "import os, signal, sys; from freqforensics.files import atomic;"
    " atomic.write_with(sys.argv[1], lambda tmp: (tmp.write_bytes(b'half'), os.kill(os.getpid(), signal.SIGKILL)))"
  )
  env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
  r = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True, timeout=120)
  assert r.returncode == -9, r.stderr


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


@pytest.fixture
def config(tmp_path):
  """The tiny config on 24 fingerprinted images per class (4 epochs, patience 10), caches in `tmp_path`."""
  c = tiny_folder_config(write_fingerprinted_folders(tmp_path / "src", 24), tmp_path / "data", epochs=4)
  c.train.patience = 10
  return c


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory) -> Path:
  """A tiny model trained once per session (two classes of 16x16 images, 2 epochs): its work dir."""
  from freqforensics import train

  tmp = tmp_path_factory.mktemp("classify")
  c = tiny_folder_config(write_fingerprinted_folders(tmp / "src", 24), tmp / "data", epochs=2)
  train.train_and_evaluate(c, tmp / "wd")
  return tmp / "wd"


def good_images(folder: Path, seed: int = 1) -> list[Path]:
  """A PNG, a JPEG, a grayscale, an RGBA and a wrong-size (20x24) image, one in a subfolder."""
  rng = np.random.default_rng(seed)
  (folder / "sub").mkdir(parents=True, exist_ok=True)
  rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  paths = {
    "a.png": Image.fromarray(rgb(16, 16)),
    "b.jpg": Image.fromarray(rgb(16, 16)),
    "gray.png": Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L"),
    "rgba.png": Image.fromarray(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8), "RGBA"),
    "sub/big.png": Image.fromarray(rgb(24, 20)),
  }
  for name, image in paths.items():
    image.save(folder / name)
  return sorted(folder / name for name in paths)


def pixel_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
  """A 69-byte PNG whose header says `width` x `height` pixels (IHDR with a valid CRC, a few bytes of IDAT,
  IEND): 900 million pixels by default, above twice Pillow's limit, so `Image.open` raises
  `DecompressionBombError` at the header."""
  import struct
  import zlib

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4, 9)) + chunk(b"IEND", b"")


# --- Reference frequency views in plain NumPy / PyWavelets (test_spectral, the end-to-end view tests).


def np_fft_centred(x: np.ndarray) -> np.ndarray:
  return np.fft.fftshift(np.fft.fft2(x.astype(np.float64), axes=(-3, -2), norm="ortho"), axes=(-3, -2))


def np_ring(h: int, w: int, bins: int) -> np.ndarray:
  """Ring of every centred frequency in exact integer arithmetic: floor(r / sqrt(0.5) * bins).

  With r^2 = (ky / H)^2 + (kx / W)^2, (r / sqrt(0.5) * bins)^2 = 2 bins^2 (ky^2 W^2 + kx^2 H^2) / (H W)^2,
  and floor(sqrt(a / b)) = isqrt(a // b) for integers: no rounding at all (bin edges go up).
  """
  ky = np.fft.fftshift(np.fft.fftfreq(h)) * h  # integer frequency indices in the centred layout
  kx = np.fft.fftshift(np.fft.fftfreq(w)) * w
  ring = np.empty((h, w), np.int64)
  for i, a in enumerate(ky.round().astype(int)):
    for j, b in enumerate(kx.round().astype(int)):
      num = 2 * bins * bins * (a * a * w * w + b * b * h * h)
      ring[i, j] = min(math.isqrt(num // (h * h * w * w)), bins - 1)
  return ring


def np_azimuthal(spectrum: np.ndarray, bins: int) -> np.ndarray:
  """(..., H, W, C) -> (..., bins, C): plain loops over rings."""
  h, w = spectrum.shape[-3:-1]
  ring = np_ring(h, w, bins)
  return np.stack([spectrum[..., ring == b, :].mean(axis=-2) for b in range(bins)], axis=-2)


def pywt_tiled(plane: np.ndarray, wavelet: str, level: int) -> np.ndarray:
  """PyWavelets' packets of one 2-D plane in frequency order, tiled into one array."""
  wp = pywt.WaveletPacket2D(plane, wavelet, mode="periodization", maxlevel=level)
  return np.block([[node.data for node in row] for row in wp.get_level(level, order="freq")])
