"""Preparation on Apache Beam: the same tasks as the local run, executed by a Beam runner.

`preparation.prepare_to(..., runner=beam_runner(options))` runs each stage's tasks (`shards`) as a
`beam.Create(tasks) | beam.Map(fn)` pipeline; the planning between the stages runs in the driver, from
the tasks' JSON records. The result is byte for byte the local run's, and an interrupted Beam run
resumes like a local one. Workers read and write by path: on a cluster the source and output folders
must be on a file system every worker mounts (NFS, a GCS FUSE mount, ...).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

from freqforensics.data import preparation


def beam_runner(pipeline_args: str | Sequence[str] = ()) -> preparation.Runner:
  """A `preparation.Runner` that runs each stage as one Beam pipeline with these pipeline options.

  `pipeline_args` are Beam's own command-line options, e.g. `"--runner=DirectRunner
  --direct_num_workers=4 --direct_running_mode=multi_processing"`; empty means the DirectRunner.
  """
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top

  args = shlex.split(pipeline_args) if isinstance(pipeline_args, str) else list(pipeline_args)

  def run(fn: Callable, tasks: Sequence, weights: Sequence[int], done: Callable[[int], None]) -> None:
    if not tasks:
      return
    with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
      _ = pipeline | "tasks" >> beam.Create(list(tasks), reshuffle=True) | fn.__name__ >> beam.Map(fn)
    done(sum(weights))

  return run
