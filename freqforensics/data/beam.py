"""Preparation on Apache Beam: the same tasks as the local run, executed by a Beam runner.

`preparation.prepare_to(..., runner=beam_runner(options))` runs each stage's tasks (`shards.write_chunk`,
`shards.pack_shard`) as a `beam.Create(tasks) | beam.Map(fn)` pipeline: the DirectRunner here, and
Dataflow, Flink or Spark by pipeline options (`--runner=DataflowRunner --project=... --region=...`).
The planning between the stages (which usable records go to which split) runs in the driver, from
the tasks' JSON records. Because the tasks and their order-independent outputs are the same, the
result is byte for byte the dataset the local run writes, and an interrupted Beam run resumes from
the finished tasks like a local one.

Workers read the source images and write chunk and shard files by path, so on a cluster the source
and output directories must be on a file system that every worker mounts (NFS, a GCS FUSE mount,
...).
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
