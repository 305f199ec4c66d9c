"""Video files -> sharded SequenceExample TFRecords + manifest.json (local worker pool).

One function converts one video (`convert_video`: decode -> 25 fps -> short side 256 -> flow -> encode);
the local pool (`run_conversion`), the Beam pipeline (`beam_pipeline`) and the TFDS builders all call it.

Output folder (docs/reruns.md):

  <subset>-0000k-of-0000N.tfrecord         the shards (entries split into N contiguous chunks, in order)
  manifest.json                            the dataset's class list ('labels') and, per subset, a summary,
                                           the resume key and every video with its status / error
  manifests/subset-<subset>.json           the subset's full resume key (written before any shard)
  manifests/shard-<subset>-0000k-of-0000N.json   the shard's video records (written after the shard)

The per-shard manifests live in `manifests/` under names that do not start with the shard's, so no shard
glob (`train-*`, `*.tfrecord*`, `**/train-*`) matches them.  Every file is written atomically (temporary
name, then rename).  A shard is complete when it and its manifest exist; a rerun whose key (video list
with sizes and modification times, labels, every option, num_shards, the format version) equals the
recorded one skips complete shards, except that the videos their manifests record as failed are converted
again (`retry_failed`, the default; only those, `retry_shard`; their files may have changed meanwhile); any
other rerun is refused naming what differs (`OutputConflictError`) unless `overwrite=True`, which first
removes the subset's previous shards and manifests.
"""

import collections
import dataclasses
import glob
import hashlib
import json
import logging
import multiprocessing
import os
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from data_pipelines import constants
from data_pipelines import flow as flow_lib
from data_pipelines import tfrecord_format
from data_pipelines import video as video_lib
from data_pipelines.datasets import DatasetError, VideoEntry, check_unique_ids
from data_pipelines.io_utils import TMP_PREFIX, atomic_write_json

FORMAT_VERSION = tfrecord_format.FORMAT_VERSION
MANIFEST = 'manifest.json'
MANIFEST_DIR = 'manifests'


class OutputConflictError(ValueError):
  """The output folder holds something this run would not reproduce (other settings, another layout)."""


@dataclasses.dataclass(frozen=True)
class ConversionOptions:
  """How `convert_video` decodes, resamples, computes flow and encodes (every field is in the resume key;
  `flow_pad_multiple` only when above 1).

  Attributes:
    fps: output frame rate (25, Sec. 2.5).
    resize_short_side: smaller side of the stored frames in pixels (256, Sec. 2.5), aspect ratio kept.
    max_frames: keep at most this many output frames (the first ones); None keeps all.
    min_frames: a video decoding to fewer frames is reported as failed.
    flow: a `FLOW_BACKENDS` name, a 'package.module:function' backend, or 'none' (no flow stored).
    flow_params: the backend's keyword arguments as (name, value) pairs.
    flow_pad_multiple: frames are edge-padded to a multiple of this many pixels for the flow backend, the flow
      cropped back (`flow.compute_flow`'s `pad_to_multiple`): one TensorFlow TV-L1 compilation for frame
      sizes a few pixels apart; 1: no padding (in the resume key only when > 1, so keys written before it
      existed read as 1).  prepare_data passes `default_flow_pad_multiple(flow)`: 32 for the TensorFlow backends.
    jpeg_quality: JPEG quality of the RGB frames, 0-100.
    flow_format: 'png' (lossless) or 'jpeg' for the quantized flow images.
  """
  fps: float = video_lib.TARGET_FPS
  resize_short_side: int = video_lib.RESIZE_SHORT_SIDE
  max_frames: Optional[int] = None
  min_frames: int = 2  # at least one flow field; a 1-frame video is reported as failed.
  flow: str = 'tvl1'  # a FLOW_BACKENDS name or 'none'.
  flow_params: Tuple[Tuple[str, object], ...] = ()  # backend keyword arguments, e.g. (('tau', 0.25),).
  flow_pad_multiple: int = 1
  jpeg_quality: int = 90
  flow_format: str = 'png'

  def __post_init__(self):
    if isinstance(self.flow_pad_multiple, np.integer):  # a NumPy integer: the key must stay JSON
      object.__setattr__(self, 'flow_pad_multiple', int(self.flow_pad_multiple))
    if (isinstance(self.flow_pad_multiple, bool) or not isinstance(self.flow_pad_multiple, int) or
        not 1 <= self.flow_pad_multiple <= constants.MAX_FLOW_PAD_MULTIPLE):
      raise ValueError(f'flow_pad_multiple must be an integer from 1 (no padding) to '
                       f'{constants.MAX_FLOW_PAD_MULTIPLE}. Received: flow_pad_multiple={self.flow_pad_multiple!r}')


def default_flow_pad_multiple(flow: str, requested: Optional[int] = None) -> int:
  """`requested`, or when None the padding `flow` gets by default: `constants.FLOW_PAD_MULTIPLE` (32) for the
  TensorFlow backends 'tvl1_tf' and 'tvl1_tf_fast' (they compile once per frame size), 1 for OpenCV's 'tvl1'
  (nothing to compile) and custom backends.  prepare_data's --flow_pad_multiple.

  Raises:
    ValueError: a padding other than 1 requested with flow 'none' (nothing to pad: drop the flag).
  """
  if flow == 'none':
    if requested not in (None, 1):
      raise ValueError(f'--flow_pad_multiple={requested} with --flow=none: there is no flow to pad; drop '
                       '--flow_pad_multiple or choose a flow backend')
    return 1
  if requested is not None:
    return requested
  return constants.FLOW_PAD_MULTIPLE if flow in ('tvl1_tf', 'tvl1_tf_fast') else 1


SUBSET_NAME = re.compile(r'[A-Za-z0-9_]+$')


def check_subset_name(subset: str) -> str:
  """`subset` if it can name shards: letters, digits and '_' only.  The shards are `<subset>-NNNNN-of-NNNNN`,
  so a '-' would let the glob `<other>-*` match them (`train-hard` inside `train-*`), a '/' would write outside
  the output folder, and an empty name would make `-*` shards.

  Raises:
    DatasetError: one line naming the subset and what is allowed.
  """
  if not isinstance(subset, str) or not SUBSET_NAME.match(subset):
    raise DatasetError(f'--subset={subset!r} cannot name shards: use letters, digits and "_" only (e.g. train, '
                       'test, val, train_hard), so that the glob <subset>-* matches this subset alone')
  return subset


def shard_name(subset: str, shard: int, num_shards: int) -> str:
  """File name of shard `shard` (0-based) of `num_shards`: `<subset>-0000k-of-0000N.tfrecord`."""
  return f'{subset}-{shard:05d}-of-{num_shards:05d}.tfrecord'


def shard_manifest_name(subset: str, shard: int, num_shards: int) -> str:
  """Path of a shard's manifest (its video records), relative to the output folder; no shard glob matches it.

  Args:
    subset: the subset name (`check_subset_name`).
    shard: 0-based shard index.
    num_shards: number of shards of the subset.

  Returns:
    'manifests/shard-<subset>-0000k-of-0000N.json'.
  """
  return f'{MANIFEST_DIR}/shard-{subset}-{shard:05d}-of-{num_shards:05d}.json'


def subset_state_name(subset: str) -> str:
  """The subset's resume key and run summary, relative to the output folder."""
  return f'{MANIFEST_DIR}/subset-{subset}.json'


_SHARD_SUFFIX = r'-(\d{5,})-of-(\d{5,})\.tfrecord$'  # `shard_name`'s: shard index and count


def _shard_pattern(subset: str):
  return re.compile(re.escape(subset) + _SHARD_SUFFIX)


def shard_ranges(num_entries: int, num_shards: int) -> List[Tuple[int, int]]:
  """Contiguous [begin, end) ranges of `num_entries` entries for `num_shards` shards, in order.

  Sizes differ by at most one; with more shards than entries some ranges are empty.
  """
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


def _listdir(path: str) -> List[str]:
  """Sorted names in a folder ([] when it does not exist)."""
  if not _exists(path):
    return []
  names = _gfile().listdir(path) if _remote(path) else os.listdir(path)
  return sorted(n.rstrip('/') for n in names)


def _remove(path: str):
  if _remote(path):
    _gfile().remove(path)
  else:
    os.remove(path)


def _read_json(path: str):
  """The parsed JSON file, or None when it does not exist."""
  if not _exists(path):
    return None
  with _open(path) as f:
    return json.load(f)
def _failed_record(entry: VideoEntry) -> Dict:
  return dict(id=entry.video_id, label=entry.label_index, label_text=entry.label_text, path=entry.path,
              frames=0, flow_frames=0, status='failed', error='')


def decode_with_flow(path: str, options: ConversionOptions = ConversionOptions()):
  """Decodes a video (25 fps, short side) and computes its quantized flow (None for flow='none'), Sec. 2.5.

  Args:
    path: a video file OpenCV reads.
    options: frame rate, resize, frame limits, flow backend and its parameters.

  Returns:
    (DecodedVideo with uint8 RGB frames [N, H, W, 3], flow uint8 [N - 1, H, W, 2] (x, y) quantized from
    [-20, 20] px to 0-255 (`data_pipelines.flow.quantize_flow`), or None).

  Raises:
    VideoDecodeError: a missing, empty, unreadable or truncated file, or fewer than `options.min_frames` frames.
    ValueError: an unknown flow backend, or a backend output of the wrong shape or with NaN / inf values.
  """
  decoded = video_lib.decode_video(path, fps=options.fps, resize_short_side=options.resize_short_side,
                                   max_frames=options.max_frames, min_frames=options.min_frames)
  flow_q = None
  if options.flow != 'none':
    backend = flow_lib.get_flow_backend(options.flow, **dict(options.flow_params))
    flow_q = flow_lib.compute_flow(decoded.frames, backend, pad_to_multiple=options.flow_pad_multiple)
  return decoded, flow_q


def convert_video(entry: VideoEntry, options: ConversionOptions = ConversionOptions()):
  """Converts one video; never raises for bad input.

  Args:
    entry: the video (id, path, label index and text).
    options: decoding, flow and encoding options.

  Returns:
    (EncodedVideo or None, manifest record dict with id, label, label_text, path, frames, flow_frames,
    status 'ok' | 'failed', error, seconds).  A failure is recorded as error '<ExceptionType>: <message>'
    with the EncodedVideo None.
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
  import signal  # pylint: disable=g-import-not-at-top
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)  # one process per core; OpenCV threads would oversubscribe.
  from data_pipelines.flow import native  # pylint: disable=g-import-not-at-top
  native.set_num_threads(1)  # the same for the native TV-L1 engine's threads (one pair at a time)
  # Python's own Ctrl-C again in the tasks: the binary's import-time handler (i3d_tf.cli.quiet_start, run again
  # by the spawned worker) would end a task with os._exit, leaving the pool's semaphores to the resource tracker.
  signal.signal(signal.SIGINT, signal.default_int_handler)


def write_shard(output_dir: str, subset: str, shard: int, num_shards: int, results) -> List[Dict]:
  """Writes one shard, then its manifest (each atomically); a shard is complete once both exist.

  Args:
    output_dir: the output folder (local path or tf.io.gfile URL).
    subset: the subset name (`check_subset_name`).
    shard: 0-based shard index.
    num_shards: number of shards of the subset.
    results: (EncodedVideo | bytes | None, record) pairs from `convert_video`, in entry order; bytes are an
      already serialized record (kept from the shard that `retry_shard` rewrites); a None video (failed) is
      written to the manifest only.

  Returns:
    The manifest records, each with 'shard' set to the shard's file name (None for a failed video).
  """
  path = os.path.join(output_dir, shard_name(subset, shard, num_shards))
  records = []
  serialized = []
  for encoded, record in results:
    record = dict(record, shard=os.path.basename(path) if encoded is not None else None)
    if encoded is not None:
      serialized.append(encoded if isinstance(encoded, bytes) else tfrecord_format.serialize(encoded))
    records.append(record)
  tfrecord_format.write_tfrecord(path, serialized)
  atomic_write_json(os.path.join(output_dir, shard_manifest_name(subset, shard, num_shards)), records,
                    sort_keys=True)
  return records


def _shard_records(path: str) -> List[Tuple[str, bytes]]:
  """(video id, serialized record) of every record of a shard file, in file order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = []
  for raw in tf.data.TFRecordDataset(path):
    raw = raw.numpy()
    example = tf.train.SequenceExample.FromString(raw)
    out.append((example.context.feature['video/id'].bytes_list.value[0].decode('utf-8'), raw))
  return out


def retry_shard(output_dir: str, subset: str, shard: int, num_shards: int, results) -> List[Dict]:
  """Puts the videos retried from a complete shard into it; the shard's other records are kept as they are.

  The shard's manifest is replaced by one with the retried videos' new records.  When any retried video
  converted, the shard is rewritten (its kept records read back, in entry order with the new ones): its
  manifest is removed first, so that until the new manifest is written the shard counts as incomplete and a
  killed run converts it again whole; the shard itself is written under a temporary name, then renamed.
  When all failed again, only the manifest is replaced (their new errors and times).

  Args:
    output_dir: the output folder (local path or tf.io.gfile URL).
    subset: the subset name.
    shard: 0-based shard index; the shard and its manifest exist (`shard_complete`).
    num_shards: number of shards of the subset.
    results: (EncodedVideo | None, record) pairs from `convert_video` for videos the shard's manifest records
      as failed, in entry order.

  Returns:
    The shard's new manifest records, in entry order.

  Raises:
    OutputConflictError: a retried video is not recorded as failed in the shard's manifest, or the shard does
      not hold exactly the videos its manifest records as converted (changed by something else): rerun with
      --overwrite.
  """
  manifest_path = os.path.join(output_dir, shard_manifest_name(subset, shard, num_shards))
  old = _read_json(manifest_path) or []
  retried = {record['id']: (encoded, record) for encoded, record in results}
  failed_before = {r['id'] for r in old if r.get('status') != 'ok'}
  if set(retried) - failed_before:
    raise OutputConflictError(f'{manifest_path} does not record {_some(sorted(set(retried) - failed_before))} as '
                              'failed: only failed videos are retried; rerun with --overwrite')
  if not any(encoded is not None for encoded, _ in retried.values()):  # nothing new for the shard file
    records = [dict(retried[r['id']][1], shard=None) if r['id'] in retried else r for r in old]
    atomic_write_json(manifest_path, records, sort_keys=True)
    return records
  path = os.path.join(output_dir, shard_name(subset, shard, num_shards))
  kept = _shard_records(path)
  converted_before = [r['id'] for r in old if r.get('status') == 'ok']
  if [video_id for video_id, _ in kept] != converted_before:
    raise OutputConflictError(
        f'{path} holds the videos {_some([i for i, _ in kept])}, but {manifest_path} records '
        f'{_some(converted_before)} as converted: the shard was changed by something else; rerun with --overwrite')
  kept_records = iter(raw for _, raw in kept)
  merged = [retried[r['id']] if r['id'] in retried else
            (next(kept_records) if r.get('status') == 'ok' else None, r) for r in old]
  _remove(manifest_path)  # incomplete until the new manifest exists: a killed rewrite is redone whole
  return write_shard(output_dir, subset, shard, num_shards, merged)


def shard_complete(output_dir: str, subset: str, shard: int, num_shards: int) -> bool:
  """True when shard `shard` of `num_shards` of `subset` and its shard manifest both exist in `output_dir`."""
  return (_exists(os.path.join(output_dir, shard_name(subset, shard, num_shards))) and
          _exists(os.path.join(output_dir, shard_manifest_name(subset, shard, num_shards))))


# ----- what determines the output: the resume key -----
def _options_dict(options):
  d = dataclasses.asdict(options)
  # Not the TV-L1 engine: both compute the same algorithm (docs/flow.md); the manifest records it as flow_engine.
  d['flow_params'] = {k: v for k, v in flow_lib.without_engine(options.flow_params)}
  if d['flow_pad_multiple'] == 1:  # as keys written before the option existed
    del d['flow_pad_multiple']
  return d


def _file_stat(path: str):
  try:
    st = os.stat(path)
  except OSError:
    return None, None  # missing: recorded as failed; if it appears later, the key changes
  return st.st_size, st.st_mtime_ns


def conversion_key(entries: Sequence[VideoEntry], options: 'ConversionOptions', num_shards: int,
                   labels: Optional[Sequence[str]] = None) -> Dict:
  """Everything that determines a subset's shards (the resume key).

  Args:
    entries: the subset's videos, in order.
    options: the conversion options (every field is part of the key).
    num_shards: number of shards.
    labels: the dataset's class list, or None.

  Returns:
    {'format_version', 'num_shards', 'options', 'labels', 'videos'}, the videos in order as
    [id, path, label index, size in bytes, mtime_ns] (size and mtime None for a missing file), as JSON
    reads it back (tuples become lists).
  """
  videos = [[e.video_id, e.path, int(e.label_index), *_file_stat(e.path)] for e in entries]
  key = dict(format_version=FORMAT_VERSION, num_shards=int(num_shards), options=_options_dict(options),
             labels=None if labels is None else list(labels), videos=videos)
  return json.loads(json.dumps(key))  # what it reads back as


def _compact_key(key: Dict) -> Dict:
  """The key as manifest.json shows it: the video list as a count and a digest."""
  digest = hashlib.sha256(json.dumps(key.get('videos', []), sort_keys=True).encode()).hexdigest()
  return dict({k: v for k, v in key.items() if k not in ('videos', 'labels')},
              num_videos=len(key.get('videos', [])), videos_sha256=digest)


def _some(ids: Sequence[str], n: int = 3) -> str:
  return ', '.join(ids[:n]) + (', ...' if len(ids) > n else '')


def _labels_change(old, new) -> str:
  if old is None or new is None:
    return f'class list {"none" if old is None else f"of {len(old)} classes"} -> ' \
           f'{"none" if new is None else f"{len(new)} classes"}'
  for i, (a, b) in enumerate(zip(old, new)):
    if a != b:
      return f'class list differs at class {i} ({a!r} -> {b!r})'
  return f'class list of {len(old)} -> {len(new)} classes'


def describe_key_change(old: Dict, new: Dict) -> List[str]:
  """What differs between two conversion keys, in words (empty when equal).

  Args:
    old: the recorded key (fields it lacks, e.g. from an older version, compare as None).
    new: this run's `conversion_key`.

  Returns:
    One line per difference, e.g. 'num_shards 2 -> 4' or '3 video(s) added: a, b, c'.
  """
  out = []
  if old.get('format_version') != new['format_version']:
    out.append(f'format version {old.get("format_version")} -> {new["format_version"]} (written by another '
               'version of prepare_data)')
  if old.get('num_shards') != new['num_shards']:
    out.append(f'num_shards {old.get("num_shards")} -> {new["num_shards"]}')
  old_options, new_options = old.get('options') or {}, new['options']
  absent = dict(flow_pad_multiple=1)  # options a key leaves out at their default
  changed = [(name, old_options.get(name, absent.get(name)), new_options.get(name, absent.get(name)))
             for name in sorted(set(old_options) | set(new_options))]
  changed = [(name, was, now) for name, was, now in changed if was != now]
  for name, was, now in changed:
    out.append(f'{name} {was!r} -> {now!r}')
  if old.get('labels') != new['labels']:
    out.append(_labels_change(old.get('labels'), new['labels']))
  old_videos = {v[0]: v for v in old.get('videos') or []}
  new_videos = {v[0]: v for v in new['videos']}
  added = [i for i in new_videos if i not in old_videos]
  removed = [i for i in old_videos if i not in new_videos]
  common = [i for i in new_videos if i in old_videos]
  changes = [(added, 'added'), (removed, 'removed'),
             ([i for i in common if old_videos[i][3:] != new_videos[i][3:]], 'changed (size or modification time)'),
             ([i for i in common if old_videos[i][1] != new_videos[i][1]], 'moved (other path)'),
             ([i for i in common if old_videos[i][2] != new_videos[i][2]], 'relabelled')]
  for ids, what in changes:
    if ids:
      out.append(f'{len(ids)} video(s) {what}: {_some(ids)}')
  if not any(ids for ids, _ in changes) and list(old_videos) != list(new_videos):
    out.append('the videos are listed in another order')
  if len(out) == 1 and changed and changed[0][0] == 'flow_pad_multiple':  # the fix, when the padding is all
    out[0] += f' (--flow_pad_multiple={changed[0][1]} continues with the recorded flow)'
  return out


# ----- the output folder: what exists, what is refused, what is removed -----
def _subset_files(output_dir: str, subset: str) -> Dict[str, List[str]]:
  """The subset's files in `output_dir` (relative paths) by kind: shards, first-layout sidecars beside
  them, shard manifests, the state, and stray temporaries of killed writers."""
  pattern = _shard_pattern(subset)
  top = _listdir(output_dir)
  inner = _listdir(os.path.join(output_dir, MANIFEST_DIR))
  shard_manifest = re.compile(re.escape(f'shard-{subset}-') + r'\d{5,}-of-\d{5,}\.json$')
  state = os.path.basename(subset_state_name(subset))
  tmp = re.compile(re.escape(TMP_PREFIX) + r'[0-9a-f]+-(.+)$')  # atomic_path's '.tmp-<id>-<name>'
  target = lambda n: tmp.match(n).group(1) if tmp.match(n) else None
  strays = [n for n in top if target(n) and pattern.match(target(n).replace('.manifest.json', ''))]
  strays += [f'{MANIFEST_DIR}/{n}' for n in inner if target(n) and
             (shard_manifest.match(target(n)) or target(n) == state)]
  return dict(shards=[n for n in top if pattern.match(n)],
              old_sidecars=[n for n in top if n.endswith('.manifest.json') and pattern.match(n[:-14])],
              shard_manifests=[f'{MANIFEST_DIR}/{n}' for n in inner if shard_manifest.match(n)],
              state=[subset_state_name(subset)] if state in inner else [], strays=strays)


def _subset_states(output_dir: str) -> Dict[str, Dict]:
  """{subset: state} of every subset converted into `output_dir` with this layout."""
  states = {}
  for name in _listdir(os.path.join(output_dir, MANIFEST_DIR)):
    if name.startswith('subset-') and name.endswith('.json'):
      state = _read_json(os.path.join(output_dir, MANIFEST_DIR, name))
      if isinstance(state, dict) and 'subset' in state:
        states[state['subset']] = state
  return states


def _legacy_subsets(output_dir: str) -> Dict[str, Dict]:
  """Subsets that manifest.json describes without a state of this layout (written by the first layout,
  whose manifest.json had one 'summary' and 'videos'), as {subset: {'summary', 'videos', 'layout'}}."""
  try:
    manifest = _read_json(os.path.join(output_dir, MANIFEST))
  except ValueError:
    return {}
  if not isinstance(manifest, dict):
    return {}
  if 'format_version' not in manifest and isinstance(manifest.get('summary'), dict):
    summary = manifest['summary']
    return {summary.get('subset', '?'): dict(summary=summary, videos=manifest.get('videos', []), layout='first')}
  return {s: v for s, v in (manifest.get('subsets') or {}).items() if v.get('layout') == 'first'}


def _recorded_labels(output_dir: str) -> Dict[str, List[str]]:
  """{subset: class list} of the subsets converted into `output_dir` with a class list."""
  found = {}
  for subset, state in _subset_states(output_dir).items():
    if state.get('key', {}).get('labels') is not None:
      found[subset] = list(state['key']['labels'])
  for subset, legacy in _legacy_subsets(output_dir).items():
    if subset not in found and legacy['summary'].get('labels'):
      found[subset] = list(legacy['summary']['labels'])
  return found


def dataset_class_list(output_dir: str) -> Optional[Tuple[List[str], List[str]]]:
  """The class list recorded in `output_dir` by earlier conversions and the subsets that used it
  ((labels, subsets)), or None when nothing there records one.  Subsets that disagree (possible only
  in folders written before this check): the list of the first subset by name."""
  found = _recorded_labels(output_dir)
  if not found:
    return None
  first = found[sorted(found)[0]]
  return first, sorted(s for s, labels in found.items() if labels == first)


@dataclasses.dataclass
class OutputPlan:
  """What a conversion run does (`prepare_output`).

  Attributes:
    todo: shard indices to write whole (never written, interrupted, or their manifest unusable).
    skipped: complete shards left as they are.
    removed: relative paths removed first (previous output with `overwrite`, stray temporaries).
    retry: {shard: entry indices} of complete shards whose manifest records failed videos, which this run
      converts again (`retry_failed`); the shard's other records are kept (`retry_shard`).
    failed_earlier: failed videos recorded in the skipped shards (earlier runs' failures this run does not
      retry: `retry_failed=False`).
  """
  todo: List[int]
  skipped: int
  removed: List[str]
  retry: Dict[int, List[int]] = dataclasses.field(default_factory=dict)
  failed_earlier: int = 0


def _with_failed_refreshed(old: Dict, new: Dict, failed_ids) -> Dict:
  """`old` key with the size and modification time of the videos in `failed_ids` taken from `new` (same id,
  path and label): a failed video's file may change between runs (a broken copy replaced) without making
  the rerun another conversion, since nothing of it is in the output."""
  new_rows = {v[0]: v for v in new.get('videos') or []}
  videos = [list(new_rows[v[0]]) if v[0] in failed_ids and v[0] in new_rows and list(v[:3]) == new_rows[v[0]][:3]
            else v for v in old.get('videos') or []]
  return dict(old, videos=videos)


def prepare_output(entries: Sequence[VideoEntry], output_dir: str, subset: str, num_shards: int,
                   options: 'ConversionOptions', labels: Optional[Sequence[str]] = None,
                   overwrite: bool = False, retry_failed: bool = True) -> OutputPlan:
  """Checks `output_dir` against this run before any video is read; returns the shards to write.

  Resumes when the subset's recorded key equals this run's: complete shards are skipped, except that with
  `retry_failed` the videos a complete shard's manifest records as failed are converted again (only those);
  their files may have changed since (size, modification time: e.g. a broken copy replaced by a good one)
  without counting as another conversion.  Otherwise refuses, or with `overwrite` removes the subset's
  previous shards and manifests first and converts everything.  Stray temporaries of killed writers are
  always removed.  Writes the subset's state (its key) when there was none, with `overwrite`, or when a
  failed video's file changed.

  Args:
    entries: the subset's videos, in order.
    output_dir: the output folder (created if missing).
    subset: the subset name.
    num_shards: number of shards.
    options: the conversion options.
    labels: the dataset's class list, or None; every other subset in `output_dir` must record the same.
    overwrite: replace the subset's previous output instead of refusing a conflicting rerun.
    retry_failed: convert again the videos that earlier runs recorded as failed in complete shards; False
      keeps them as they are (counted in `OutputPlan.failed_earlier`), and a failed video whose file changed
      is then refused like any other change.

  Returns:
    An `OutputPlan`: shards to write, number left as they are, relative paths removed, shards and videos to
    retry, earlier failures not retried.

  Raises:
    DatasetError: a subset name that cannot name shards, or two entries that share a video id.
    OutputConflictError: (unless `overwrite`) the subset was converted with another key, by the first
      layout, or its shards are not recorded; (always) another subset there uses another class list.
  """
  check_subset_name(subset)
  check_unique_ids(entries)  # before anything is read or written
  key = conversion_key(entries, options, num_shards, labels)
  if labels is not None:
    others = {s: l for s, l in _recorded_labels(output_dir).items() if s != subset and l != list(labels)}
    if others:
      other = sorted(others)[0]
      raise OutputConflictError(
          f'{output_dir} holds subset {other!r} converted with another class list '
          f'({_labels_change(others[other], list(labels))}): one dataset has one class list; convert with the '
          f'recorded one (prepare_data reads it from {os.path.join(output_dir, MANIFEST)} when --label_map is '
          'not given) or into a new --output_dir')
  files = _subset_files(output_dir, subset)
  state = _read_json(os.path.join(output_dir, subset_state_name(subset))) if files['state'] else None
  expected = {shard_name(subset, k, num_shards) for k in range(num_shards)}
  earlier = {}  # complete shard -> its manifest records (None: not readable)
  if state is not None and not overwrite:
    for k in range(num_shards):
      if shard_complete(output_dir, subset, k, num_shards):
        try:
          earlier[k] = _read_json(os.path.join(output_dir, shard_manifest_name(subset, k, num_shards)))
        except ValueError:
          earlier[k] = None
  failed_ids = {r.get('id') for records in earlier.values() if isinstance(records, list) for r in records
                if isinstance(r, dict) and r.get('status') != 'ok'}
  recorded_key = state.get('key', {}) if state is not None else {}
  refreshed = _with_failed_refreshed(recorded_key, key, failed_ids) if failed_ids else recorded_key
  changes = describe_key_change(refreshed if retry_failed else recorded_key, key) if state is not None else []
  problem = None
  if files['old_sidecars']:
    problem = (f'holds subset {subset!r} written by an older prepare_data (its per-shard .manifest.json '
               f'files, e.g. {files["old_sidecars"][0]}, sit beside the shards where shard globs match them)')
  elif state is None and files['shards']:
    problem = (f'holds {len(files["shards"])} {subset} shard(s) that no manifest records ({files["shards"][0]}'
               f'{", ..." if len(files["shards"]) > 1 else ""})')
  elif changes:
    problem = f'holds subset {subset!r} converted from other videos or settings: {"; ".join(changes)}'
    if not retry_failed and refreshed is not recorded_key and not describe_key_change(refreshed, key):
      problem += (' (only videos that failed in an earlier run changed: a rerun without --noretry_failed '
                  'converts just them again)')
  elif set(files['shards']) - expected:
    extra = sorted(set(files['shards']) - expected)
    problem = f'holds {subset} shard(s) this run would not write ({_some(extra)})'
  _makedirs(output_dir)
  removed = []
  if overwrite:
    removed = [f for kind in ('shards', 'old_sidecars', 'shard_manifests', 'state', 'strays') for f in files[kind]]
  elif problem:
    raise OutputConflictError(f'{output_dir} {problem}. Rerun with --overwrite to convert subset {subset!r} '
                              'again (its previous shards are removed first), or choose another --output_dir')
  else:
    removed = files['strays']  # what killed writers left
  for rel in removed:
    _remove(os.path.join(output_dir, rel))
  if removed:
    logging.info('removed %d file(s) of the previous %s output from %s', len(removed), subset, output_dir)
  state_path = os.path.join(output_dir, subset_state_name(subset))
  if overwrite or state is None:
    atomic_write_json(state_path, dict(format_version=FORMAT_VERSION, subset=subset, key=key, run={}),
                      sort_keys=True)
  elif retry_failed and refreshed != recorded_key:  # failed videos' files changed: the key they are retried with
    atomic_write_json(state_path, dict(state, key=key), sort_keys=True)
  ranges = shard_ranges(len(entries), num_shards)
  plan = OutputPlan([], 0, removed)
  for k in range(num_shards):
    if not shard_complete(output_dir, subset, k, num_shards):
      plan.todo.append(k)
      continue
    records = earlier.get(k)
    ids = [entries[i].video_id for i in range(*ranges[k])]
    if not isinstance(records, list) or [r.get('id') if isinstance(r, dict) else None for r in records] != ids:
      logging.warning('%s does not record the videos of shard %d (%s): converting the shard again',
                      shard_manifest_name(subset, k, num_shards), k, 'unreadable' if records is None else
                      'other videos')
      plan.todo.append(k)
      continue
    failed = [i for i, r in zip(range(*ranges[k]), records) if r.get('status') != 'ok']
    if failed and retry_failed:
      plan.retry[k] = failed
    else:
      plan.skipped += 1
      plan.failed_earlier += len(failed)
  return plan


def write_manifest(output_dir: str, subset: str, num_shards: int, extra: Optional[Dict] = None) -> Dict:
  """Records the run's summary fields in the subset's state, then rebuilds manifest.json (`merge_manifest`).

  Args:
    output_dir: the output folder.
    subset: the subset name.
    num_shards: the number of shards this run wrote; it must be the one the subset's state records
      (`prepare_output` wrote it), else the summary would count another run's shards under this run's fields.
    extra: the run's summary fields (options, seconds, skipped_shards, ...); replaces those recorded before.

  Returns:
    This subset's summary from the rebuilt manifest.json.

  Raises:
    OutputConflictError: the subset has no state file (`prepare_output` was not run), or its state records
      another shard count (another run into the same folder and subset replaced it meanwhile).
  """
  state_path = os.path.join(output_dir, subset_state_name(subset))
  state = _read_json(state_path)
  if state is None:
    raise OutputConflictError(f'{state_path} is missing: run prepare_output first')
  recorded = (state.get('key') or {}).get('num_shards')
  if recorded != num_shards:
    raise OutputConflictError(
        f'{state_path} records subset {subset!r} in {recorded} shard(s), but this run wrote {num_shards}: another '
        f'run into {output_dir} (e.g. with --overwrite and another --num_shards) replaced it meanwhile; run one '
        f'conversion of a subset at a time, then rerun this one (with --overwrite to keep {num_shards} shards)')
  state['run'] = dict(extra or {})
  atomic_write_json(state_path, state, sort_keys=True)
  return merge_manifest(output_dir)['subsets'][subset]['summary']


def merge_manifest(output_dir: str) -> Dict:
  """Writes `output_dir`/manifest.json: {'format_version', 'labels', 'subsets': {subset: {'summary', 'key',
  'videos'}}}, and returns it.

  'labels' is the class list of the first subset by name that records one.  A subset's summary counts its
  shard manifests (videos, ok, failed, frames, flow_frames; 'complete' when every shard is written) and
  carries its run's fields (options, seconds, ...).  Subsets that only a first-layout manifest.json
  describes are kept as they were, marked `'layout': 'first'`.
  """
  subsets = {}
  labels = None
  for subset, state in sorted(_subset_states(output_dir).items()):
    key = state.get('key', {})
    n = key.get('num_shards', 0)
    videos, written = [], 0
    for k in range(n):
      records = _read_json(os.path.join(output_dir, shard_manifest_name(subset, k, n)))
      if records is not None:
        videos.extend(records)
        written += 1
    failed = [v for v in videos if v['status'] != 'ok']
    summary = dict(subset=subset, num_shards=n, videos=len(videos), ok=len(videos) - len(failed),
                   failed=len(failed), frames=int(sum(v['frames'] for v in videos)),
                   flow_frames=int(sum(v['flow_frames'] for v in videos)), complete=written == n)
    summary.update(state.get('run') or {})
    subsets[subset] = dict(summary=summary, key=_compact_key(key), videos=videos)
    if labels is None:
      labels = key.get('labels')
  for subset, legacy in _legacy_subsets(output_dir).items():
    if subset not in subsets:
      subsets[subset] = legacy
      labels = labels or legacy['summary'].get('labels')
  manifest = dict(format_version=FORMAT_VERSION, labels=labels, subsets=subsets)
  atomic_write_json(os.path.join(output_dir, MANIFEST), manifest, sort_keys=True)
  return manifest


def plan_summary(plan: OutputPlan, entries: Sequence[VideoEntry], output_dir: str, subset: str,
                 num_shards: int) -> Dict:
  """The summary fields of a finished run's plan: shards left as they were, files removed, and the earlier
  failures retried (and how many of them converted now) or not retried.

  Args:
    plan: the run's `OutputPlan` (`prepare_output`).
    entries: the subset's videos, in order (the plan's entry indices).
    output_dir: the output folder, with the run's shard manifests written.
    subset: the subset name.
    num_shards: number of shards.

  Returns:
    {'skipped_shards', 'removed_files', 'retried_shards', 'retried_videos', 'recovered_videos',
    'earlier_failures_not_retried'}.
  """
  recovered = 0
  for k, indices in plan.retry.items():
    records = _read_json(os.path.join(output_dir, shard_manifest_name(subset, k, num_shards))) or []
    retried = {entries[i].video_id for i in indices}
    recovered += sum(r['id'] in retried and r['status'] == 'ok' for r in records)
  return dict(skipped_shards=plan.skipped, removed_files=len(plan.removed), retried_shards=len(plan.retry),
              retried_videos=sum(len(v) for v in plan.retry.values()), recovered_videos=recovered,
              earlier_failures_not_retried=plan.failed_earlier)


def run_conversion(entries: Sequence[VideoEntry], output_dir: str, subset: str, num_shards: int = 1,
                   options: ConversionOptions = ConversionOptions(), workers: int = 1,
                   labels: Optional[Sequence[str]] = None, progress: bool = True, overwrite: bool = False,
                   extra: Optional[Dict] = None, retry_failed: bool = True) -> Dict:
  """Converts `entries` into `num_shards` shards with a pool of `workers` processes (resumable).

  A video that fails to convert is recorded as failed and the run goes on; a crashed worker process is
  isolated and its video recorded as failed.  A rerun converts the shards not written yet and, with
  `retry_failed`, the videos earlier runs recorded as failed (only those: `retry_shard`).

  Args:
    entries: the subset's videos, split in order into `num_shards` contiguous chunks.
    output_dir: the output folder (local path or tf.io.gfile URL).
    subset: the subset name (letters, digits, '_').
    num_shards: number of shards, >= 1.
    options: decoding, flow and encoding options.
    workers: number of processes, >= 1 (1: in this process).
    labels: the dataset's class list (recorded; other subsets in `output_dir` must use the same).
    progress: show a tqdm progress bar of the videos.
    overwrite: replace the subset's previous output instead of refusing a rerun with another key
      (`prepare_output`).
    extra: fields added to the summary (e.g. what the dataset reader skipped).
    retry_failed: convert again the videos that earlier runs recorded as failed (`prepare_output`); False
      leaves them failed and counts them in the summary ('earlier_failures_not_retried').

  Returns:
    The summary dict (videos, ok, failed, frames, flow_frames, skipped_shards, removed_files, retried_shards,
    retried_videos, recovered_videos, earlier_failures_not_retried, seconds, options, ...), also in
    manifest.json under subsets/<subset>/summary.

  Raises:
    ValueError: `num_shards` or `workers` < 1.
    DatasetError, OutputConflictError: as in `prepare_output`.
  """
  if num_shards < 1 or workers < 1:
    raise ValueError(f'num_shards and workers must be >= 1. Received: {num_shards}, {workers}')
  t0 = time.time()
  plan = prepare_output(entries, output_dir, subset, num_shards, options, labels, overwrite, retry_failed)
  ranges = shard_ranges(len(entries), num_shards)
  if plan.skipped:
    logging.info('%d of %d shards already complete, skipped.', plan.skipped, num_shards)
  work = sorted([(k, list(range(*ranges[k]))) for k in plan.todo] + list(plan.retry.items()))
  jobs = [(entries[i], options) for _, indices in work for i in indices]
  results = _pool_results(jobs, workers) if workers > 1 and jobs else map(_convert_star, jobs)
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=len(jobs), desc=f'{subset} videos', unit='video')
  failed = 0
  try:
    for k, indices in work:
      batch = []
      for _ in indices:
        batch.append(next(results))
        failed += batch[-1][1]['status'] != 'ok'
        if bar is not None:
          bar.update(1)
          bar.set_postfix(failed=failed)
      (retry_shard if k in plan.retry else write_shard)(output_dir, subset, k, num_shards, batch)
  finally:
    if bar is not None:
      bar.close()
    if hasattr(results, 'close'):
      results.close()
  run = dict(plan_summary(plan, entries, output_dir, subset, num_shards), seconds=round(time.time() - t0, 2),
             options=_options_dict(options), flow_engine=flow_lib.flow_engine(options.flow, options.flow_params))
  if labels is not None:
    run['labels'] = list(labels)
  run.update(extra or {})
  return write_manifest(output_dir, subset, num_shards, run)


def read_manifest(output_dir: str) -> Dict:
  """manifest.json of `output_dir`, in this layout (a first-layout one is shown as its one subset)."""
  manifest = _read_json(os.path.join(output_dir, MANIFEST))
  if manifest is None:
    raise FileNotFoundError(f'no {MANIFEST} in {output_dir}: it is not a prepare_data output folder')
  if 'format_version' not in manifest:
    legacy = _legacy_subsets(output_dir)
    manifest = dict(format_version=1, labels=manifest.get('summary', {}).get('labels'), subsets=legacy)
  return manifest


@dataclasses.dataclass
class RecordedClassList:
  """The class list the manifest.json files beside a records glob's shards record (`records_class_list`).

  Attributes:
    labels: the class names in index order, or None when no manifest there records a class list.
    manifests: the manifest.json files that record `labels`.
    unrecorded: folders of matched records whose manifest.json is missing or records no class list (their
      labels cannot be checked).
  """
  labels: Optional[List[str]]
  manifests: List[str]
  unrecorded: List[str]


def _manifest_labels(path: str) -> Optional[List[str]]:
  """The class list a prepare_data manifest.json records ('labels', or the first layout's 'summary.labels'),
  None when the file is missing or records none.  A file that is not JSON is a DatasetError naming it."""
  try:
    manifest = _read_json(path)
  except ValueError as e:
    raise DatasetError(f'{path} is not a readable manifest.json ({e}): rewrite it with prepare_data (--overwrite) '
                       'or remove it') from None
  if not isinstance(manifest, dict):
    return None
  labels = manifest.get('labels') or (manifest.get('summary') or {}).get('labels')
  return [str(n) for n in labels] if isinstance(labels, list) and labels else None


def records_class_list(file_pattern: Union[str, Sequence[str]]) -> RecordedClassList:
  """The class list recorded beside the shards a records glob reads, every folder of it checked.

  Each folder that holds a file `file_pattern` matches is looked at (its `manifest.json`), so a wildcard in
  the folder part (`tfr/*/test-*.tfrecord`) is expanded instead of naming one folder `tfr/*` that does not
  exist; a pattern whose folder part has no wildcard names that folder (whether files match yet or not).

  Args:
    file_pattern: a glob of shards (local or tf.io.gfile URL), or a list of globs / files.

  Returns:
    A `RecordedClassList`: the one list, the manifests that record it, the folders without one.

  Raises:
    DatasetError: two folders record different class lists (names both manifests and the first difference:
      their label indices mean different classes), or a manifest.json that is not JSON.
  """
  patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(file_pattern)
  folders = set()
  for pattern in map(os.fspath, patterns):
    folder = os.path.dirname(pattern)
    if glob.has_magic(folder):
      matched = _gfile().glob(pattern) if _remote(pattern) else glob.glob(pattern)
      folders.update(os.path.dirname(f) for f in matched)
    else:
      folders.add(folder)
  labels, manifests, unrecorded = None, [], []
  for folder in sorted(folders):
    path = os.path.join(folder, MANIFEST)
    found = _manifest_labels(path)
    if found is None:
      unrecorded.append(folder)
    elif labels is None or found == labels:
      labels = found
      manifests.append(path)
    else:
      raise DatasetError(
          f'the records of {file_pattern!r} were converted with different class lists: {manifests[0]} and {path} '
          f'({_labels_change(labels, found)}), so one label index names different classes: read them '
          'separately, or convert them into one dataset with one --label_map')
  return RecordedClassList(labels, manifests, unrecorded)


_SHARD_FILE = re.compile(r'^(\w+)' + _SHARD_SUFFIX)  # any subset's shard (`check_subset_name`: \w only)


@dataclasses.dataclass
class RecordedLabels:
  """What the per-shard manifests say about the labels of the videos a records glob reads (`records_labels`).

  Attributes:
    videos: converted videos the matched shards hold, as their manifests list them.
    unlabelled: ids of those without a label (label index -1: a Kinetics test video, a CSV row without a
      label), in shard order.
    unlabelled_manifests: the shard manifests that list them.
    manifests: the shard manifests read.
    unrecorded: matched files without a shard manifest (not named like a shard, or none written beside it;
      their labels are not checked here).
    damaged: '<manifest> (<reason>)' for each shard manifest that exists but is unreadable, not JSON, or not a
      list of video records with integer labels (its shard's labels cannot be checked).
  """
  videos: int
  unlabelled: List[str]
  unlabelled_manifests: List[str]
  manifests: List[str]
  unrecorded: List[str]
  damaged: List[str]


def records_labels(file_pattern: Union[str, Sequence[str]]) -> RecordedLabels:
  """Counts the unlabelled videos (label index -1) in the shards a records glob matches, before reading them.

  Reads the manifest prepare_data writes for each shard (`manifests/shard-<subset>-0000k-of-0000N.json`,
  `shard_manifest_name`; one small JSON file per shard, read in turn); only its converted ('ok') videos are in
  the shard.  Files that are not named like shards, and shards without a manifest, are listed in
  `unrecorded`; manifests that exist but cannot be used, in `damaged`.  A glob that matches nothing gives
  zeros.  Globs are expanded by `tf.io.gfile`, as the records reader does.

  Args:
    file_pattern: a glob of shards (local or tf.io.gfile URL), or a list of globs / files.

  Returns:
    A `RecordedLabels`: the videos counted, the unlabelled ones and the manifests that list them, the shards
    without a manifest, the damaged manifests.
  """
  from tensorflow import errors as tf_errors  # pylint: disable=g-import-not-at-top
  patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(file_pattern)
  files = sorted({f for p in map(os.fspath, patterns) for f in _gfile().glob(p)})
  videos, unlabelled, unlabelled_manifests, manifests, unrecorded, damaged = 0, [], [], [], [], []
  for path in files:
    match = _SHARD_FILE.match(os.path.basename(path))
    if not match:
      unrecorded.append(path)
      continue
    name = shard_manifest_name(match.group(1), int(match.group(2)), int(match.group(3)))
    manifest = os.path.join(os.path.dirname(path), name)
    try:
      records = _read_json(manifest)
    except (ValueError, OSError, tf_errors.OpError) as e:  # not JSON, unreadable, a remote file system's error
      damaged.append(f'{manifest} ({"not JSON" if isinstance(e, ValueError) else "unreadable"})')
      continue
    if records is None:
      unrecorded.append(path)
      continue
    ok = [r for r in records if isinstance(r, dict) and r.get('status') == 'ok'] if isinstance(records, list) else None
    if ok is None or any(type(r.get('label')) is not int for r in ok):  # pylint: disable=unidiomatic-typecheck
      damaged.append(f'{manifest} (not a list of video records with integer labels)')
      continue
    manifests.append(manifest)
    videos += len(ok)
    missing = [str(r.get('id')) for r in ok if r['label'] < 0]
    if missing:
      unlabelled += missing
      unlabelled_manifests.append(manifest)
  return RecordedLabels(videos, unlabelled, unlabelled_manifests, manifests, unrecorded, damaged)


def failure_lines(output_dir: str, subset: Optional[str] = None, limit: int = 20) -> List[str]:
  """Console lines 'FAILED id (path): reason' for the failed videos recorded in manifest.json.

  Args:
    output_dir: a prepare_data output folder.
    subset: the subset to list; None lists every subset.
    limit: at most this many lines, then one '... and N more failures' line.

  Raises:
    FileNotFoundError: `output_dir` has no manifest.json.
  """
  subsets = read_manifest(output_dir)['subsets']
  failed = [v for s, entry in sorted(subsets.items()) if subset is None or s == subset
            for v in entry.get('videos', []) if v['status'] != 'ok']
  lines = [f'FAILED {v["id"]} ({v["path"]}): {v["error"]}' for v in failed[:limit]]
  if len(failed) > limit:
    lines.append(f'... and {len(failed) - limit} more failures, see manifest.json')
  return lines


def summary_line(summary: Dict) -> str:
  """One console line for a subset's summary (`run_conversion`): videos converted and failed (how many of
  the failures are earlier runs' that this run did not retry), frames, flow fields, shards (already
  complete, with earlier failures retried and how many of those converted now, old files removed) and
  seconds.

  Args:
    summary: the subset's summary (`run_conversion`, `beam_pipeline.run_beam`, or manifest.json's).

  Raises:
    KeyError: `summary` lacks 'subset', 'ok', 'videos', 'failed', 'frames', 'flow_frames' or 'num_shards'.
  """
  removed = summary.get('removed_files', 0)
  kept = summary.get('earlier_failures_not_retried', 0)
  retried_shards, retried = summary.get('retried_shards', 0), summary.get('retried_videos', 0)
  not_retried = (f' ({kept} in an earlier run, not retried: rerun without --noretry_failed once the cause is '
                 'fixed)' if kept else '')
  retry = (f', {retried_shards} with earlier failures: {retried} video(s) retried, '
           f'{summary.get("recovered_videos", 0)} converted now' if retried else '')
  return (f'{summary["subset"]}: {summary["ok"]}/{summary["videos"]} videos converted, {summary["failed"]} '
          f'failed{not_retried}, {summary["frames"]} frames, {summary["flow_frames"]} flow fields, '
          f'{summary["num_shards"]} shards ({summary.get("skipped_shards", 0)} already complete{retry}'
          f'{f", {removed} old file(s) removed" if removed else ""}), {summary.get("seconds", 0)} s')
