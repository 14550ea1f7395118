r"""Robustness report: a trained model's accuracy under each perturbation, at a sweep of strengths.

  python -m freqforensics.tools.robustness --workdir=runs/demo [--split=test | --source_dir=DIR] \
      [--jpeg_quality=90,80,...,10] [--blur_sigma=0.5,...] [--noise_std=2,...] [--crop_fraction=0.05,...] \
      [--seed=0] [--batch_size=256] [--out_dir=DIR] [--overwrite]

Writes `robustness.json` and `robustness.png` to `--out_dir` (default `WORKDIR/robustness_<split>`);
an interrupted report resumes. The library is `freqforensics.analysis.robustness`.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging

from freqforensics.analysis import robustness  # no JAX at import: the devices are set first
from freqforensics.errors import UserError
from freqforensics.tools import cli

_F: dict[str, flags.FlagHolder] = {}


def _define_flags() -> None:
  _F["workdir"] = flags.DEFINE_string("workdir", None, "Work dir of a finished training run (reads WORKDIR/bundle).")
  _F["split"] = flags.DEFINE_string("split", "test", "Split of the dataset the model was trained on.")
  _F["source_dir"] = flags.DEFINE_string("source_dir", "", "Class folders to use instead of a split.")
  _F["data_dir"] = flags.DEFINE_string("data_dir", "", "Where --source_dir is prepared (default as training).")
  _F["out_dir"] = flags.DEFINE_string("out_dir", "", "Output folder (default WORKDIR/robustness_<split>).")
  for kind, (param, values) in robustness.DEFAULT_SWEEPS.items():
    _F[kind] = flags.DEFINE_list(
      f"{kind}_{param}", [f"{v:g}" for v in values], f"{kind} strengths ({param}); empty = skip {kind}."
    )
  _F["seed"] = flags.DEFINE_integer("seed", 0, "Seed of the perturbations' random draws.")
  _F["batch_size"] = flags.DEFINE_integer("batch_size", 256, "Evaluation batch (global).", lower_bound=1)
  _F["overwrite"] = flags.DEFINE_bool("overwrite", False, "Replace a report of other settings in --out_dir.")
  _F["progress"] = flags.DEFINE_bool("progress", True, "Progress bars on stderr.")


def _sweeps() -> dict[str, list[float]]:
  out = {}
  for kind in robustness.DEFAULT_SWEEPS:
    try:
      values = [float(v) for v in _F[kind].value]
    except ValueError:
      raise UserError(f"--{_F[kind].name} must be a comma-separated list of numbers") from None
    if values:
      out[kind] = values
  if not out:
    raise UserError("every sweep is empty: give strengths, e.g. --jpeg_quality=90,50,10")
  return out


def main(argv: Sequence[str]) -> None:
  cli.flags_only(argv)
  if not _F["workdir"].value:
    cli.fail("no work dir given: pass --workdir=DIR of a finished training run")
  sweeps = _sweeps()  # before JAX starts: a typo fails at once
  absl_logging.set_verbosity(absl_logging.WARNING)
  report, out_dir, about = robustness.sweep_workdir(
    _F["workdir"].value,
    sweeps,
    split=_F["split"].value,
    source_dir=_F["source_dir"].value,
    data_dir=_F["data_dir"].value,
    out_dir=_F["out_dir"].value,
    seed=_F["seed"].value,
    batch_size=_F["batch_size"].value,
    overwrite=_F["overwrite"].value,
    progress=_F["progress"].value,
  )
  print(robustness.table({f"{about['model']} {about['features']}": report}))
  print(f"report: {out_dir / 'robustness.json'}  figure: {out_dir / 'robustness.png'}")


def run() -> None:
  """The command line (also the console script of the same name)."""
  cli.run(main, _define_flags, all_cores=True)


if __name__ == "__main__":
  run()
