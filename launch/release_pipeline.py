r"""The release's pipeline (Frank et al. 2020, TensorFlow 2 / Keras), rebuilt from SPEC.md for a side-by-side benchmark.

  RELEASE_VENV/bin/python launch/release_pipeline.py --src=PNG_DIR --work=DIR [--models=log2,cnn]
      [--steps=60] [--warmup=3] [--max_seconds=20]

This file imports TensorFlow, NumPy, SciPy and Pillow only (never freqforensics): it runs in the
separate environment that `launch/bench_release.py --setup` creates. It was written from the
description in ../shared/SPEC.md (sections 2-4), not from the release's code, and does what the
release does, the way it does it:

1. Preparation (one process, one thread, as the release): every class folder (sorted names give
   the labels) is split per class by sorted file name, 70/10/20 (the fractions freqforensics uses
   here; the release hard-codes counts). Each PNG is decoded with Pillow and transformed on its own:
   `scipy.fftpack.dct` (type II, orthonormal) along H, then along W, every channel, in float64,
   then `ln(|c| + 1e-12)`. The features of every split are held in memory (the release keeps the
   whole data set in RAM). A Welford pass over the training images gives the per-coefficient
   mean and population variance in float64; every split is standardised with them (the release's
   `--normalize`; the statistics are not saved, as in the release) and written as float32
   `tf.train.Example`s (a float list of H*W*C values and an int64 label) into one monolithic
   TFRecord file per split, the release's layout. (The release stores labels as strings; an int64
   changes nothing measurable here.)
2. Training: `tf.data.TFRecordDataset` of the training file, parsed per example in parallel
   (`AUTOTUNE`), batched by 32, repeated, prefetched; no shuffling (as the release). The Keras
   models of SPEC.md section 4 (`log2`: flatten -> dense with L2 1e-2 on the kernel; `cnn`: four
   "same" 3x3 convs with ReLU, two 2x2 average pools, flatten -> dense; Keras default initialisers),
   softmax for more than 2 classes, sparse categorical cross-entropy, Adam 1e-3, trained with
   `model.fit`. Parameter counts are asserted (245,765 and 169,961 at 128x128x3, 5 classes).
   Samples/s: batches timed at their end (a Keras callback) after `--warmup` batches (tracing,
   pipeline start), over `--steps` batches or `--max_seconds`, whichever ends first.

Prints one JSON line on stdout: images/s of preparation (decode + DCT + log + Welford +
standardise + write), bytes per image on disk, samples/s per model, the process's peak RSS
(`resource.getrusage`) and the versions used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, before it is imported

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.fftpack  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

EPS = 1e-12
SPLIT = (0.7, 0.1, 0.2)
SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# SPEC.md section 4: parameter counts at 128x128x3 for 5 classes.
PAPER_PARAMS = {"log2": 245_765, "cnn": 169_961}


def dct_log(image: np.ndarray) -> np.ndarray:
  """`ln(|DCT-II(x)| + 1e-12)` of one (H, W, C) image: orthonormal DCT along H, then W, per channel, float64."""
  x = image.astype(np.float64)
  c = scipy.fftpack.dct(scipy.fftpack.dct(x, type=2, axis=0, norm="ortho"), type=2, axis=1, norm="ortho")
  return np.log(np.abs(c) + EPS)


class Welford:
  """Welford's running mean and population variance per coefficient, one example at a time, in float64."""

  def __init__(self, shape: tuple[int, ...]):
    self.count = 0
    self.mean = np.zeros(shape, np.float64)
    self.m2 = np.zeros(shape, np.float64)

  def update(self, x: np.ndarray) -> None:
    self.count += 1
    delta = x - self.mean
    self.mean += delta / self.count
    self.m2 += delta * (x - self.mean)

  def variance(self) -> np.ndarray:
    return self.m2 / self.count


def list_splits(src: Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
  """Class names (sorted) and, per split, (file, label) pairs: per class, by sorted file name, 70/10/20."""
  classes = sorted(p.name for p in src.iterdir() if p.is_dir())
  splits: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
  for label, name in enumerate(classes):
    files = sorted(f for f in (src / name).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    n_train, n_val = int(len(files) * SPLIT[0]), int(len(files) * SPLIT[1])
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(files))}
    for s, (lo, hi) in bounds.items():
      splits[s] += [(f, label) for f in files[lo:hi]]
  return classes, splits


def _example(feature: np.ndarray, label: int) -> bytes:
  return tf.train.Example(
    features=tf.train.Features(
      feature={
        "data": tf.train.Feature(float_list=tf.train.FloatList(value=feature.ravel())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
      }
    )
  ).SerializeToString()


def prepare(src: Path, out: Path) -> dict:
  """Class folders -> standardised float32 TFRecords, one file per split; returns counts, shape, time, bytes."""
  start = time.perf_counter()
  classes, splits = list_splits(src)
  features: dict[str, np.ndarray] = {}
  labels: dict[str, np.ndarray] = {}
  welford = None
  for s in SPLITS:
    pairs = splits[s]
    for j, (path, _) in enumerate(pairs):
      image = np.asarray(Image.open(path).convert("RGB"))
      if s not in features:
        features[s] = np.empty((len(pairs),) + image.shape, np.float32)
        labels[s] = np.array([lab for _, lab in pairs], np.int64)
      f = dct_log(image)
      if s == "train":
        welford = welford or Welford(f.shape)
        welford.update(f)
      features[s][j] = f
  mean, std = welford.mean, np.sqrt(welford.variance())
  std = np.where(std > 0, std, 1.0)
  out.mkdir(parents=True, exist_ok=True)
  for s in SPLITS:
    with tf.io.TFRecordWriter(str(out / f"{s}.tfrecords")) as writer:
      for f, label in zip(features.get(s, ()), labels.get(s, ())):
        writer.write(_example(((f - mean) / std).astype(np.float32), int(label)))
  seconds = time.perf_counter() - start
  n = sum(len(v) for v in splits.values())
  size = sum((out / f"{s}.tfrecords").stat().st_size for s in SPLITS)
  return {
    "images": n,
    "seconds": seconds,
    "images_per_s": n / seconds,
    "bytes_per_image": size / n,
    "shape": list(features["train"].shape[1:]),
    "classes": classes,
    "counts": {s: len(splits[s]) for s in SPLITS},
  }


def expected_params(name: str, shape: tuple[int, int, int], classes: int) -> int:
  """SPEC.md section 4's parameter count of `name` for inputs `shape` and `classes` outputs."""
  h, w, c = shape
  if name == "log2":
    return h * w * c * classes + classes
  widths = (c, 3, 8, 16, 32)
  convs = sum(9 * a * b + b for a, b in zip(widths[:-1], widths[1:]))
  return convs + (h // 4) * (w // 4) * 32 * classes + classes


def build_model(name: str, shape: tuple[int, int, int], classes: int) -> tf.keras.Model:
  """The release's Keras `log2` or `cnn` (Keras default initialisers); asserts SPEC.md's parameter count."""
  layers = tf.keras.layers
  outputs = 1 if classes == 2 else classes
  head = "sigmoid" if outputs == 1 else "softmax"
  inputs = tf.keras.Input(shape)
  if name == "log2":
    x = layers.Flatten()(inputs)
    y = layers.Dense(outputs, activation=head, kernel_regularizer=tf.keras.regularizers.l2(0.01))(x)
  elif name == "cnn":
    x = layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    y = layers.Dense(outputs, activation=head)(layers.Flatten()(x))
  else:
    raise ValueError(f"unknown model {name!r}: log2 or cnn")
  model = tf.keras.Model(inputs, y)
  want = expected_params(name, shape, outputs)
  if tuple(shape) == (128, 128, 3) and outputs == 5:
    assert want == PAPER_PARAMS[name], (name, want)
  assert model.count_params() == want, f"{name}: {model.count_params():,} parameters, SPEC.md says {want:,}"
  loss = "binary_crossentropy" if outputs == 1 else "sparse_categorical_crossentropy"
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
  return model


def train_dataset(path: Path, shape: tuple[int, int, int], batch_size: int) -> tf.data.Dataset:
  """The training TFRecords as the release reads them: parsed per example, batched, repeated, no shuffle."""
  spec = {
    "data": tf.io.FixedLenFeature([int(np.prod(shape))], tf.float32),
    "label": tf.io.FixedLenFeature([], tf.int64),
  }

  def parse(record):
    ex = tf.io.parse_single_example(record, spec)
    return tf.reshape(ex["data"], shape), ex["label"]

  ds = tf.data.TFRecordDataset(str(path)).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)


class _Timer(tf.keras.callbacks.Callback):
  """Times batch ends after `warmup` batches; stops training after `steps` timed batches or `max_seconds`."""

  def __init__(self, warmup: int, steps: int, max_seconds: float):
    super().__init__()
    self.warmup, self.steps, self.max_seconds = warmup, steps, max_seconds
    self.seen, self.timed, self.start, self.end = 0, 0, 0.0, 0.0

  def on_train_batch_end(self, batch, logs=None):
    now = time.perf_counter()
    self.seen += 1
    if self.seen == self.warmup:
      self.start = now
    elif self.seen > self.warmup:
      self.timed, self.end = self.timed + 1, now
      if self.timed >= self.steps or now - self.start >= self.max_seconds:
        self.model.stop_training = True


def time_training(
  name: str,
  records: Path,
  shape: tuple[int, int, int],
  classes: int,
  *,
  steps: int,
  warmup: int,
  max_seconds: float,
  batch_size: int = 32,
) -> dict:
  """Samples/s of `model.fit` on the training TFRecords over steady-state batches."""
  tf.keras.utils.set_random_seed(0)
  model = build_model(name, shape, classes)
  timer = _Timer(warmup, steps, max_seconds)
  model.fit(
    train_dataset(records, shape, batch_size), epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[timer]
  )
  if timer.timed == 0:
    raise RuntimeError(f"{name}: no batch was timed (warm-up {warmup}, steps {steps})")
  return {
    "samples_per_s": timer.timed * batch_size / (timer.end - timer.start),
    "steps": timer.timed,
    "params": model.count_params(),
  }


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--src", required=True, help="class folders of PNG files")
  parser.add_argument("--work", required=True, help="an empty folder for the TFRecords")
  parser.add_argument("--models", default="log2,cnn")
  parser.add_argument("--steps", type=int, default=60, help="timed training batches (at most)")
  parser.add_argument("--warmup", type=int, default=3, help="untimed training batches first")
  parser.add_argument("--max_seconds", type=float, default=20.0, help="time limit of one model's timed batches")
  args = parser.parse_args(argv)
  prep = prepare(Path(args.src), Path(args.work))
  shape = tuple(prep["shape"])
  train = {
    m: time_training(
      m,
      Path(args.work) / "train.tfrecords",
      shape,
      len(prep["classes"]),
      steps=args.steps,
      warmup=args.warmup,
      max_seconds=args.max_seconds,
    )
    for m in filter(None, args.models.split(","))
  }
  usage = resource.getrusage(resource.RUSAGE_SELF)
  print(
    json.dumps(
      {
        "side": "release",
        "prep": prep,
        "train": train,
        "maxrss_mib": usage.ru_maxrss / 1024,
        "threads": {
          "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
          "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        },
        "versions": {
          "python": sys.version.split()[0],
          "tensorflow": tf.__version__,
          "keras": tf.keras.__version__,
          "numpy": np.__version__,
          "scipy": scipy.__version__,
          "pillow": Image.__version__,
        },
      }
    ),
    flush=True,
  )


if __name__ == "__main__":
  main()
