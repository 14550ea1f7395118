"""Model families, chosen by `config.model.name`.

Every model maps a feature batch `(B, H, W, C)` to logits `(B, classes)`, has a `penalty()` (the
regularisation added to the loss) and takes `train=` for layers that behave differently in training.
"""

from __future__ import annotations

from flax import nnx

from freqforensics.models import linear

MODEL_NAMES: tuple[str, ...] = tuple(linear.PENALTIES)


def create_model(name: str, input_shape: tuple[int, ...], classes: int, *, l1: float = 0.01,
                 l2: float = 0.01, seed: int = 0) -> nnx.Module:
  """Builds the model `name` for inputs of one example shaped `input_shape`."""
  rngs = nnx.Rngs(params=seed, dropout=seed + 1)
  if name in linear.PENALTIES:
    return linear.create(name, input_shape, classes, l1=l1, l2=l2, rngs=rngs)
  raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def num_outputs(num_labels: int) -> int:
  """One sigmoid output for two labels (as the paper), one softmax output per label otherwise."""
  return 1 if num_labels == 2 else num_labels
