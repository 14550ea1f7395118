"""The reading-rule flags of the commands that score images with a bundle (classify, explain): `--read`,
`--aggregate`, `--patch_stride` and `--max_patches`, each None unless given (the bundle's rule,
`evaluation.reading.of`).
"""

from __future__ import annotations

import sys
from typing import Any

from absl import flags

NAMES = ("read", "aggregate", "patch_stride", "max_patches")


def define(f: dict[str, flags.FlagHolder]) -> None:
  """Defines the reading flags into `f`, filed under the calling command's module (shown in its --help)."""
  caller = sys._getframe(1).f_globals["__name__"]  # pylint: disable=protected-access
  module = sys.argv[0] if caller == "__main__" else caller  # absl's name for the main module
  f["read"] = flags.DEFINE_enum(
    "read",
    None,
    ["native", "resize"],
    "native: patches of the model's side at native resolution, aggregated; resize: the bundle's crop rule."
    " Default: the bundle's rule (resize for bundles that store none).",
    module_name=module,
  )
  f["aggregate"] = flags.DEFINE_string(
    "aggregate",
    None,
    "Reading natively: an image's logit from its patches': mean, max or topk_mean:K.",
    module_name=module,
  )
  f["patch_stride"] = flags.DEFINE_integer(
    "patch_stride",
    None,
    "Reading natively: the patches' stride, 1..side (below the side they overlap).",
    lower_bound=1,
    module_name=module,
  )
  f["max_patches"] = flags.DEFINE_integer(
    "max_patches",
    None,
    "Reading natively: at most this many patches per image, spread evenly.",
    lower_bound=1,
    module_name=module,
  )


def values(f: dict[str, flags.FlagHolder]) -> dict[str, Any]:
  """The reading rule's parts given on the command line (`inference.load`'s keywords); None: the bundle's."""
  return {k: f[k].value for k in NAMES}
