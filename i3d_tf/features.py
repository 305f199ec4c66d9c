"""I3D feature extraction: one (num_windows, 1024) array per video and stream, with window timestamps.

The common use of I3D today: Mixed_5c features after the head's average pool (the `features` signature of
`i3d_tf.export`), computed over windows of `stack_size` frames every `step_size` frames.  Per video, streamed
(`data_pipelines.streaming.video_steps`: memory holds one batch of windows, not the video):

  decode (25 fps, smaller side 256; `data_pipelines.video.iter_frames`) -> center crop 224 -> [-1, 1]
  flow: TV-L1 on the resized frames (`data_pipelines.flow.compute_flow`, truncated to [-20, 20], 8-bit
  quantized exactly as the training records) -> center crop -> q / 127.5 - 1; computed only for the frames
  some window uses
  windows: starts 0, step, 2 step, ... while start + stack_size <= L (one window of all L frames when the
  video is shorter); L = number of flow fields (frames - 1) when flow is extracted, so RGB and flow
  windows cover the same frames.  Window w spans [start / fps, (start + length) / fps) seconds.

`extract_features` decodes each video and computes its flow in a thread, one window ahead of the networks,
and the next video while the last windows of the one before are in the networks (`_ReadAhead`; with the native
TV-L1 engine the first two videos while TensorFlow and the networks load, `prefetch_videos`), so the two cores
stay busy; the outputs are those of `extract_video` alone, bitwise (issue 15).  (Once windows of two lengths
have gone through a network in one process, e.g. a short video's, TensorFlow runs a shape-generic graph
(`reduce_retracing`) whose features can differ from a fresh process's in the last bits, about 1e-7.)

Outputs per video `<id>` (`id` = the path relative to the input root, extension kept, sub-folders kept as
sub-folders of the output: unique by construction, so `clip.avi` and `clip.mp4`, or `a/b.mp4` and
`a__b.mp4`, never share a file):
  `<id>_rgb.npy`, `<id>_flow.npy`  float32 (num_windows, 1024)
  `<id>_timestamps.npy`            float64 (num_windows, 2) window start / end in seconds
  `<id>.json`                      metadata, written last: its presence means the video is done.
Every file is written atomically (temporary name + rename).

Reruns (docs/reruns.md): a video is done when its `<id>.json` was written by the same settings: the format
version, every extraction option that changes the numbers, each stream's weights (file, size, time) and
the video file (size, time).  A rerun that finds outputs made with other settings refuses before any work,
naming what differs, unless `overwrite=True` (`--overwrite`), which recomputes those videos and removes
their stream files that the new run does not write.
"""

import collections
import dataclasses
import json
import os
import queue
import sys
import threading
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_pipelines import constants
from i3d_tf.evaluation import write_json
from data_pipelines.io_utils import save_npy

if TYPE_CHECKING:  # annotations only: importing Keras here would load it with the module
  import keras

STREAMS = ('rgb', 'flow')
FEATURES_FORMAT = 2  # 2: ids keep the extension and sub-folders (format 1: 'a__b' ids); part of the run key
RANDOM_WEIGHTS = 'random (seed 0)'  # a stream without a checkpoint: checkpoints.restore.RANDOM_WEIGHTS_SEED's network
NOT_IN_KEY = ('batch_size',)  # options that do not change the features' values


@dataclasses.dataclass
class ExtractionOptions:
  """How windows are cut and preprocessed (Sec. 2.5 test preprocessing).

  Attributes:
    stack_size, step_size: frames per window and between window starts (at `fps`).
    crop_size: center crop in pixels (224); resize_short_side: the smaller side after resizing (256).
    fps: frame rate after resampling (25).  max_frames: decode at most this many frames per video.
    batch_size: windows per forward pass (speed and memory only; not in the run key).
    flow_backend, flow_params: the TV-L1 backend and its parameters (`data_pipelines.flow`).
    flow_margin: flow on the center crop plus this many pixels each side, edge-padded to a multiple of 32
      (`data_pipelines.streaming.flow_window`; <= 0.05 px from whole-frame flow inside the crop on the shared
      clips); negative: on the whole frame, as the training records when they were converted unpadded
      (OpenCV's 'tvl1', or prepare_data --flow_pad_multiple=1).
  """
  stack_size: int = 64
  step_size: int = 64
  crop_size: int = constants.CROP_SIZE
  resize_short_side: int = constants.RESIZE_SHORT_SIDE
  fps: float = constants.FPS
  max_frames: Optional[int] = None  # decode at most this many frames per video (tests, previews)
  batch_size: int = 1  # windows per forward pass
  flow_backend: str = 'tvl1'
  flow_params: Tuple[Tuple[str, object], ...] = ()  # TV-L1 parameters, e.g. (('gamma', 0.3),)
  flow_margin: int = constants.FLOW_MARGIN  # pixels around the crop; < 0: whole-frame flow

  def validate(self):
    """Raises ValueError for a window or batch below 1, or a crop larger than the resized frames."""
    if self.stack_size < 1 or self.step_size < 1:
      raise ValueError(f'stack_size and step_size must be >= 1. Received: {self}')
    if self.crop_size > self.resize_short_side:
      raise ValueError(f'crop_size {self.crop_size} exceeds resize_short_side {self.resize_short_side}')
    if self.batch_size < 1:
      raise ValueError(f'batch_size must be >= 1. Received: batch_size={self.batch_size}')


def video_id(path: str, root: str) -> str:
  """The video's path relative to `root`, extension kept, '/'-separated: unique for distinct files."""
  rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root)) if root else os.path.basename(path)
  return rel.replace(os.sep, '/')


def _format1_id(vid: str) -> str:
  """The id format 1 gave the same video (extension dropped, '/' -> '__'), to find its outputs."""
  return os.path.splitext(vid)[0].replace('/', '__')


def weights_identity(source: Optional[str]) -> str:
  """What a stream's features depend on besides the video: 'kinetics400', 'random (seed 0)' (the same random
  network in every run, `checkpoints.restore.RANDOM_WEIGHTS_SEED`; keys of the unseeded versions said 'random'
  and are stale), or the checkpoint file's
  absolute path, size and modification time (a model_dir: its latest checkpoint's).

  Args:
    source: the stream's checkpoint argument ('kinetics400', a model_dir, a prefix, a .weights.h5, or None).
  """
  if source in (None, ''):
    return RANDOM_WEIGHTS
  if source == 'kinetics400':
    return source
  from i3d_tf.checkpoints.restore import resolve_checkpoint  # pylint: disable=g-import-not-at-top
  resolved = resolve_checkpoint(source)
  files = [resolved] if os.path.isfile(resolved) else [resolved + '.index']
  stats = [os.stat(f) for f in files if os.path.exists(f)]
  return f'{os.path.abspath(resolved)} ({sum(s.st_size for s in stats)} bytes, mtime {max(s.st_mtime_ns for s in stats)})'


def run_key(options: ExtractionOptions, weights: Dict[str, str], precision: str = 'float32') -> Dict:
  """Everything but the video that decides the features: format, options, each stream's weights, precision.

  Args:
    options: the extraction options (`NOT_IN_KEY` ones left out: they do not change the values).
    weights: {stream: `weights_identity(...)`}, one entry per stream written; without a 'flow' entry the
      flow options (`flow_*`) are left out of the key.
    precision: the models' compute precision, 'float32' or 'bfloat16' (`i3d_tf.precision`; bfloat16
      features differ from float32 ones by about 1e-2 relative).

  Returns:
    A JSON-able dict, stored in each video's `<id>.json` and compared on reruns.
  """
  from data_pipelines.flow import without_engine  # pylint: disable=g-import-not-at-top
  opts = {k: v for k, v in dataclasses.asdict(options).items() if k not in NOT_IN_KEY}
  # Not the TV-L1 engine: both compute the same algorithm (docs/flow.md); `<id>.json` records it as flow_engine.
  opts['flow_params'] = [list(p) for p in without_engine(opts['flow_params'])]
  key = {'format': FEATURES_FORMAT, 'options': opts, 'weights': dict(weights), 'precision': precision}
  return key if not weights or 'flow' in weights else _without_flow_options(key)  # no flow stream, no flow options


def video_key(path: str) -> Dict:
  """The identity of the video file at path in the run key: {'size': bytes, 'mtime_ns': modification time}."""
  stat = os.stat(path)
  return {'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns}


def _differences(old: Dict, new: Dict, prefix: str = '') -> List[str]:
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      out += _differences(a, b, f'{prefix}{k}.')
    elif a != b:
      out.append(f'{prefix}{k} {a!r} -> {b!r}')
  return out


def window_starts(length: int, stack_size: int, step_size: int) -> List[Tuple[int, int]]:
  """(start, length) of each window of stack_size frames every step_size frames over `length` frames.

  Starts 0, step_size, 2 step_size, ... while start + stack_size <= length; one window of all `length`
  frames when the video is shorter than stack_size; [] for length < 1.
  """
  if length < 1:
    return []
  if length < stack_size:
    return [(0, length)]
  return [(s, stack_size) for s in range(0, length - stack_size + 1, step_size)]


def compute_flow(frames: np.ndarray, backend: str = 'tvl1', params=()) -> np.ndarray:
  """Quantized TV-L1 flow uint8 [N - 1, H, W, 2] (the data pipeline's, identical to training records converted
  unpadded: OpenCV's 'tvl1', or prepare_data --flow_pad_multiple=1).

  Args:
    frames: uint8 [N, H, W, 3] RGB frames (resized, not cropped).
    backend: a `data_pipelines.flow.FLOW_BACKENDS` name.
    params: TV-L1 parameters as (name, value) pairs (`data_pipelines.flow.TVL1Params`).
  """
  from data_pipelines import flow as flow_lib  # pylint: disable=g-import-not-at-top
  return flow_lib.compute_flow(frames, backend=flow_lib.get_flow_backend(backend, **dict(params)))


def stream_inputs(frames: np.ndarray, streams: Sequence[str], options: ExtractionOptions,
                  flow_fn: Optional[Callable] = None) -> Dict[str, np.ndarray]:
  """Model inputs of decoded frames held in memory: {'rgb': [L, c, c, 3], 'flow': [L, c, c, 2]} in [-1, 1].

  The same test preprocessing as the streamed extraction (`data_pipelines.preprocessing.test_frames`).

  Args:
    frames: uint8 [N, H, W, 3] decoded frames (resized: smaller side `options.resize_short_side`).
    streams: 'rgb' and/or 'flow'.
    options: the crop size and flow backend.
    flow_fn: uint8 frames -> quantized flow [N - 1, h, w, 2] (default `compute_flow` with the options'), called
      on the frames' `options.flow_margin` window (`data_pipelines.streaming.window_flow`). With flow, both
      streams get the L = N - 1 frames that have a field.

  Raises:
    ValueError: frames that are not uint8 [N, H, W, 3] (e.g. floats in [0, 1]), or smaller than the crop.
  """
  from data_pipelines.preprocessing import check_frames, test_frames, to_model_range  # pylint: disable=g-import-not-at-top
  check_frames(np.asarray(frames) if not hasattr(frames, 'dtype') else frames, 3)
  out = {}
  if 'flow' in streams:
    from data_pipelines.streaming import window_flow  # pylint: disable=g-import-not-at-top
    flow_fn = flow_fn or (lambda f: compute_flow(f, options.flow_backend, options.flow_params))
    flow_q = window_flow(np.asarray(frames), flow_fn, options.crop_size, options.flow_margin)
    out['flow'] = to_model_range(flow_q)
    frames = frames[:len(flow_q)]  # RGB over the same frames as the flow fields.
  if 'rgb' in streams:
    out['rgb'] = test_frames(frames, options.crop_size)
  return out


class FeatureExtractor:
  """Holds one per-time feature model per stream (`i3d_tf.export.feature_model`).

  Args:
    models: {'rgb': I3D, 'flow': I3D} (either or both), built in the precision the features are wanted in
      (`load_extractor`); `precision` reads it back ('float32' or 'bfloat16').

  Raises:
    ValueError: no model, or a stream other than 'rgb' / 'flow'.
  """

  def __init__(self, models: Dict[str, 'keras.Model']):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from i3d_tf.export import feature_model  # pylint: disable=g-import-not-at-top
    from i3d_tf.precision import model_precision  # pylint: disable=g-import-not-at-top
    unknown = set(models) - set(STREAMS)
    if unknown or not models:
      raise ValueError(f'streams must be a non-empty subset of {STREAMS}. Received: {sorted(models)}')
    self.streams = tuple(s for s in STREAMS if s in models)
    self.precision = model_precision(models[self.streams[0]])
    self._fns = {}
    for stream, model in models.items():
      fm = feature_model(model, name=f'{stream}_features')

      @tf.function(reduce_retracing=True)
      def fn(x, fm=fm):
        return tf.reduce_mean(tf.cast(fm(x, training=False), tf.float32), axis=1)

      self._fns[stream] = fn

  def window_features(self, stream: str, video: np.ndarray, windows: Sequence[Tuple[int, int]],
                      batch_size: int = 1) -> np.ndarray:
    """float32 (len(windows), 1024) of one stream for `video` [L, c, c, C] in [-1, 1].

    Args:
      stream: 'rgb' or 'flow'.
      video: the stream's model input.
      windows: (start, length) pairs (`window_starts`).
      batch_size: consecutive windows of equal length per forward pass.
    """
    feats = []
    i = 0
    while i < len(windows):
      group = [windows[i]]
      while len(group) < batch_size and i + len(group) < len(windows) and windows[i + len(group)][1] == group[0][1]:
        group.append(windows[i + len(group)])
      feats.append(self.batch_features(stream, np.stack([video[s:s + n] for s, n in group])))
      i += len(group)
    return np.concatenate(feats, 0).astype(np.float32) if feats else np.zeros((0, 1024), np.float32)

  def batch_features(self, stream: str, batch: np.ndarray) -> np.ndarray:
    """float32 (B, 1024) of one stream ('rgb' or 'flow') for equal-length windows `batch` [B, n, c, c, C] in [-1, 1]."""
    return self._fns[stream](batch).numpy().astype(np.float32)


def load_extractor(checkpoints: Dict[str, Optional[str]], num_classes: Optional[int] = None,
                   allow_random_weights: bool = False, precision: str = 'float32') -> FeatureExtractor:
  """A `FeatureExtractor` of the I3D streams restored from `checkpoints`.

  Args:
    checkpoints: {'rgb' / 'flow': a training model_dir, a checkpoint prefix, a `.weights.h5` (e.g. the
      official weights converted by experiments/convert_checkpoint.py), 'kinetics400' (RGB: the trained
      weights, `i3d_tf.checkpoints.pretrained`), or None (random weights, with `allow_random_weights`)}.
    num_classes: the checkpoints' logits size (default: read from them; 400 for random weights).  The
      features (Mixed_5c, 1024 channels) do not depend on it, but the checkpoint must load.
    allow_random_weights: build a stream without a checkpoint (demos, tests: its features are noise).
    precision: 'float32', 'bfloat16' or 'auto' (`i3d_tf.precision`); part of the outputs' run key.

  Returns:
    The extractor (streams in `STREAMS` order).

  Raises:
    ValueError: a stream other than rgb / flow, no checkpoint without `allow_random_weights`, or a
      checkpoint that cannot be loaded (the message names the stream).
    FileNotFoundError: a checkpoint path that does not exist.
    i3d_tf.checkpoints.pretrained.WeightsUnavailableError: 'kinetics400' neither cached nor fetchable.
  """
  from i3d_tf.checkpoints import restore  # pylint: disable=g-import-not-at-top
  from i3d_tf.precision import precision_scope  # pylint: disable=g-import-not-at-top
  unknown = set(checkpoints) - set(STREAMS)
  if unknown or not checkpoints:
    raise ValueError(f'streams must be a non-empty subset of {STREAMS}. Received: {sorted(checkpoints)}')
  models = {}
  with precision_scope(precision):
    for stream, source in checkpoints.items():
      classes = 400 if num_classes is None and not source else num_classes  # random: the official shape
      try:
        models[stream] = restore.load_model(f'i3d_{stream}', classes, source, allow_random_weights)
      except (FileNotFoundError, ValueError) as e:  # the stream named, one line (Keras lists weight values)
        kind = FileNotFoundError if isinstance(e, FileNotFoundError) else ValueError
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise kind(f'cannot load the {stream} checkpoint {source!r}: {reason}') from e
  return FeatureExtractor(models)


def prepare_flow(video_paths: Sequence[str], root: str, output_dir: str, options: ExtractionOptions,
                 overwrite: bool = False) -> Optional[Tuple[int, int]]:
  """Starts getting the flow backend ready, in the background, for the first readable video of `video_paths`
  without outputs (`data_pipelines.streaming.prepare_window_flow`), so that the TV-L1 compilation overlaps
  loading the networks: call it before `load_extractor` (issue 15).

  Nothing is prepared for a backend without compilation (OpenCV) or, without `overwrite`, a folder where every
  video has outputs.  A wrong guess costs one background compilation, never a result.

  Args:
    video_paths: the videos `extract_features` will be given (after `max_videos`).
    root: the folder their ids are relative to (`video_id`).
    output_dir: the output folder.
    options: the extraction options (flow backend and parameters, crop, margin, resizing).
    overwrite: `extract_features`' (videos with outputs made with other settings are recomputed): the
      first readable video is prepared for, outputs or not.

  Returns:
    The (height, width) being prepared, or None.

  Raises:
    ValueError: flow parameters the backend refuses.
  """
  from data_pipelines.streaming import prepare_window_flow  # pylint: disable=g-import-not-at-top
  return prepare_window_flow(_with_work(video_paths, root, output_dir, overwrite), options.flow_backend,
                             options.flow_params, options.crop_size, options.resize_short_side, options.flow_margin)


def _with_work(video_paths: Sequence[str], root: str, output_dir: str, overwrite: bool):
  """The videos `extract_features` will compute, as far as their outputs tell (lazily: a large folder is checked
  only up to the first one a caller takes): all with `overwrite`, else those without `<id>.json`."""
  return (path for path in video_paths
          if overwrite or not os.path.exists(output_paths(output_dir, video_id(path, root), ())['meta']))


def output_paths(output_dir: str, vid: str, streams: Sequence[str]) -> Dict[str, str]:
  """{stream: '<id>_<stream>.npy' for each of streams, 'timestamps': '<id>_timestamps.npy', 'meta':
  '<id>.json'} under output_dir, where <id> is vid (`video_id`)."""
  paths = {s: os.path.join(output_dir, f'{vid}_{s}.npy') for s in streams}
  paths['timestamps'] = os.path.join(output_dir, f'{vid}_timestamps.npy')
  paths['meta'] = os.path.join(output_dir, f'{vid}.json')
  return paths


def _without_flow_options(key: Dict) -> Dict:
  options = key.get('options')
  if not isinstance(options, dict):
    return key
  return dict(key, options={k: v for k, v in options.items() if not k.startswith('flow_')})


def video_state(output_dir: str, vid: str, streams: Sequence[str], key: Dict, path: str) -> Tuple[str, List[str]]:
  """('missing' | 'done' | 'stale', differences) of one video's outputs against the current settings.

  Args:
    output_dir: the output folder.
    vid: the video's id (`video_id`).
    streams: the streams this run writes.
    key: this run's `run_key(...)`.
    path: the video file (its size and time are part of the key).

  Returns:
    'done' (same key, every file there), 'stale' (a different key, a missing stream, or format-1 names;
    with the differences as 'name old -> new' strings) or 'missing'.
  """
  paths = output_paths(output_dir, vid, streams)
  try:
    with open(paths['meta'], encoding='utf-8') as f:
      meta = json.load(f)
  except (OSError, ValueError):
    if os.path.exists(output_paths(output_dir, _format1_id(vid), ())['meta']):
      return 'stale', [f'format 1 -> {FEATURES_FORMAT} (outputs were named {_format1_id(vid)}_*; now {vid}_*)']
    return 'missing', []
  old = dict(meta.get('key') or {'format': 1})
  have = set(meta.get('streams', []))
  if old.get('format') == FEATURES_FORMAT:
    old.setdefault('precision', 'float32')  # format 2 before --precision existed: always float32
    if isinstance(old.get('options'), dict):  # before --flow_margin: flow on the whole frame
      old['options'] = dict(old['options'])
      old['options'].setdefault('flow_margin', -1)
  new = dict(key, video=video_key(path))
  if 'flow' not in have or 'flow' not in streams:  # flow options decide only the flow outputs: compared when
    old, new = _without_flow_options(old), _without_flow_options(new)  # both runs write flow
  if isinstance(old.get('weights'), dict) and set(streams) < have:  # fewer streams now: the others' weights
    old['weights'] = {s: w for s, w in old['weights'].items() if s in streams}  # decide nothing here
  differences = _differences(old, new)
  if not set(streams) <= have:
    differences.append(f'streams {sorted(have)} -> {list(streams)}')
  if differences:
    return 'stale', differences
  if not all(os.path.exists(p) for p in paths.values()):
    return 'missing', []
  return 'done', []


def _plan(path: str, streams: Sequence[str], options: ExtractionOptions):
  """(probe, number of steps, windows, used): what `extract_video` reads of a video, and which steps it needs."""
  from data_pipelines.streaming import num_steps  # pylint: disable=g-import-not-at-top
  from data_pipelines.video import probe_video  # pylint: disable=g-import-not-at-top
  probe = probe_video(path, options.fps, options.max_frames, min_frames=2)
  length = num_steps(probe.num_frames, streams)
  windows = window_starts(length, options.stack_size, options.step_size)
  used = np.zeros(length, bool)
  for s, n in windows:
    used[s:s + n] = True
  return probe, length, windows, used


def _steps(path: str, streams: Sequence[str], options: ExtractionOptions, probe, used):
  """The video's steps (`data_pipelines.streaming.video_steps`), flow only where `used`."""
  from data_pipelines.streaming import video_steps  # pylint: disable=g-import-not-at-top
  flow_fn = None
  if 'flow' in streams:
    flow_fn = lambda frames: compute_flow(frames, options.flow_backend, options.flow_params)  # noqa: E731
  return video_steps(path, streams, options.crop_size, options.resize_short_side, options.fps,
                     options.max_frames, probe=probe, flow_fn=flow_fn, needed=lambda i: bool(used[i]),
                     flow_margin=options.flow_margin)


_PREFETCH = {}  # 'videos': the `_ReadAhead` `prefetch_videos` started


def _drop_prefetch() -> None:
  """Stops and forgets the reading `prefetch_videos` started, if any."""
  ahead = _PREFETCH.pop('videos', None)
  if ahead is not None:
    ahead.close()


_READER = 'features prefetch'  # the name of every `_Prefetch` thread


def reading() -> bool:
  """Whether a video reader thread (`extract_features`' reading ahead) is still in a step: its thread must not
  meet Python's teardown inside OpenCV (`i3d_tf.cli` then ends the process with `os._exit`)."""
  return any(t.name == _READER for t in threading.enumerate())


class _Prefetch:
  """One video's plan and steps computed in a daemon thread, at most `limit` steps ahead of the reader."""

  def __init__(self, path: str, streams: Sequence[str], options: ExtractionOptions, limit: int):
    self.key = (path, tuple(streams), options)
    self._queue = queue.Queue(limit + 2)  # `limit` steps, the plan and the end
    self._stop = threading.Event()
    self.finished = threading.Event()  # the thread has put its last item (or was stopped)
    self._thread = threading.Thread(target=self._run, name=_READER, daemon=True)
    self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _run(self):
    path, streams, options = self.key
    try:
      probe, length, windows, used = _plan(path, streams, options)
      if not self._put(('plan', (probe, length, windows))):
        return
      for step in _steps(path, streams, options, probe, used):
        if not self._put(('step', step)):
          return
      self._put(('end', None))
    except BaseException as e:  # pylint: disable=broad-except  (raised again in the reader's thread)
      self._put(('error', e))
    finally:
      self.finished.set()

  def _get(self):
    kind, value = self._queue.get()
    if kind == 'error':
      raise value
    return kind, value

  def plan(self):
    """(probe, number of steps, windows); raises what reading the video raised."""
    kind, value = self._get()
    assert kind == 'plan', kind
    return value

  def steps(self):
    """The steps, in order; raises what computing them raised.  A reader that stops early stops the thread."""
    try:
      while True:
        kind, value = self._get()
        if kind == 'end':
          return
        yield value
    finally:
      self.cancel()

  def cancel(self) -> None:
    """Stops the thread after the step it is on (at most one flow chunk)."""
    self._stop.set()


class _ReadAhead:
  """Videos read (decoded, flow computed) in threads ahead of the networks, in order (issue 15).

  Each video is read by its own `_Prefetch` thread, at most `limit` steps ahead of its reader, while the main
  thread runs the networks on the windows already read: within a video the next window is read while the
  current one is in the networks.  Video k + 1 starts once video k is read to its end and the networks have
  taken video k - 1: at most three videos are held (the one in the networks, one read, one being read), each
  at most `limit` steps, so memory does not grow with the videos' lengths or number.  Before the networks are
  loaded that is the first two videos (`prefetch_videos`).

  Args:
    paths: the videos, in the order `take` will ask for them.
    streams: the steps' streams.
    options: the extraction options.
    limit: steps held per video (one window: `options.stack_size`).
  """

  def __init__(self, paths: Sequence[str], streams: Sequence[str], options: ExtractionOptions, limit: int):
    self.key = (tuple(paths), tuple(streams), options)
    self._limit = limit
    self._handed = queue.Queue()  # the `_Prefetch` of each video, in order
    self._taken = 0  # videos `take` has handed to the networks
    self._stop = threading.Event()
    self._started: List[_Prefetch] = []
    self._thread = threading.Thread(target=self._run, name='features read-ahead', daemon=True)
    self._thread.start()

  def _run(self):
    paths, streams, options = self.key
    for i, path in enumerate(paths):
      while i and not (self._started[i - 1].finished.is_set() and self._taken >= i - 1):
        if self._stop.wait(0.02):
          return
      ahead = _Prefetch(path, streams, options, self._limit)
      self._started.append(ahead)
      if self._stop.is_set():
        ahead.cancel()
        return
      self._handed.put(ahead)

  def take(self, path: str) -> _Prefetch:
    """The reader of `path`, the next video of `paths` (blocks until it is started)."""
    while True:
      try:
        ahead = self._handed.get(timeout=0.1)
        break
      except queue.Empty:
        if not self._thread.is_alive() and self._handed.empty():
          raise RuntimeError(f'the read-ahead thread ended before {path}')  # not expected: a bug
    self._taken += 1
    if ahead.key[0] != path:
      raise RuntimeError(f'read ahead {ahead.key[0]}, asked for {path}')  # not expected: a bug
    return ahead

  def close(self) -> None:
    """Stops every thread after the step it is on."""
    self._stop.set()
    for ahead in list(self._started):
      ahead.cancel()


def prefetch_videos(video_paths: Sequence[str], root: str, output_dir: str, options: ExtractionOptions,
                    streams: Sequence[str], overwrite: bool = False) -> Optional[List[str]]:
  """Starts reading the videos of `video_paths` without outputs, their flow included, in background threads, so
  that the first two are read while TensorFlow and the networks load: call it before `load_extractor` (issue
  15).  No TensorFlow is imported (on a machine without an NVIDIA device node, `flow.gpu_device_node`).

  Only for the native TV-L1 engine: nothing to compile, and fast enough that start-up is a good share of a run
  (with the XLA engine `prepare_flow` compiles in the background instead; OpenCV's TV-L1 takes about 15 s a
  video, against which start-up hardly counts).  `extract_features` goes on with these readers when its
  videos with work, streams and options are these (the usual case); otherwise they are stopped and it reads
  the videos again (e.g. outputs with a stream file missing: their `<id>.json` exists, so they are not read
  here).  At most the first two videos' first windows (`options.stack_size` steps each) wait in memory.

  Args:
    video_paths, root, output_dir, overwrite: as `prepare_flow`.
    options: the extraction options.
    streams: the streams `load_extractor` will be given.

  Returns:
    The videos being read, or None (no flow stream, another engine or backend, no video with work).

  Raises:
    ValueError: a bad TV-L1 engine (`flow.tvl1_engine`).
  """
  from data_pipelines.flow import flow_engine  # pylint: disable=g-import-not-at-top
  if 'flow' not in streams or flow_engine(options.flow_backend, options.flow_params) != 'native':
    return None
  paths = list(_with_work(video_paths, root, output_dir, overwrite))
  if not paths:
    return None
  _drop_prefetch()
  _PREFETCH['videos'] = _ReadAhead(paths, tuple(s for s in STREAMS if s in streams), options, options.stack_size)
  return paths


def extract_video(extractor: FeatureExtractor, path: str, vid: str, output_dir: str,
                  options: ExtractionOptions, key: Optional[Dict] = None) -> Dict:
  """Extracts and writes the features of one video, streamed window by window; returns its metadata.

  Args:
    extractor: the streams' models.
    path: the video file.
    vid: its id (`video_id`): the outputs' names.
    output_dir: where `output_paths` are written (atomically; `<id>.json` last).
    options: the extraction options.
    key: the run key stored in `<id>.json` (default `run_key(options, {}, extractor.precision)`).

  Raises:
    data_pipelines.video.VideoDecodeError: the file cannot be decoded into at least 2 frames.
    ValueError: frames smaller than the crop; non-finite features; a window of 1 frame in bfloat16
      (`precision.check_clip_frames`).
  """
  return _extract_video(extractor, path, vid, output_dir, options, key, None)


def _extract_video(extractor: FeatureExtractor, path: str, vid: str, output_dir: str, options: ExtractionOptions,
                   key: Optional[Dict], ahead: Optional[_Prefetch]) -> Dict:
  """`extract_video`, its frames and flow read by `ahead` (a `_ReadAhead` reader) when given, else here."""
  from data_pipelines import preprocessing as pp  # pylint: disable=g-import-not-at-top
  from i3d_tf.precision import check_clip_frames  # pylint: disable=g-import-not-at-top
  start = time.time()
  if ahead is not None:  # (the caller stops it, whatever happens here)
    (probe, length, windows), steps = ahead.plan(), ahead.steps()
  else:
    probe, length, windows, used = _plan(path, extractor.streams, options)
    steps = _steps(path, extractor.streams, options, probe, used)
  for _, n in windows:
    check_clip_frames(n, extractor.precision)
  buffer, buffer_start, read = collections.deque(), 0, 0
  feats = {s: [] for s in extractor.streams}
  batch: List[Dict[str, np.ndarray]] = []

  def flush():
    for stream in extractor.streams:
      feats[stream].append(extractor.batch_features(stream, np.stack([b[stream] for b in batch])))
    batch.clear()

  for w, (s, n) in enumerate(windows):
    while read < s + n:
      buffer.append(next(steps))
      read += 1
    while buffer_start < s:
      buffer.popleft()
      buffer_start += 1
    window = {st: pp.to_model_range(np.stack([step[st] for step in list(buffer)[:n]]))  # cropped uint8 -> [-1, 1]
              for st in extractor.streams}
    if batch and (len(batch) == options.batch_size or len(next(iter(batch[0].values()))) != n):
      flush()
    batch.append(window)
  if batch:
    flush()
  paths = output_paths(output_dir, vid, extractor.streams)
  shapes = {}
  for stream in extractor.streams:
    values = np.concatenate(feats[stream], 0) if feats[stream] else np.zeros((0, 1024), np.float32)
    if not np.all(np.isfinite(values)):
      raise ValueError(f'non-finite {stream} features')
    save_npy(paths[stream], values.astype(np.float32))
    shapes[stream] = list(values.shape)
  stamps = np.array([[s / options.fps, (s + n) / options.fps] for s, n in windows], np.float64).reshape(-1, 2)
  save_npy(paths['timestamps'], stamps)
  meta = {'video': os.path.abspath(path), 'id': vid, 'streams': list(extractor.streams), 'shapes': shapes,
          'key': dict(key or run_key(options, {}, extractor.precision), video=video_key(path)),
          'num_frames': int(probe.num_frames), 'frames_used': int(length), 'fps': options.fps,
          'windows': [[int(s), int(n)] for s, n in windows], 'timestamps_seconds': stamps.tolist(),
          'options': dataclasses.asdict(options), 'seconds': round(time.time() - start, 2)}
  if 'flow' in extractor.streams:
    from data_pipelines.flow import flow_engine  # pylint: disable=g-import-not-at-top
    meta['flow_engine'] = flow_engine(options.flow_backend, options.flow_params)
  write_json(paths['meta'], meta)  # Last: marks the video done.
  return meta


class StaleOutputsError(ValueError):
  """Outputs in output_dir were made with other settings; nothing was computed (pass overwrite=True)."""


def extract_features(video_paths: Sequence[str], root: str, output_dir: str, extractor: FeatureExtractor,
                     options: ExtractionOptions = ExtractionOptions(), max_videos: Optional[int] = None,
                     progress: bool = True, weights: Optional[Dict[str, str]] = None,
                     overwrite: bool = False) -> Dict:
  """Runs `extract_video` over many videos: skips finished ones, reports failures and goes on.

  Args:
    video_paths: the video files.
    root: the folder their ids are relative to (`video_id`).
    output_dir: the output folder (created).
    extractor: the streams' models (`load_extractor`).
    options: the extraction options.
    max_videos: process at most this many of video_paths.
    progress: a progress bar and FAILED lines on stderr.
    weights: {stream: `weights_identity(...)`}, part of the run key (module docstring).
    overwrite: recompute videos whose outputs were made with other settings (else refuse).

  The videos with work are read (decoded, flow computed) in threads ahead of the networks (module docstring),
  each at most `options.stack_size` steps ahead; the reading `prefetch_videos` started is taken up when its
  videos, streams and options are these.

  Returns a summary {'done', 'skipped', 'recomputed', 'failed': {path: error}, 'windows', 'seconds'}.

  Raises:
    ValueError: two videos whose outputs would differ only in letter case (one file on some file systems).
    StaleOutputsError: outputs made with other settings and not `overwrite`: raised before any work,
      naming the first such video and what differs.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  options.validate()
  paths = list(video_paths)[:max_videos] if max_videos else list(video_paths)
  ids = {path: video_id(path, root) for path in paths}
  folded = {}
  for path, vid in ids.items():
    other = folded.setdefault(vid.lower(), path)
    if other != path:
      raise ValueError(f'{other} and {path} would write outputs whose names differ only in letter case (one file '
                       'on macOS and Windows): rename one of them')
  key = run_key(options, weights or {s: RANDOM_WEIGHTS for s in extractor.streams}, extractor.precision)
  states = {path: video_state(output_dir, ids[path], extractor.streams, key, path) for path in paths}
  stale = [(path, diff) for path, (state, diff) in states.items() if state == 'stale']
  if stale and not overwrite:
    path, diff = stale[0]
    raise StaleOutputsError(
        f'{output_paths(output_dir, ids[path], ())["meta"]} was made with other settings ({"; ".join(diff[:3])}'
        f'{"; ..." if len(diff) > 3 else ""}){f" (and {len(stale) - 1} more videos)" if len(stale) > 1 else ""}: '
        'pass --overwrite to recompute them, or use another --output_dir')
  os.makedirs(output_dir, exist_ok=True)
  summary = {'done': 0, 'skipped': 0, 'recomputed': 0, 'failed': {}, 'windows': 0}
  start = time.time()
  # The videos with work are read (decoded, flow computed) in threads ahead of the networks; the first ones
  # may have been started while the networks loaded (`prefetch_videos`).
  work = (tuple(p for p in paths if states[p][0] != 'done'), tuple(extractor.streams), options)
  ahead = _PREFETCH.pop('videos', None)
  if ahead is None or ahead.key != work:
    if ahead is not None:
      ahead.close()
    ahead = _ReadAhead(*work, options.stack_size)
  bar = tqdm(paths, unit='video', disable=not progress, desc='features')
  try:
    for path in bar:
      vid = ids[path]
      state = states[path][0]
      if state == 'done':
        summary['skipped'] += 1
        continue
      if state == 'stale':  # overwrite: what this run will not rewrite goes first (other streams, the old meta)
        for old_id in (vid, _format1_id(vid)):
          for stale_path in output_paths(output_dir, old_id, STREAMS).values():
            if os.path.exists(stale_path):
              os.remove(stale_path)
      reader = ahead.take(path)
      try:
        meta = _extract_video(extractor, path, vid, output_dir, options, key, reader)
      except Exception as e:  # pylint: disable=broad-except  (report and go on)
        if isinstance(e, SystemError):  # the interpreter's, not the video's (e.g. Ctrl-C inside a C extension)
          raise
        summary['failed'][path] = f'{type(e).__name__}: {e}'
        tqdm.write(f'features: FAILED {path}: {type(e).__name__}: {e}', file=sys.stderr)
        continue
      finally:
        reader.cancel()
      summary['done'] += 1
      summary['recomputed'] += state == 'stale'
      summary['windows'] += len(meta['windows'])
      bar.set_postfix(windows=summary['windows'], failed=len(summary['failed']))
  finally:
    ahead.close()
  summary['seconds'] = round(time.time() - start, 1)
  return summary
