"""Model families, chosen by `config.model.name`.

Every model maps a feature batch `(B, H, W, C)` to logits `(B, classes)`, has a `penalty()` (the
regularisation added to the loss) and takes `train=` for layers that behave differently in training.
The linear models (`log`, `log1`, `log2`, `log3`), `nn`, `cnn` and `resnet` follow SPEC.md section 4;
`variant="tiny"` gives a far smaller member of the same family for tests (linear models ignore it).
"""

from __future__ import annotations

import jax
from flax import nnx

from freqforensics.models import cnn, linear, mlp, resnet

MODEL_NAMES: tuple[str, ...] = (*linear.PENALTIES, "nn", "cnn", "resnet")
VARIANTS: tuple[str, ...] = ("paper", "tiny")


def create_model(
  name: str,
  input_shape: tuple[int, ...],
  classes: int,
  *,
  l1: float = 0.01,
  l2: float = 0.01,
  seed: int = 0,
  variant: str = "paper",
) -> nnx.Module:
  """Builds the model `name` for inputs of one example shaped `input_shape`.

  `l1` / `l2` are the config's penalty factors: the linear models use them as their name says, `nn`
  uses `l2` on its hidden kernel, `cnn` and `resnet` have no regulariser.

  Args:
    name: the model family (`MODEL_NAMES`: log, log1, log2, log3, nn, cnn, resnet).
    input_shape: one example's feature shape, `(H, W, C)` or `(bins, C)`.
    classes: the number of classes; 1 for a binary model with one sigmoid output.
    l1: the L1 penalty factor (linear models that use it).
    l2: the L2 penalty factor (linear models that use it, and `nn`'s hidden kernel).
    seed: the seed of the initialisation (and of dropout, `seed + 1`).
    variant: `paper` (the paper's layers) or `tiny` (a small one for tests).
  """
  if name not in MODEL_NAMES:
    raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
  if variant not in VARIANTS:
    raise ValueError(f"unknown model variant {variant!r}; expected one of {VARIANTS}")
  if name in ("cnn", "resnet") and len(input_shape) != 3:
    raise ValueError(
      f"{name} needs image-shaped input (H, W, C), got {tuple(input_shape)} (a 1-D feature such as"
      " azimuthal): use a linear model (log, log1, log2, log3) or nn"
    )
  rngs = nnx.Rngs(params=seed, dropout=seed + 1)
  if name in linear.PENALTIES:
    return linear.create(name, input_shape, classes, l1=l1, l2=l2, rngs=rngs)
  if name == "nn":
    return mlp.MLPClassifier(input_shape, classes, l2=l2, variant=variant, rngs=rngs)
  if name == "cnn":
    return cnn.CNNClassifier(input_shape, classes, variant=variant, rngs=rngs)
  return resnet.ResNetClassifier(input_shape, classes, variant=variant, rngs=rngs)


def count_params(model: nnx.Module) -> tuple[int, int]:
  """(total, trainable) scalar counts: total adds BatchNorm running statistics, as Keras' summary does."""
  trainable = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  stats = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
  return trainable + stats, trainable


def num_outputs(num_labels: int) -> int:
  """One sigmoid output for two labels (as the paper), one softmax output per label otherwise."""
  return 1 if num_labels == 2 else num_labels
