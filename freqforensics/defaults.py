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
  c.mode = "train"  # train (then evaluate) | eval (evaluate WORKDIR/bundle, see eval_run.py)
  c.seed = 0  # model init, shuffling and the synthetic benchmark's sampling derive from it
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
  c.feature_options.bins = 32  # azimuthal: radial bins of the 1-D power spectrum; up to data.image_size // 2 always fits

  c.data = ml_collections.ConfigDict()
  c.data.source = "synthetic"  # synthetic (embedded benchmark) | folder (class folders in source_dir)
  c.data.source_dir = ""  # one sub-folder per class; label = index of the sorted folder name
  c.data.data_dir = ""  # where generated/prepared data are cached; '' = $FREQFORENSICS_DATA or ~/.cache/freqforensics
  c.data.image_size = 64  # images are centre-cropped to a square and resized to this side
  c.data.channels = 3  # 3 = RGB, 1 = grayscale
  c.data.split = (0.7, 0.1, 0.2)  # per class (train, val, test): floats = fractions, integers = counts
  c.data.num_threads = 0  # decoding/reading threads; 0 = one per core
  c.data.cache_gb = 2.0  # hold the training split decoded in memory when its images fit in this; 0 = never
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.num_per_class = 1000  # images per class of the synthetic benchmark
  c.data.synthetic.image_size = 64  # side of the generated images
  c.data.synthetic.seed = 0  # the benchmark's own seed (independent of training)

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
  return c


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
