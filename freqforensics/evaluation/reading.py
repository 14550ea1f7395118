"""How a bundle's model reads an image: `resize` (its crop rule brings the image to the model's side) or
`native` (patches of the model's side at native resolution, `data.patches`, scored by their aggregate,
`aggregate`). The bundle stores its rule (`BundleInfo.read`, ...); a caller may override any part of it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from freqforensics.data import patches
from freqforensics.errors import UserError
from freqforensics.evaluation import aggregate as aggregate_lib


@dataclasses.dataclass(frozen=True)
class Reading:
  """A resolved reading rule for a model of side `side`."""

  read: str = "resize"  # `patches.READS`
  aggregate: str = aggregate_lib.DEFAULT  # `aggregate.RULES`
  patch_stride: int = 0  # 1..side (0, only in a default Reading(), means side)
  max_patches: int = patches.DEFAULT_MAX_PATCHES

  @property
  def native(self) -> bool:
    return self.read == "native"


def problem(read: Any, rule: Any, patch_stride: Any, max_patches: Any, side: int) -> str | None:
  """What is wrong with a reading rule for a model of side `side` (one line), or None.

  Args:
    read: `native` or `resize`.
    rule: the aggregation rule (`aggregate.parse`).
    patch_stride: the step between patches, 1..side.
    max_patches: the most patches per image (0: no bound).
    side: the model's side.
  """
  if read not in patches.READS:
    return f"read={read!r} is not one of {', '.join(patches.READS)}"
  try:
    aggregate_lib.parse(rule)
  except ValueError as e:
    return str(e)
  if not isinstance(patch_stride, int) or isinstance(patch_stride, bool) or not 1 <= patch_stride <= side:
    return (
      f"patch_stride={patch_stride!r} must lie in 1..{side} (the model's side): a longer stride leaves pixels unread"
    )
  if not isinstance(max_patches, int) or isinstance(max_patches, bool) or max_patches < 1:
    return f"max_patches={max_patches!r} must be a positive integer"
  return None


def of(
  info: Any,
  read: str | None = None,
  aggregate: str | None = None,
  patch_stride: int | None = None,
  max_patches: int | None = None,
) -> Reading:
  """The reading rule of bundle info `info` (`bundle.BundleInfo`), with the parts given here instead.

  Raises `UserError` (one line) for a bad part, or for patch options given with `resize` reading.

  Args:
    info: the bundle's description; its `read`, `aggregate`, `patch_stride` and `max_patches`.
    read: `native` or `resize` instead of the bundle's.
    aggregate: the aggregation rule instead of the bundle's (`aggregate.RULES`).
    patch_stride: the patches' stride instead of the bundle's (1..side).
    max_patches: the bound on patches per image instead of the bundle's.
  """
  given = {"aggregate": aggregate, "patch_stride": patch_stride, "max_patches": max_patches}
  r = Reading(
    read=info.read if read is None else read,
    aggregate=info.aggregate if aggregate is None else aggregate,
    patch_stride=info.patch_stride if patch_stride is None else patch_stride,
    max_patches=info.max_patches if max_patches is None else max_patches,
  )
  if why := problem(r.read, r.aggregate, r.patch_stride, r.max_patches, info.image_size):
    raise UserError(why)
  if not r.native and (named := [k for k, v in given.items() if v is not None]):
    raise UserError(
      f"{', '.join(named)} apply to native reading only: add read=native (--read=native for classify and"
      " explain, --config.eval.read=native for mode=eval)"
    )
  return r


def resize_warning(side: int, crop: str, sizes: dict[str, int], sampled: int) -> str | None:
  """Classify's warning when inputs larger than the model's side are resized (`model_card.headers`'s
  `sizes` and `sampled`); None when none is larger."""
  large = sum(n for s, n in sizes.items() if max(map(int, s.split("x"))) > side)
  if not large:
    return None
  return (
    f"warning: {large} of {sampled} inputs checked are larger than the model's {side}x{side} and are resized to"
    f" it (crop {crop!r}), which can erase the high-frequency trace the model reads; --read=native reads them"
    f" as {side}x{side} patches at native resolution"
  )
