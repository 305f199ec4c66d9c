"""Video files -> sharded SequenceExample TFRecords + manifest.json (local worker pool).

One function converts one video (`convert_video`: decode -> 25 fps -> short side 256 -> flow -> encode);
the local pool (`run_conversion`), the Beam pipeline (`beam_pipeline`) and the TFDS builders all call it.

Shards: entries are split into `num_shards` contiguous chunks in their given order; shard k is written as
`<subset>-0000k-of-0000N.tfrecord` under a temporary name and renamed when complete, then its sidecar
`<shard>.manifest.json` is written (atomically).  A shard with both files is complete and skipped on rerun.
`manifest.json` merges the sidecars; every failed video is listed with its reason, and the run goes on.
"""

import collections
import dataclasses
import json
import logging
import multiprocessing
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple


from data_pipelines import flow as flow_lib
from data_pipelines import tfrecord_format
from data_pipelines import video as video_lib
from data_pipelines.datasets import VideoEntry
from i3d_tf.io_utils import atomic_write_json


@dataclasses.dataclass(frozen=True)
class ConversionOptions:
  fps: float = video_lib.TARGET_FPS
  resize_short_side: int = video_lib.RESIZE_SHORT_SIDE
  max_frames: Optional[int] = None
  min_frames: int = 2  # at least one flow field; a 1-frame video is reported as failed.
  flow: str = 'tvl1'  # a FLOW_BACKENDS name or 'none'.
  flow_params: Tuple[Tuple[str, object], ...] = ()  # backend keyword arguments, e.g. (('tau', 0.25),).
  jpeg_quality: int = 90
  flow_format: str = 'png'


def shard_name(subset: str, shard: int, num_shards: int) -> str:
  return f'{subset}-{shard:05d}-of-{num_shards:05d}.tfrecord'


def shard_ranges(num_entries: int, num_shards: int) -> List[Tuple[int, int]]:
  """Contiguous [begin, end) ranges of entries per shard."""
  return [(k * num_entries // num_shards, (k + 1) * num_entries // num_shards) for k in range(num_shards)]


def _remote(path: str) -> bool:
  return '://' in path  # gs://, s3://, hdfs://: go through tf.io.gfile


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def _exists(path: str) -> bool:
  return _gfile().exists(path) if _remote(path) else os.path.exists(path)


def _makedirs(path: str):
  if _remote(path):
    _gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def _open(path: str, mode: str = 'r'):
  return _gfile().GFile(path, mode) if _remote(path) else open(path, mode)


def _failed_record(entry: VideoEntry) -> Dict:
  return dict(id=entry.video_id, label=entry.label_index, label_text=entry.label_text, path=entry.path,
              frames=0, flow_frames=0, status='failed', error='')


def decode_with_flow(path: str, options: ConversionOptions = ConversionOptions()):
  """Decodes a video (25 fps, short side) and computes its quantized flow (None for flow='none')."""
  decoded = video_lib.decode_video(path, fps=options.fps, resize_short_side=options.resize_short_side,
                                   max_frames=options.max_frames, min_frames=options.min_frames)
  flow_q = None
  if options.flow != 'none':
    backend = flow_lib.get_flow_backend(options.flow, **dict(options.flow_params))
    flow_q = flow_lib.compute_flow(decoded.frames, backend)
  return decoded, flow_q


def convert_video(entry: VideoEntry, options: ConversionOptions = ConversionOptions()):
  """Converts one video; never raises for bad input.

  Returns:
    (EncodedVideo or None, manifest record dict with id, label, label_text, path, frames, flow_frames,
    status 'ok' | 'failed', error, seconds).
  """
  t0 = time.time()
  record = _failed_record(entry)
  try:
    decoded, flow_q = decode_with_flow(entry.path, options)
    encoded = tfrecord_format.encode_video(
        decoded.frames, flow_q, video_id=entry.video_id, label_index=entry.label_index,
        label_text=entry.label_text, source=entry.path, fps=decoded.fps, jpeg_quality=options.jpeg_quality,
        flow_format=options.flow_format)
    record.update(frames=encoded.num_frames, flow_frames=len(encoded.flow_x), status='ok')
  except Exception as e:  # pylint: disable=broad-except  (every failure is reported, the run goes on)
    encoded = None
    record['error'] = f'{type(e).__name__}: {e}'
  record['seconds'] = round(time.time() - t0, 3)
  return encoded, record


def _convert_star(args):
  return convert_video(*args)


def _crashed(entry, error):
  return None, dict(_failed_record(entry), error=error, seconds=0.0)


def _pool_results(jobs, workers):
  """convert_video over `jobs` in a process pool, results in job order.

  A worker that dies (e.g. a decoder segfault on a corrupt file) breaks the pool: the jobs that were in
  flight are then rerun one at a time in a fresh single-process pool, the one that kills it again is
  reported as failed ('worker process crashed'), and the parallel run resumes.
  """
  from concurrent.futures import ProcessPoolExecutor  # pylint: disable=g-import-not-at-top
  from concurrent.futures.process import BrokenProcessPool  # pylint: disable=g-import-not-at-top
  ctx = multiprocessing.get_context('spawn')
  new_pool = lambda n: ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init)
  pool = new_pool(workers)
  pending = collections.deque()
  next_job = 0
  try:
    while next_job < len(jobs) or pending:
      while next_job < len(jobs) and len(pending) < 2 * workers:
        pending.append((next_job, pool.submit(convert_video, *jobs[next_job])))
        next_job += 1
      i, future = pending.popleft()
      try:
        yield future.result()
        continue
      except BrokenProcessPool:
        pass
      pool.shutdown(wait=False, cancel_futures=True)
      for j in [i] + [j for j, _ in pending]:  # isolate the culprit
        single = new_pool(1)
        try:
          yield single.submit(convert_video, *jobs[j]).result()
        except BrokenProcessPool:
          yield _crashed(jobs[j][0], 'worker process crashed while converting this video')
        finally:
          single.shutdown(wait=True)
      pending.clear()
      pool = new_pool(workers)
  finally:
    pool.shutdown(wait=False, cancel_futures=True)


def _worker_init():
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)  # one process per core; OpenCV threads would oversubscribe.


def write_shard(output_dir: str, subset: str, shard: int, num_shards: int, results) -> List[Dict]:
  """Writes one shard from (EncodedVideo | None, record) pairs in order, then its manifest sidecar."""
  path = os.path.join(output_dir, shard_name(subset, shard, num_shards))
  records = []
  serialized = []
  for encoded, record in results:
    record = dict(record, shard=os.path.basename(path) if encoded is not None else None)
    if encoded is not None:
      serialized.append(tfrecord_format.serialize(encoded))
    records.append(record)
  tfrecord_format.write_tfrecord(path, serialized)
  atomic_write_json(path + '.manifest.json', records, sort_keys=True)
  return records


def shard_complete(output_dir: str, subset: str, shard: int, num_shards: int) -> bool:
  path = os.path.join(output_dir, shard_name(subset, shard, num_shards))
  return _exists(path) and _exists(path + '.manifest.json')


def write_manifest(output_dir: str, subset: str, num_shards: int, extra: Optional[Dict] = None) -> Dict:
  """Merges the shard sidecars into manifest.json; returns the summary."""
  videos = []
  for k in range(num_shards):
    with _open(os.path.join(output_dir, shard_name(subset, k, num_shards)) + '.manifest.json') as f:
      videos.extend(json.load(f))
  failed = [v for v in videos if v['status'] != 'ok']
  summary = dict(subset=subset, num_shards=num_shards, videos=len(videos), ok=len(videos) - len(failed),
                 failed=len(failed), frames=int(sum(v['frames'] for v in videos)),
                 flow_frames=int(sum(v['flow_frames'] for v in videos)))
  summary.update(extra or {})
  atomic_write_json(os.path.join(output_dir, 'manifest.json'), dict(summary=summary, videos=videos), sort_keys=True)
  return summary


def run_conversion(entries: Sequence[VideoEntry], output_dir: str, subset: str, num_shards: int = 1,
                   options: ConversionOptions = ConversionOptions(), workers: int = 1,
                   labels: Optional[Sequence[str]] = None, progress: bool = True) -> Dict:
  """Converts `entries` into `num_shards` shards with a pool of `workers` processes (resumable).

  Returns:
    The summary dict (videos, ok, failed, frames, flow_frames, skipped_shards, seconds), also in
    manifest.json.
  """
  if num_shards < 1 or workers < 1:
    raise ValueError(f'num_shards and workers must be >= 1. Received: {num_shards}, {workers}')
  t0 = time.time()
  _makedirs(output_dir)
  ranges = shard_ranges(len(entries), num_shards)
  todo = [k for k in range(num_shards) if not shard_complete(output_dir, subset, k, num_shards)]
  skipped = num_shards - len(todo)
  if skipped:
    logging.info('%d of %d shards already complete, skipped.', skipped, num_shards)
  jobs = [(entries[i], options) for k in todo for i in range(*ranges[k])]
  results = _pool_results(jobs, workers) if workers > 1 and jobs else map(_convert_star, jobs)
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=len(jobs), desc=f'{subset} videos', unit='video')
  failed = 0
  try:
    for k in todo:
      begin, end = ranges[k]
      batch = []
      for _ in range(end - begin):
        batch.append(next(results))
        failed += batch[-1][1]['status'] != 'ok'
        if bar is not None:
          bar.update(1)
          bar.set_postfix(failed=failed)
      write_shard(output_dir, subset, k, num_shards, batch)
  finally:
    if bar is not None:
      bar.close()
    if hasattr(results, 'close'):
      results.close()
  extra = dict(skipped_shards=skipped, seconds=round(time.time() - t0, 2), options=_options_dict(options))
  if labels is not None:
    extra['labels'] = list(labels)
  return write_manifest(output_dir, subset, num_shards, extra)


def _options_dict(options):
  d = dataclasses.asdict(options)
  d['flow_params'] = {k: v for k, v in options.flow_params}
  return d


def failure_lines(output_dir: str, limit: int = 20) -> List[str]:
  """'id: reason' for the failed videos of manifest.json (at most `limit`, then a count)."""
  with _open(os.path.join(output_dir, 'manifest.json')) as f:
    failed = [v for v in json.load(f)['videos'] if v['status'] != 'ok']
  lines = [f'FAILED {v["id"]} ({v["path"]}): {v["error"]}' for v in failed[:limit]]
  if len(failed) > limit:
    lines.append(f'... and {len(failed) - limit} more failures, see manifest.json')
  return lines


def summary_line(summary: Dict) -> str:
  return (f'{summary["subset"]}: {summary["ok"]}/{summary["videos"]} videos converted, {summary["failed"]} '
          f'failed, {summary["frames"]} frames, {summary["flow_frames"]} flow fields, '
          f'{summary["num_shards"]} shards ({summary.get("skipped_shards", 0)} already complete), '
          f'{summary.get("seconds", 0)} s')
