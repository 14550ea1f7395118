"""The base config every file in `configs/` starts from; one comment per field.

Configs store inputs only; anything derived (number of outputs, steps per epoch, shapes) is
computed in code. `shrink_tiny` is the `:tiny` argument of every config: the same job, small
enough for a laptop CPU or a test.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by all configs (the paper's training setup)."""
  c = ml_collections.ConfigDict()
  c.mode = "train"  # train (then evaluate) | eval (evaluate WORKDIR/bundle, see evaluation/runner.py)
  c.seed = 0  # model init, shuffling and the synthetic data set's sampling derive from it
  c.num_devices = 0  # devices of the ('data',) mesh; 0 = all that the batch sizes divide over
  c.distributed = False  # multi-host: call jax.distributed.initialize (SLURM/Open MPI detected)
  c.coordinator_address = ""  # multi-host outside SLURM/MPI: host:port of process 0
  c.num_processes = 0  # multi-host outside SLURM/MPI: number of processes
  c.process_id = -1  # multi-host outside SLURM/MPI: this process's index
  c.progress = True  # progress bars on stderr
  c.features = "dct_log"  # pixel | dct | dct_log (DCT, log(|c|+1e-12), standardised) | fft_log | azimuthal | wpt_log
  c.feature_options = ml_collections.ConfigDict()
  c.feature_options.wavelet = "haar"  # wpt_log: an orthogonal PyWavelets wavelet (haar, db2, sym4, coif1, ...)
  c.feature_options.level = 3  # wpt_log: packet tree depth (4**level packets); image sides must divide by 2**level
  c.feature_options.bins = (
    32  # azimuthal: radial bins of the 1-D power spectrum; up to data.image_size // 2 always fits
  )

  c.data = ml_collections.ConfigDict()
  c.data.source = "synthetic"  # synthetic (embedded synthetic data set) | folder (class folders in source_dir)
  c.data.source_dir = ""  # one sub-folder per class; label = index of the sorted folder name
  c.data.classes = ()  # only these class folders (e.g. ('A_real', 'D_transposed') for a binary task); () = all
  c.data.real_class = ""  # the real class (detector: p_fake = 1 - p(real)); '' = the one class named like *real*
  c.data.data_dir = ""  # where generated/prepared data are cached; '' = $FREQFORENSICS_DATA or ~/.cache/freqforensics
  c.data.image_size = 64  # side of the model's square input images
  c.data.crop = "center"  # center (square centre crop + resize) | celeba (the 128x128 face window) | none | resize
  c.data.max_pixels = 50_000_000  # images with more pixels are skipped unread (decompression bombs)
  c.data.channels = 3  # 3 = RGB, 1 = grayscale
  c.data.split = (0.7, 0.1, 0.2)  # per class (train, val, test): floats = fractions of usable images, ints = counts
  c.data.match_format = ""  # '' = off | jpeg:Q | jpeg:LO-HI: every class JPEG'd alike before storing (format_matching)
  c.data.prepared_dir = ""  # a dataset written by `python -m freqforensics.tools.prepare`; '' = prepare source_dir
  c.data.train_subset = 1.0  # few-sample runs: per class, a fraction in (0, 1] or a count > 1 of the training split
  c.data.num_threads = 0  # decoding (worker processes) and reading threads; 0 = one per core
  c.data.cache_gb = 2.0  # hold the training split decoded in memory when its images fit in this; 0 = never
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.num_per_class = 1000  # images per class of the synthetic data set
  c.data.synthetic.image_size = 64  # side of the generated images
  c.data.synthetic.seed = 0  # the synthetic data's own seed (independent of training)
  c.data.synthetic.lowpass = 0.0  # > 0: generated images are blurred (Gaussian, this sigma) before saving
  c.data.synthetic.fingerprint = 1.0  # > 0: scales the generators' kernel perturbation and texture noise (0.5 = weaker)
  c.data.synthetic.jpeg_quality = (
    0  # 1..100: every image of every class JPEG round-tripped at it before saving; 0 = off
  )
  c.data.synthetic.generators = ("B_nearest", "C_bilinear", "D_transposed")  # fakes: simulated and/or families.FAMILIES
  c.data.synthetic.layout = "benchmark"  # benchmark | celeba | lsun | ffhq (a paper data set's stand-in, standins.py)

  c.model = ml_collections.ConfigDict()
  c.model.name = "log2"  # log | log1 (L1) | log2 (L2, the paper's ridge) | log3 (L1+L2) | nn | cnn | resnet
  c.model.variant = "paper"  # paper (the layer lists of SPEC.md) | tiny (a few channels, for tests)
  c.model.l1 = 0.01  # Keras-style kernel penalty l1 * sum(|w|) (log1, log3)
  c.model.l2 = 0.01  # Keras-style kernel penalty l2 * sum(w**2) (log2, log3)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32  # global batch, split over devices
  c.train.epochs = 50  # maximum epochs over the whole training split
  c.train.learning_rate = 1e-3  # Adam (peak rate with a schedule)
  c.train.schedule = "constant"  # constant (the paper) | warmup_cosine
  c.train.warmup_epochs = 0.0  # warmup_cosine: linear warm-up length, in epochs
  c.train.b1 = 0.9  # Adam beta1
  c.train.b2 = 0.999  # Adam beta2
  c.train.eps = 1e-7  # Adam epsilon (Keras default)
  c.train.patience = 5  # early stopping: epochs without val-loss improvement
  c.train.min_delta = 0.0  # early stopping: the improvement that counts
  c.train.restore_best = True  # evaluate the epoch with the lowest val loss
  c.train.checkpoint_every_steps = 0  # also checkpoint mid-epoch every N steps (long epochs); 0 = epoch ends

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256  # padded and masked: every example counts once
  c.eval.splits = ("val", "test")  # mode=eval: the prepared splits to evaluate
  c.eval.source_dir = ""  # mode=eval: class folders to evaluate instead (prepared with the bundle's preprocessing)
  c.eval.read = ""  # mode=eval on eval.source_dir: native | resize ('' = the bundle's rule, `evaluation.reading`)
  c.eval.aggregate = ""  # reading natively: mean | max | topk_mean:K ('' = the bundle's rule)
  c.eval.perturb = perturbation_config(probability=1.0)  # mode=eval: evaluate a perturbed copy (never written)
  c.eval.threshold = "fpr:0.05"  # decision threshold on validation: fpr:X (<= X of reals flagged) | balanced | 0.5
  c.eval.outlier_fpr = 0.05  # open-set score: its threshold flags at most this share of real validation images
  c.eval.outlier_score = "pca_real"  # pca_real (measured best) | real_mahalanobis | class_mahalanobis | energy

  c.augment = perturbation_config()  # training augmentation, on the fly (data/augment.py); kind none = off
  return c


def paper_variant(c: ml_collections.ConfigDict, arg: str | None, *, standin: str) -> ml_collections.ConfigDict:
  """The `:ARG` of a paper config (`configs/celeba_log2.py` ...): a comma list of `pixel` (pixel features
  instead of `dct_log`) and `tiny` (the synthetic stand-in `standin` of the data set, seconds on a CPU)."""
  tokens = [t for t in (arg or "").split(",") if t]
  bad = [t for t in tokens if t not in ("pixel", "tiny")]
  if bad:
    raise ValueError(f"unknown config argument {bad[0]!r}; use 'pixel', 'tiny' or 'pixel,tiny'")
  if "pixel" in tokens:
    c.features = "pixel"
  if "tiny" in tokens:
    shrink_tiny(c)
    c.data.source = "synthetic"
    c.data.synthetic.layout = standin
    c.data.synthetic.num_per_class = 30
    # The CelebA window is 128x128 of a 218x178 image: the stand-in holds 128x128 synthetic images
    # there, resized to 64 by the crop; the others are generated at their final size.
    c.data.synthetic.image_size = 128 if standin == "celeba" else 64
    c.data.image_size = 64
    c.data.split = (0.6, 0.2, 0.2)
    c.train.epochs = 2
  return c


def perturbation_config(kind: str = "none", probability: float = 0.5) -> ml_collections.ConfigDict:
  """A perturbation block (`augment`, `eval.perturb`): one value = fixed strength, (low, high) = uniform."""
  p = ml_collections.ConfigDict()
  p.kind = kind  # none | jpeg | blur | noise | crop | combined (one of four) | all | blur_jpeg (each on its own)
  p.probability = probability  # chance that an image is perturbed (the paper: 0.5)
  p.jpeg_quality = (10, 74)  # Pillow JPEG quality, integers low..high (the paper: U[10, 75))
  p.blur_kernel = (3, 5, 7, 9)  # Gaussian kernel sizes, one drawn per image (the paper's)
  p.blur_sigma = ()  # () = OpenCV's sigma of the kernel size (0.8 / 1.1 / 1.4 / 1.7); or (s,) / (low, high)
  p.noise_std = (5.0, 20.0)  # additive Gaussian noise std in pixel units (the paper: U[5, 20])
  p.crop_fraction = (0.05, 0.20)  # share of height and width cut away before resizing back (the paper's 5-20%)
  return p


def shrink_tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `:tiny` variant: a few images, small size, few epochs (seconds on a CPU)."""
  c.data.synthetic.num_per_class = 60
  c.data.synthetic.image_size = 32
  c.data.image_size = 32
  c.feature_options.bins = 16  # the most a 32x32 image fills
  c.train.epochs = 3
  c.model.variant = "tiny"
  c.train.batch_size = 16
  c.eval.batch_size = 32
  return c


# Allowed ranges of the numeric fields: (lowest, highest, integer?); None = unbounded. Checked by
# `validate` before a run writes anything, so a mistyped number ends in one line naming the field.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
  "seed": (0, None, True),
  "num_devices": (0, None, True),
  "num_processes": (0, None, True),
  "process_id": (-1, None, True),
  "feature_options.level": (1, 10, True),
  "feature_options.bins": (1, None, True),
  "data.image_size": (2, None, True),
  "data.max_pixels": (1, None, True),
  "data.channels": (1, 3, True),
  "data.train_subset": (0, None, False),  # > 0, see the strict bounds below
  "data.num_threads": (0, None, True),
  "data.cache_gb": (0, None, False),
  "data.synthetic.num_per_class": (1, None, True),
  "data.synthetic.image_size": (8, None, True),
  "data.synthetic.seed": (0, None, True),
  "model.l1": (0, None, False),
  "model.l2": (0, None, False),
  "train.batch_size": (1, None, True),
  "train.epochs": (1, None, True),
  "train.learning_rate": (0, None, False),  # > 0
  "train.warmup_epochs": (0, None, False),
  "train.b1": (0, 1, False),  # [0, 1)
  "train.b2": (0, 1, False),  # [0, 1)
  "train.eps": (0, None, False),  # > 0
  "train.patience": (0, None, True),
  "train.min_delta": (0, None, False),
  "train.checkpoint_every_steps": (0, None, True),
  "eval.batch_size": (1, None, True),
  "eval.outlier_fpr": (0, 1, False),  # (0, 1)
}
# Fields whose bound is strict (the value may not equal it).
_STRICT_LOW = {"data.train_subset", "train.learning_rate", "train.eps", "eval.outlier_fpr"}
_STRICT_HIGH = {"train.b1", "train.b2", "eval.outlier_fpr"}


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises `UserError` naming the first numeric field outside its range (`RANGES`), with the range."""
  from freqforensics.errors import UserError  # pylint: disable=g-import-not-at-top

  for key, (low, high, integer) in RANGES.items():
    node = config
    for part in key.split("."):
      node = node[part] if part in node else None
      if node is None:
        break
    if node is None:
      continue
    value = node
    kind = "an integer" if integer else "a number"
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and value != int(value))
    if not bad:
      bad = (
        (low is not None and (value <= low if key in _STRICT_LOW else value < low))
        or (high is not None and (value >= high if key in _STRICT_HIGH else value > high))
        or value != value
      )  # NaN
    if bad:
      parts = []
      if low is not None:
        parts.append(f"{'>' if key in _STRICT_LOW else '>='} {low:g}")
      if high is not None:
        parts.append(f"{'<' if key in _STRICT_HIGH else '<='} {high:g}")
      raise UserError(f"{key}={value!r} is out of range: give {kind} {' and '.join(parts)} (--config.{key}=...)")
  if config.data.channels not in (1, 3):
    raise UserError(f"data.channels={config.data.channels!r}: give 3 (RGB) or 1 (grayscale)")
  split = tuple(config.data.split)
  if len(split) != 3 or any(isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0 or s != s for s in split):
    raise UserError(
      f"data.split={split!r}: give three non-negative numbers (train, val, test), e.g. (0.7, 0.1, 0.2)"
      " or (100000, 20000, 30000)"
    )
  if not split[0]:
    raise UserError(f"data.split={split!r} has no training part: give the first number > 0")
  from freqforensics.data import format_matching  # pylint: disable=g-import-not-at-top  (configs load light)
  from freqforensics.evaluation import operating_points, outliers  # pylint: disable=g-import-not-at-top

  format_matching.check(config.data.match_format, "data.match_format")

  operating_points.parse_policy(config.eval.threshold)
  if config.eval.outlier_score not in outliers.CANDIDATES:
    raise UserError(
      f"eval.outlier_score={config.eval.outlier_score!r}: use one of {', '.join(outliers.CANDIDATES)}"
      " (--config.eval.outlier_score=...)"
    )
  if config.eval.read not in ("", "native", "resize"):
    raise UserError(f"eval.read={config.eval.read!r}: give native, resize or '' (the bundle's rule)")
  if config.eval.aggregate:
    from freqforensics.evaluation import aggregate  # pylint: disable=g-import-not-at-top

    try:
      aggregate.parse(config.eval.aggregate)
    except ValueError as e:
      raise UserError(f"eval.aggregate: {e} (--config.eval.aggregate=...)") from None
  if not isinstance(config.data.real_class, str):
    raise UserError(f"data.real_class={config.data.real_class!r}: give the name of the real class folder, or ''")


def feature_name(config: ml_collections.ConfigDict) -> str:
  """The config's feature name (`spectral.feature_name`: kind and parameters), checked before any work.

  Raises `UserError` naming the option when the kind is unknown, its parameters do not fit
  `data.image_size`, or the model needs image-shaped input and the feature is 1-D (`azimuthal`).
  """
  from freqforensics import spectral  # pylint: disable=g-import-not-at-top  (config files load without JAX)
  from freqforensics.errors import UserError  # pylint: disable=g-import-not-at-top

  kind, o, d = config.features, config.feature_options, config.data
  if kind not in spectral.FEATURE_KINDS:
    raise UserError(f"unknown features {kind!r}: use --config.features= one of {', '.join(spectral.FEATURE_KINDS)}")
  try:
    name = spectral.feature_name(kind, wavelet=o.wavelet, level=o.level, bins=o.bins)
    shape = spectral.feature_shape(name, (d.image_size, d.image_size, d.channels))
  except ValueError as e:
    options = {"wpt_log": ("wavelet", "level"), "azimuthal": ("bins",)}.get(kind, ())
    named = ", ".join(f"--config.feature_options.{k}={o[k]}" for k in options)
    raise UserError(f"features={kind} with data.image_size={d.image_size}: {e} ({named})") from e
  if len(shape) != 3 and config.model.name in ("cnn", "resnet"):
    raise UserError(
      f"model {config.model.name} needs image-shaped features, but features={kind} is a 1-D profile"
      f" of shape {shape}: use --config.model.name=log2 (or log, log1, log3, nn)"
    )
  return name
