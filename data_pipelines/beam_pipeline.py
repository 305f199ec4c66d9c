"""Apache Beam conversion for Kinetics-scale datasets: the same `convert_video` and shard format.

Pipeline: Create(entries keyed by shard) -> Map(convert_video) (parallel over videos: the flow
bottleneck) -> GroupByKey(shard) -> Map(write_shard) (sorted in entry order, temporary name then rename,
then the shard's manifest; `retry_shard` for a complete shard whose earlier failures are retried).  The driver checks the output folder first (`conversion.prepare_output`: the
same resume key, refusals and `overwrite` as the local pool) and merges the shard manifests into
manifest.json after the run.  Any runner works (`--runner=DirectRunner|DataflowRunner|FlinkRunner...`);
for remote runners `output_dir` must be a path every worker can write: a local shared path or any
tf.io.gfile URL (gs://...); only local paths are tested here.
"""

from typing import Dict, List, Optional, Sequence

from data_pipelines import conversion
from data_pipelines.datasets import VideoEntry


def _convert(item, options):
  shard, index, entry = item
  encoded, record = conversion.convert_video(entry, options)
  return shard, (index, encoded, record)


def _write(item, output_dir, subset, num_shards, retry_shards):
  shard, results = item
  results = sorted(results, key=lambda r: r[0])
  write = conversion.retry_shard if shard in retry_shards else conversion.write_shard
  records = write(output_dir, subset, shard, num_shards, [(e, r) for _, e, r in results])
  return len(records)


def run_beam(entries: Sequence[VideoEntry], output_dir: str, subset: str, num_shards: int = 1,
             options: conversion.ConversionOptions = conversion.ConversionOptions(),
             runner: str = 'DirectRunner', pipeline_args: Optional[List[str]] = None,
             labels: Optional[Sequence[str]] = None, overwrite: bool = False,
             extra: Optional[Dict] = None, retry_failed: bool = True) -> Dict:
  """Runs the conversion as a Beam pipeline; same output folder and resume rules as `run_conversion`.

  Args:
    entries: the subset's videos, split in order into `num_shards` contiguous shards.
    output_dir: the output folder; for remote runners a path every worker can write (shared path or
      tf.io.gfile URL).
    subset: the subset name (letters, digits, '_').
    num_shards: number of shards.
    options: decoding, flow and encoding options (`conversion.ConversionOptions`).
    runner: the Beam runner's name, e.g. 'DirectRunner', 'DataflowRunner'.
    pipeline_args: further Beam pipeline flags (e.g. ['--project=...']); `runner` is appended.
    labels: the dataset's class list (recorded; other subsets in `output_dir` must use the same).
    overwrite: replace the subset's previous output instead of refusing a rerun with another key.
    extra: fields added to the summary.
    retry_failed: convert again the videos that earlier runs recorded as failed, only those (their shards
      keep their other records: `conversion.retry_shard`); False counts them in the summary instead.

  Returns:
    The subset's summary dict (also in manifest.json), with 'runner' added.

  Raises:
    DatasetError, OutputConflictError: as in `conversion.prepare_output`, before any video is read.
  """
  import time  # pylint: disable=g-import-not-at-top
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top

  t0 = time.time()
  plan = conversion.prepare_output(entries, output_dir, subset, num_shards, options, labels, overwrite,
                                  retry_failed)
  ranges = conversion.shard_ranges(len(entries), num_shards)
  todo = plan.todo
  items = [(k, i, entries[i]) for k in todo for i in range(*ranges[k])]
  items += [(k, i, entries[i]) for k, indices in sorted(plan.retry.items()) for i in indices]
  empty_shards = [k for k in todo if ranges[k][0] == ranges[k][1]]
  for k in empty_shards:  # GroupByKey never sees a shard without entries.
    conversion.write_shard(output_dir, subset, k, num_shards, [])
  if items:
    opts = PipelineOptions(list(pipeline_args or []) + [f'--runner={runner}'])
    with beam.Pipeline(options=opts) as p:
      _ = (p
           | 'Videos' >> beam.Create(items)
           | 'Reshuffle' >> beam.Reshuffle()
           | 'Convert' >> beam.Map(_convert, options)
           | 'GroupByShard' >> beam.GroupByKey()
           | 'WriteShard' >> beam.Map(_write, output_dir, subset, num_shards, set(plan.retry)))
  run = dict(conversion.plan_summary(plan, entries, output_dir, subset, num_shards),
             seconds=round(time.time() - t0, 2), runner=runner,
             options=conversion._options_dict(options))  # pylint: disable=protected-access
  if labels is not None:
    run['labels'] = list(labels)
  run.update(extra or {})
  return conversion.write_manifest(output_dir, subset, num_shards, run)
