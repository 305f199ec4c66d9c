"""What action is in this video: whole-video classification in bounded memory (paper Sec. 2.5).

Test protocol (Sec. 2.5): "at test time the models are applied convolutionally over the whole video taking
224 x 224 center crops, and the predictions are averaged".  Per video:

  probe (frame count; `data_pipelines.video.probe_video`)
  -> frames streamed at 25 fps, smaller side 256 (`data_pipelines.video.iter_frames`)
  -> center crop, [-1, 1] (`data_pipelines.preprocessing.test_frames`, the one test preprocessing)
     flow streams: TV-L1 between consecutive resized frames, quantized as the training records
     (`data_pipelines.flow.compute_flow`); with flow, both streams see the N - 1 frames that have a field
  -> per-time logits [T', K] of each I3D stream (`I3D(..., temporal_average=False)`, T' = ceil(L / 8) - 1)
  -> video logits = their mean over time (the official I3D head), streams fused (`scoring.fuse_streams`,
     sum of logits as the official release), views (`flip=True` adds the left-right mirrored video, the
     improvement the paper names) averaged as softmax (`scoring.average_views`).

Bounded memory.  The per-time logits are computed in overlapping temporal windows and stitched.  A
window [a, b) gives exactly the one-pass value of every output whose receptive field (107 frames, stride
8; `i3d_tf.receptive_field`) lies inside [a, b), or reaches past it only where [a, b) ends at the video's
own ends: `a` is a multiple of 8 and b - a = N (mod 8), so TF-SAME padding places every layer's grid as in
the whole video.  Every window has the same length (one input shape).  Peak memory is one window of cropped
frames plus one forward pass, whatever the video's length (`chunk_frames` new frames per window; about 110
frames of context are recomputed per window).
The stitched per-time logits equal the one-pass ones to float32 round-off (tested at 1e-4).

Models with fixed test clips (C3D, ConvNet+LSTM: Table 1) are scored as `evaluate.py` scores them: their
test views (`get_input_spec(name).test`) sampled from the whole video, softmax averaged; only the frames
of those views are kept while streaming.
"""

import collections
import dataclasses
import os
import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from data_pipelines import constants
from i3d_tf import evaluation
from i3d_tf import precision as precision_lib
from i3d_tf import scoring
from i3d_tf.checkpoints import restore

if TYPE_CHECKING:  # annotations only: importing Keras here would load it with the module
  import keras
  from data_pipelines.video import FoundVideos

PER_TIME_LAYER = 'Logits.AvgPool'  # the head's average pool: one output per time step of the per-time logits
DEFAULT_CHUNK_FRAMES = 256


def model_streams() -> Dict[str, Tuple[str, ...]]:
  """{registered model: its input streams} that classification takes, from the registry's facts.

  The fully convolutional models (I3D: the whole video in windows) and the single-stream RGB models with
  fixed test clips (C3D, ConvNet+LSTM: the Table 1 test views).  The jointly trained two-stream baselines
  (two_stream, fused_3d) need flow at their own sampling: evaluate their TFRecords with evaluate.py.
  """
  from i3d_tf import registry  # pylint: disable=g-import-not-at-top
  out = {}
  for name in registry.list_models():
    modalities = registry.input_spec(name).modalities
    if registry.model_info(name).fully_convolutional or modalities == ('rgb',):
      out[name] = tuple(modalities)
  return out


def _streams(model_name: str) -> Tuple[str, ...]:
  """`model_streams()[model_name]`; ValueError naming the supported models for any other name."""
  supported = model_streams()
  if model_name not in supported:
    raise ValueError(f'classification supports {sorted(supported)} (two_stream and fused_3d: evaluate '
                     f'TFRecords with experiments/evaluate.py). Received: model={model_name}')
  return supported[model_name]


def _view_model(model_name: str) -> bool:
  """True for a model scored on its Table 1 test clips (not fully convolutional)."""
  from i3d_tf import registry  # pylint: disable=g-import-not-at-top
  return not registry.model_info(model_name).fully_convolutional


def decode_predictions(logits, top: int = 5, class_names: Optional[Sequence[str]] = None
                       ) -> List[List[Tuple[int, str, float]]]:
  """Top classes of each row, like `keras.applications.*.decode_predictions`.

  Unlike Keras applications' (which take probabilities), this takes the model's logits, as I3D returns them,
  and applies the softmax: pass probabilities and the order stays right but the probabilities do not.

  Args:
    logits: [B, K] or [K] class scores (logits: the softmax is applied here).
    top: how many classes per row.
    class_names: K names; default the Kinetics-400 names for K = 400 (or -600 for 600), else 'class <i>'.

  Returns:
    One list per row of (class index, class name, probability), by decreasing probability.

  Raises:
    ValueError: logits not [B, K] / [K], `top` < 1, or a class-name count other than K.
  """
  scores = np.asarray(logits, np.float64)
  if scores.ndim == 1:
    scores = scores[None]
  if scores.ndim != 2:
    raise ValueError(f'logits must be [batch, classes] or [classes]. Received: shape={scores.shape}')
  if not np.all(np.isfinite(scores)):
    raise ValueError('logits hold NaN or infinite values: the model or its input is broken')
  if top < 1:
    raise ValueError(f'top must be >= 1. Received: top={top}')
  names = default_class_names(scores.shape[1]) if class_names is None else list(class_names)
  if len(names) != scores.shape[1]:
    raise ValueError(f'{len(names)} class names for {scores.shape[1]} classes')
  probs = scoring.softmax(scores)
  out = []
  for row in probs:
    order = np.argsort(-row, kind='stable')[:top]
    out.append([(int(i), names[i], float(row[i])) for i in order])
  return out


def default_class_names(num_classes: int) -> List[str]:
  """The packaged Kinetics-400/600 names when num_classes is 400/600, else 'class 0', 'class 1', ..."""
  if num_classes in (400, 600):
    from data_pipelines.datasets import kinetics_class_names  # pylint: disable=g-import-not-at-top
    return kinetics_class_names(num_classes)
  return [f'class {i}' for i in range(num_classes)]


# ------------------------------------------------------------------------------------------- time windows


@dataclasses.dataclass(frozen=True)
class TemporalWindow:
  """Input frames [start, stop) of one forward pass, and the per-time outputs [first, end) it provides."""
  start: int
  stop: int
  first: int
  end: int


def temporal_windows(num_inputs: int, field_start: int, field_size: int, jump: int, num_outputs: int,
                     chunk_frames: Optional[int]) -> List[TemporalWindow]:
  """Windows whose stitched per-time outputs equal one pass over `num_inputs` frames (module docstring).

  Args:
    num_inputs: L, the video's input frames.
    field_start, field_size, jump: the receptive field of per-time output 0 for an input of L frames
      (`receptive_field(model, 'Logits.AvgPool', input_size=(L, h, w))`: start (<= 0), size, stride).
    num_outputs: T', the one-pass output count.
    chunk_frames: new input frames per window (rounded down to a multiple of `jump`, at least one output);
      None or a video that fits in one window: a single pass.

  Returns:
    The windows, in order; their [first, end) ranges tile [0, T').
  """
  per_window = max(1, (chunk_frames or 0) // jump)
  # Every window has one length W = L (mod 8), enough for `per_window` outputs: one input shape for every
  # forward pass (no retracing, and the allocator reuses the first pass's buffers).
  length = (per_window - 1) * jump + field_size + jump - 1
  length += (num_inputs - length) % 8
  if not chunk_frames or num_inputs <= length + jump:
    return [TemporalWindow(0, num_inputs, 0, num_outputs)]
  windows, first = [], 0
  while first < num_outputs:
    start = max(0, (field_start + jump * first) // jump * jump)  # a multiple of the stride, <= the field start
    if start + length >= num_inputs:  # the last window ends with the video: N - W is a multiple of 8 too
      start, end = num_inputs - length, num_outputs
    else:  # every output whose field ends inside the window (at least `per_window` of them)
      end = min(num_outputs, (start + length - field_start - field_size) // jump + 1)
    windows.append(TemporalWindow(start, start + length, first, end))
    first = end
  return windows


# ----------------------------------------------------------------------------------------------- results


@dataclasses.dataclass
class VideoPrediction:
  """One video's classification.

  Attributes:
    path: the video file.
    probabilities: float64 [K], the video's class probabilities (views averaged).
    view_logits: float64 [V, K]: each view's fused, time-averaged logits (view 0 unflipped).
    per_time_probabilities: float64 [T', K] (I3D models) or [V, K] (view models), views averaged.
    times: float64 [T'] (or [V]): the centre of each per-time output's receptive field, in seconds.
    num_frames: frames decoded (at `fps`); duration: the video's length in seconds; seconds: wall time.
    windows: temporal windows (forward passes per stream and view; 1 for view models).
  """
  path: str
  probabilities: np.ndarray
  view_logits: np.ndarray
  per_time_probabilities: np.ndarray
  times: np.ndarray
  num_frames: int
  duration: float
  seconds: float
  windows: int

  def top(self, k: int, class_names: Sequence[str]) -> List[Tuple[int, str, float]]:
    """The k most probable classes: [(class index, name from class_names, probability)], by decreasing
    probability (ties in index order); fewer when k > K."""
    order = np.argsort(-self.probabilities, kind='stable')[:k]
    return [(int(i), class_names[i], float(self.probabilities[i])) for i in order]


# -------------------------------------------------------------------------------------------- classifier


class VideoClassifier:
  """Classifies video files with trained streams, in bounded memory.

  Args:
    models: {'rgb': model} / {'flow': model} / both (Two-Stream I3D) of per-time I3D streams
      (`temporal_average=False`), or {'rgb': model} of a view model (a model that is not fully convolutional).
    model_name: the registry name (decides I3D windows or Table 1 test views, and the resize and crop).
    class_names: K names.
    fusion: two-stream fusion (`scoring.FUSIONS`).
    flip: add the left-right mirrored video as a second view.
    chunk_frames: new frames per forward pass (I3D); None: the whole video in one pass.
    flow_backend, flow_params: TV-L1 backend name and parameters (`data_pipelines.flow`).
    flow_margin: flow on the center crop plus this many pixels each side (`data_pipelines.streaming.flow_window`;
      default 64: <= 0.05 px from whole-frame flow inside the crop on the shared clips); negative: whole frame.
    fps, max_frames: decoding (25 fps; a prefix of the video).

  The models' compute precision is theirs (`build_classifier(precision=...)`); it is read back into
  `precision` ('float32' or 'bfloat16').
  """

  def __init__(self, models: Dict[str, 'keras.Model'], model_name: str, class_names: Sequence[str],
               fusion: str = 'logits_sum', flip: bool = False, chunk_frames: Optional[int] = DEFAULT_CHUNK_FRAMES,
               flow_backend: str = 'tvl1', flow_params: Sequence[Tuple[str, object]] = (),
               flow_margin: int = constants.FLOW_MARGIN,
               fps: float = constants.FPS, max_frames: Optional[int] = None):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from data_pipelines.input_specs import get_input_spec  # pylint: disable=g-import-not-at-top
    streams = _streams(model_name)
    if set(models) != set(streams):
      raise ValueError(f'{model_name} needs the streams {streams}. Received: {sorted(models)}')
    scoring.check_fusion(fusion)
    if chunk_frames is not None and chunk_frames < 8:
      raise ValueError(f'chunk_frames must be >= 8 (one output step) or None. Received: chunk_frames={chunk_frames}')
    if not fps or fps <= 0:
      raise ValueError(f'fps must be > 0. Received: fps={fps}')
    if max_frames is not None and max_frames < 1:
      raise ValueError(f'max_frames must be >= 1 or None (the whole video). Received: max_frames={max_frames}')
    self.model_name, self.streams = model_name, streams
    self.view_model = _view_model(model_name)
    self.models = models
    self.precision = precision_lib.model_precision(next(iter(models.values())))  # how they were built
    self.sources: Dict[str, Optional[str]] = {}  # where the weights came from (`build_classifier` fills it)
    self.class_names = list(class_names)
    self.spec = get_input_spec(model_name)
    self.fusion, self.flip, self.chunk_frames = fusion, flip, chunk_frames
    self.fps, self.max_frames = float(fps), max_frames
    self.flow_backend, self.flow_params, self.flow_margin = flow_backend, tuple(flow_params), int(flow_margin)
    num_classes = {int(m.output.shape[-1]) for m in models.values()}
    if num_classes != {len(self.class_names)}:
      raise ValueError(f'{len(self.class_names)} class names for a model of {sorted(num_classes)} classes')
    self._flow_fn = None
    self._fns = {}
    from data_pipelines.preprocessing import to_model_range  # pylint: disable=g-import-not-at-top
    for stream, model in models.items():
      # One trace per stream: uint8 [B, T, c, c, C] with B, T free, scaled to [-1, 1] inside the graph (no
      # float32 copy of the window on the host).
      signature = [tf.TensorSpec([None, None] + list(model.input.shape[2:]), tf.uint8)]

      @tf.function(input_signature=signature)
      def fn(x, model=model):
        return tf.cast(model(to_model_range(x), training=False), tf.float32)

      self._fns[stream] = fn
    self._fields = {}

  # --- inputs

  def _inputs(self, path: str, probe, needed=None) -> Iterator[Optional[Dict[str, np.ndarray]]]:
    """Center-cropped uint8 inputs, one time step at a time (`data_pipelines.streaming.video_steps`)."""
    from data_pipelines import flow as flow_lib  # pylint: disable=g-import-not-at-top
    from data_pipelines.streaming import video_steps  # pylint: disable=g-import-not-at-top
    if 'flow' in self.streams and self._flow_fn is None:
      backend = flow_lib.get_flow_backend(self.flow_backend, **dict(self.flow_params))
      self._flow_fn = lambda frames: flow_lib.compute_flow(frames, backend=backend)
    return video_steps(path, self.streams, self.spec.crop_size, self.spec.resize_short_side, self.fps,
                       self.max_frames, probe=probe, flow_fn=self._flow_fn, needed=needed, flow_margin=self.flow_margin)

  def _model_input(self, stream: str, uint8_frames: np.ndarray, flipped: bool) -> np.ndarray:
    """The uint8 frames, or their left-right mirror (flow: x negated, q -> 255 - q); scaled in the graph."""
    from data_pipelines import preprocessing as pp  # pylint: disable=g-import-not-at-top
    if not flipped:
      return uint8_frames
    return (pp.flip_flow if stream == 'flow' else pp.flip_rgb)(uint8_frames).numpy()

  # --- I3D: per-time logits in windows

  def receptive_field(self, num_inputs: int):
    """(start, size, jump, outputs) of the per-time logits for `num_inputs` frames (cached per length)."""
    from i3d_tf.receptive_field import receptive_field  # pylint: disable=g-import-not-at-top
    if num_inputs not in self._fields:
      model = self.models[self.streams[0]]
      crop = self.spec.crop_size
      field = receptive_field(model, PER_TIME_LAYER, input_size=(num_inputs, crop, crop))
      self._fields[num_inputs] = (field.start[0], field.size[0], field.jump[0], field.output_size[0])
    return self._fields[num_inputs]

  def windows(self, num_inputs: int) -> List[TemporalWindow]:
    """The temporal windows (`temporal_windows`) of a `num_inputs`-frame video, each checked to align with one
    pass on this model's own receptive-field geometry.

    Raises:
      RuntimeError: a window that would not reproduce the one-pass outputs (a model whose geometry the
        stitching rule of the module docstring does not cover).
    """
    start, size, jump, outputs = self.receptive_field(num_inputs)
    windows = temporal_windows(num_inputs, start, size, jump, outputs, self.chunk_frames)
    for w in windows:  # the stitching rule's precondition, checked on the model's own geometry
      if w.stop - w.start < num_inputs:
        w_start, _, w_jump, w_outputs = self.receptive_field(w.stop - w.start)
        inside = ((w.start == 0 or start + jump * w.first >= w.start) and
                  (w.stop == num_inputs or start + jump * (w.end - 1) + size <= w.stop))
        if (w_start != start or w_jump != jump or w.start % jump or w.end - w.start // jump > w_outputs
            or not inside):
          raise RuntimeError(f'window {w} of a {num_inputs}-frame video does not align with one pass')
    return windows

  def _per_time_logits(self, inputs: Iterator[Dict[str, np.ndarray]], num_inputs: int, views: Sequence[bool],
                       progress=None) -> Tuple[Dict[Tuple[str, bool], np.ndarray], int]:
    """{(stream, flipped): [T', K]} over the whole video, window by window, holding one window of frames."""
    windows = self.windows(num_inputs)
    jump = self.receptive_field(num_inputs)[2]
    buffer, buffer_start, read = collections.deque(), 0, 0
    parts = collections.defaultdict(list)
    for w in windows:
      while read < w.stop:
        try:
          buffer.append(next(inputs))
        except StopIteration:
          raise RuntimeError(f'the video ended after {read} of {num_inputs} frames') from None
        read += 1
      while buffer_start < w.start:
        buffer.popleft()
        buffer_start += 1
      offset = w.start // jump
      for stream in self.streams:
        frames = np.stack([step[stream] for step in buffer])
        for flipped in views:
          x = self._model_input(stream, frames, flipped)[np.newaxis]
          logits = self._fns[stream](x).numpy()[0]
          parts[(stream, flipped)].append(logits[w.first - offset:w.end - offset])
      if progress is not None:
        progress.update(w.stop - progress.n)
    return {k: np.concatenate(v, 0) for k, v in parts.items()}, len(windows)

  # --- view models (Table 1 test clips)

  def _view_logits(self, path: str, probe, num_inputs: int, views: Sequence[bool]):
    """{('rgb', flipped): [V, K]}: the spec's test views, keeping only their frames while streaming."""
    from data_pipelines import preprocessing as pp  # pylint: disable=g-import-not-at-top
    clip = self.spec.test
    positions = pp.sample_indices(pp.num_positions(num_inputs), clip.num_frames, clip.stride, training=False,
                                  num_clips=clip.num_clips).numpy()  # [V, T], before wrapping
    index = pp.rgb_indices(positions, num_inputs).numpy()
    wanted = set(index.ravel().tolist())
    inputs = self._inputs(path, probe, needed=wanted.__contains__)
    kept = {}
    for i, step in enumerate(inputs):
      if step is not None:
        kept[i] = step['rgb']
    frames = np.stack([[kept[int(i)] for i in row] for row in index])  # [V, T, c, c, 3]
    out = {}
    for flipped in views:
      x = self._model_input('rgb', frames, flipped)
      out[('rgb', flipped)] = scoring.last_step(self._fns['rgb'](x).numpy().astype(np.float64))
    centres = np.clip(positions.mean(axis=1), 0, num_inputs - 1) / self.fps  # each clip's centre, seconds
    return out, centres

  # --- one video

  def classify(self, path: str, progress: bool = False) -> VideoPrediction:
    """Classifies one video file (Sec. 2.5: whole video, center crop, time-averaged logits, views averaged).

    Args:
      path: a video file (any container FFmpeg/PyAV decodes).
      progress: a frame progress bar (stderr) for videos of several windows.

    Returns:
      A `VideoPrediction`.

    Raises:
      data_pipelines.video.VideoDecodeError: the file cannot be decoded (missing, empty, not a video,
        truncated, too short).
      ValueError: frames smaller than the crop; 1 frame in bfloat16 (`precision.check_clip_frames`).
    """
    from data_pipelines.video import probe_video  # pylint: disable=g-import-not-at-top
    start = time.time()
    with_flow = 'flow' in self.streams
    probe = probe_video(path, self.fps, self.max_frames, min_frames=2 if with_flow else 1)
    num_inputs = probe.num_frames - 1 if with_flow else probe.num_frames
    precision_lib.check_clip_frames(num_inputs, self.precision)
    views = (False, True) if self.flip else (False,)
    if self.view_model:
      logits, times = self._view_logits(path, probe, num_inputs, views)
      windows = 1
    else:
      inputs = self._inputs(path, probe)
      bar = None
      if progress and len(self.windows(num_inputs)) > 1:  # a long video: frames as they are classified
        from tqdm import tqdm  # pylint: disable=g-import-not-at-top
        bar = tqdm(total=num_inputs, unit='frame', leave=False, desc=os.path.basename(path), file=sys.stderr)
      try:
        logits, windows = self._per_time_logits(inputs, num_inputs, views, bar)
      finally:
        if bar is not None:
          bar.close()
      field_start, size, jump, outputs = self.receptive_field(num_inputs)
      centres = field_start + jump * np.arange(outputs) + (size - 1) / 2
      times = np.clip(centres, 0, num_inputs - 1) / self.fps
    # Per view (flip): streams fused per time step (or clip), time-averaged logits fused for the video.
    fused = np.stack([scoring.fuse_streams([logits[(s, v)] for s in self.streams], self.fusion)
                      for v in views])  # [F, T', K] (view models: [F, clips, K])
    if self.view_model:  # every clip of every flip is a view (evaluate.py's rule)
      view_logits = fused.reshape(-1, fused.shape[-1])
    else:  # the official head: logits averaged over time, per stream, then fused
      view_logits = np.stack([scoring.fuse_streams([logits[(s, v)].mean(0) for s in self.streams], self.fusion)
                              for v in views])  # [F, K]
    probabilities = scoring.average_views(view_logits)
    per_time = scoring.average_views(np.moveaxis(fused, 0, 1))  # [T', F, K] -> [T', K]
    duration = probe.duration if not self.max_frames else probe.num_frames / self.fps
    return VideoPrediction(path, probabilities, view_logits, per_time, np.asarray(times, np.float64),
                           probe.num_frames, duration, time.time() - start, windows)


# -------------------------------------------------------------------------------------------- building


def prepare_flow(model_name: str, video_paths: Sequence[str], flow_backend: str = 'tvl1', flow_params=(),
                 flow_margin: int = constants.FLOW_MARGIN) -> Optional[Tuple[int, int]]:
  """Starts getting the flow backend ready, in the background, for the first readable video of `video_paths`,
  so that the TV-L1 compilation (10-20 s on 2 CPU cores; 2-4 s from XLA's cache) overlaps building the
  networks: call it before `build_classifier` (issue 15; `data_pipelines.streaming.prepare_window_flow`, at
  the model's test resize and crop).

  Args:
    model_name: a key of `model_streams()`; nothing is prepared for a model without a flow stream.
    video_paths: the videos, in the order they will be classified.
    flow_backend, flow_params, flow_margin: as `VideoClassifier` will be given them.

  Returns:
    The (height, width) being prepared, or None (no flow stream, a backend without compilation, no readable
    video).

  Raises:
    ValueError: an unknown model; bad flow parameters.
  """
  from data_pipelines.input_specs import get_input_spec  # pylint: disable=g-import-not-at-top
  from data_pipelines.streaming import prepare_window_flow  # pylint: disable=g-import-not-at-top
  if 'flow' not in _streams(model_name):
    return None
  spec = get_input_spec(model_name)
  return prepare_window_flow(video_paths, flow_backend, flow_params, spec.crop_size, spec.resize_short_side,
                             flow_margin)


def weight_sources(model_name: str, weights: Optional[str] = 'kinetics400', checkpoint: Optional[str] = None,
                   rgb_checkpoint: Optional[str] = None, flow_checkpoint: Optional[str] = None) -> Dict[str, str]:
  """Where each stream's weights come from, checked without building anything (`build_classifier` calls it; a
  binary calls it first, so that a wrong checkpoint is refused before any other work).

  Args:
    model_name: a key of `model_streams()`.
    weights, checkpoint, rgb_checkpoint, flow_checkpoint: as `build_classifier`.

  Returns:
    {stream: 'kinetics400' or the checkpoint argument} for each stream of the model.

  Raises:
    ValueError: an unknown model, checkpoint arguments that do not fit it, a stream without weights.
    FileNotFoundError: a checkpoint argument with nothing loadable behind it (`resolve_checkpoint`).
  """
  from i3d_tf.checkpoints.loading import resolve_checkpoint  # pylint: disable=g-import-not-at-top
  streams = _streams(model_name)
  two_streams = len(streams) > 1  # two_stream_i3d: each stream trained on its own, from its own checkpoint
  if two_streams:
    sources = {'rgb': rgb_checkpoint, 'flow': flow_checkpoint}
    if checkpoint:
      raise ValueError(f'{model_name} takes --rgb_checkpoint and --flow_checkpoint (each stream was trained '
                       'on its own), not --checkpoint')
  else:
    if rgb_checkpoint or flow_checkpoint:
      raise ValueError(f'{model_name} takes --checkpoint (--rgb_checkpoint/--flow_checkpoint are for two_stream_i3d)')
    # The trained weights (weights='kinetics400') are an RGB I3D: the fully convolutional RGB model.
    sources = {streams[0]: checkpoint or (weights if streams == ('rgb',) and not _view_model(model_name) else None)}
  missing = [s for s, c in sources.items() if not c]
  if missing:
    raise ValueError(f'No weights for the {"/".join(missing)} stream of {model_name}: pass '
                     + (' and '.join(f'--{m}_checkpoint' for m in missing) if two_streams else '--checkpoint')
                     + " (trained Kinetics-400 weights exist for the RGB I3D only: weights='kinetics400')")
  for source in sources.values():
    if source != 'kinetics400':
      resolve_checkpoint(source)
  return sources


def build_classifier(model_name: str = 'i3d_rgb', weights: Optional[str] = 'kinetics400',
                     checkpoint: Optional[str] = None, rgb_checkpoint: Optional[str] = None,
                     flow_checkpoint: Optional[str] = None, num_classes: Optional[int] = None,
                     class_names: Optional[Sequence[str]] = None, precision: str = 'float32',
                     **options) -> VideoClassifier:
  """A `VideoClassifier` from trained weights.

  Args:
    model_name: a key of `model_streams()`.
    weights: 'kinetics400' (the trained RGB I3D, `i3d_tf.checkpoints.pretrained`) when no checkpoint is given.
    checkpoint: a single-stream model's training model_dir, checkpoint prefix or `.weights.h5`.
    rgb_checkpoint, flow_checkpoint: the two streams of `two_stream_i3d` (the RGB one may be 'kinetics400').
    num_classes: the checkpoints' class count (default: read from the checkpoint).
    class_names: K names (default: the Kinetics-400 names with 'kinetics400' weights, else 'class <i>').
    precision: 'float32', 'bfloat16' or 'auto' (`i3d_tf.precision`: bfloat16 compute where the hardware has
      it, 1.5-2.5x faster on an AMX CPU; logits stay float32).  The binary's default is 'auto'.
    **options: `VideoClassifier` options (fusion, flip, chunk_frames, flow_backend, ...).

  Raises:
    ValueError, FileNotFoundError: inconsistent arguments, missing checkpoints.
    i3d_tf.checkpoints.pretrained.WeightsUnavailableError: 'kinetics400' neither cached nor fetchable.
  """
  sources = weight_sources(model_name, weights, checkpoint, rgb_checkpoint, flow_checkpoint)
  view_model = _view_model(model_name)
  models = {}
  with precision_lib.precision_scope(precision):
    for stream, source in sources.items():
      name = model_name if view_model else f'i3d_{stream}'
      kwargs = {} if view_model else {'temporal_average': False}
      # 'kinetics400', a model_dir, a prefix or a .weights.h5; the class count read from it unless given.
      models[stream] = restore.load_model(name, num_classes, source, **kwargs)
  classes = {int(m.output.shape[-1]) for m in models.values()}
  if len(classes) != 1:
    raise ValueError(f'The streams have different class counts: {sorted(classes)}')
  k = classes.pop()
  if class_names is not None:
    names = list(class_names)
  elif k == 400 and 'kinetics400' in sources.values():
    names = default_class_names(400)
  else:  # a checkpoint of yours: its classes are yours to name (--class_names)
    names = [f'class {i}' for i in range(k)]
  if len(names) != k:
    raise ValueError(f'{len(names)} class names for a {k}-class model: pass the matching --class_names file')
  classifier = VideoClassifier(models, model_name, names, **options)
  own = bool(checkpoint or rgb_checkpoint)
  classifier.sources = {'weights': None if own else weights, 'checkpoint': checkpoint,
                        'rgb_checkpoint': rgb_checkpoint, 'flow_checkpoint': flow_checkpoint}
  return classifier


# ------------------------------------------------------------------------------------------ many videos


def output_name(relative_path: str) -> str:
  """A file name unique to a video's relative_path (extension kept; '%' and '/' percent-encoded), so
  `a/b.avi`, `a__b.avi` and `a/b.mp4` never share an output."""
  return relative_path.replace('%', '%25').replace(os.sep, '%2F').replace('/', '%2F')


def classify_videos(classifier: VideoClassifier, paths: Sequence[str], progress: bool = True,
                    on_result: Optional[Callable[[VideoPrediction], None]] = None,
                    results: Optional[Dict] = None) -> Dict:
  """Classifies every path; a failing video is reported with its reason and the others go on.

  Args:
    classifier: the `VideoClassifier`.
    paths: video files, classified in this order.
    progress: a video progress bar and FAILED lines on stderr.
    on_result: called with each `VideoPrediction`; an exception it raises marks that video failed.
    results: a dict to fill in place (so that a caller interrupted half-way keeps what is done).

  Returns:
    {'predictions': [VideoPrediction], 'failed': {path: 'ErrorType: reason'}, 'seconds': float}.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  results = {} if results is None else results
  results.update(predictions=[], failed={}, seconds=0.0)
  predictions, failed = results['predictions'], results['failed']
  start = time.time()
  bar = tqdm(list(paths), unit='video', disable=not progress, desc='classify', file=sys.stderr)
  for path in bar:
    try:
      prediction = classifier.classify(path, progress=progress)
    except Exception as e:  # pylint: disable=broad-except  (report, count, go on)
      reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
      failed[path] = f'{type(e).__name__}: {reason}'
      tqdm.write(f'classify: FAILED {path}: {failed[path]}', file=sys.stderr)
      continue
    if on_result is not None:
      try:
        on_result(prediction)
      except Exception as e:  # pylint: disable=broad-except  (e.g. the timeline PNG could not be written)
        failed[path] = f'{type(e).__name__}: its outputs could not be written: {e}'
        tqdm.write(f'classify: FAILED {path}: {failed[path]}', file=sys.stderr)
        continue
    predictions.append(prediction)
    results['seconds'] = time.time() - start
    bar.set_postfix(failed=len(failed))
  bar.close()
  results['seconds'] = time.time() - start
  return results


@dataclasses.dataclass
class ClassifyRun:
  """What `classify_files` did: the videos found, their predictions and failures, and the output written.

  Attributes:
    found: `data_pipelines.video.FoundVideos` (paths, their common root, non-video files skipped).
    predictions: one `VideoPrediction` per classified video, in the order classified.
    failed: {path: 'ErrorType: reason'} of the videos that could not be classified (or their outputs written).
    class_names: the K class names of the model.
    top_k: classes reported per video (at most K).
    seconds: wall time of the call (model loading included when it built the classifier).
    interrupted: True when a KeyboardInterrupt stopped the run (the output then holds what was done).
    output: the results file written, or None.
  """
  found: 'FoundVideos'
  predictions: List[VideoPrediction]
  failed: Dict[str, str]
  class_names: List[str]
  top_k: int
  seconds: float
  interrupted: bool = False
  output: Optional[str] = None

  @property
  def num_frames(self) -> int:
    """Frames (25 fps) of the classified videos."""
    return sum(p.num_frames for p in self.predictions)


def classify_files(videos: Union[str, 'FoundVideos'], model_name: str = 'i3d_rgb', top_k: int = 5, output: Optional[str] = None,
                   timeline_dir: Optional[str] = None, write_every: float = 10.0, progress: bool = True,
                   classifier: Optional[VideoClassifier] = None, **classifier_args) -> ClassifyRun:
  """What `experiments/classify.py` runs: classify video files, print each result, write CSV/JSON/timelines.

  A video that cannot be classified is reported (`failed`) and the others go on.  `output` is rewritten
  atomically as results come in (at most every `write_every` seconds, at the end, and on KeyboardInterrupt,
  with what is done and `"complete": false`).

  Args:
    videos: a video file, a folder (searched recursively) or a glob (`data_pipelines.video.find_videos`), or
      what `find_videos` returned for one.
    model_name: a key of `model_streams()`.
    top_k: classes printed and written per video (clamped to the class count).
    output: a `.csv` (one line per video) or `.json` file, or None.
    timeline_dir: a folder for one PNG per video of the top classes' probabilities over time, or None.
    write_every: seconds between rewrites of `output` while the run goes on.
    progress: show progress bars and print each prediction (stderr / stdout through tqdm).
    classifier: an already built `VideoClassifier` (else built with `build_classifier`); its settings and
      `sources` are what the output's header records.
    **classifier_args: `build_classifier` arguments (weights, checkpoints, class_names, flip, precision, ...),
      without `classifier` only.

  Returns:
    A `ClassifyRun`; `interrupted` is True if KeyboardInterrupt stopped it (not re-raised).

  Raises:
    FileNotFoundError: nothing at `videos`.
    ValueError: no video at `videos`, `top_k` < 1, an `output` that is not .csv/.json, `classifier` together
      with build arguments (they would be ignored), or the model cannot
      be built from the arguments (see `build_classifier`, which may also raise FileNotFoundError and
      `WeightsUnavailableError`).
  """
  from data_pipelines.video import find_videos  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  if top_k < 1:
    raise ValueError(f'top_k must be >= 1. Received: {top_k}')
  if classifier is not None and classifier_args:
    raise ValueError(f'pass a built classifier or build arguments, not both (these would be ignored: '
                     f'{sorted(classifier_args)})')
  if output and not output.lower().endswith(('.csv', '.json')):
    raise ValueError(f'the output must end with .csv or .json. Received: {output}')
  found = find_videos(videos) if isinstance(videos, str) else videos
  if not found.paths:
    raise ValueError(f'no video in {found.root} ({len(found.skipped)} other file(s); video extensions: mp4, avi, '
                     'mkv, webm, mov, ...)')
  if found.skipped and progress:
    print(f'classify: skipped {len(found.skipped)} non-video file(s): '
          f'{", ".join(os.path.relpath(p, found.root) for p in found.skipped[:5])}'
          f'{" ..." if len(found.skipped) > 5 else ""}', file=sys.stderr)
  start = time.time()
  if classifier is None:
    classifier = build_classifier(model_name, **classifier_args)
  names = classifier.class_names
  k = min(top_k, len(names))
  run = ClassifyRun(found, [], {}, names, k, 0.0, output=output)
  header = {'model': classifier.model_name, **classifier.sources,
            'flip': classifier.flip, 'fusion': classifier.fusion, 'precision': classifier.precision,
            'max_frames': classifier.max_frames, 'top_k': k, 'num_classes': len(names),
            'videos_found': len(found.paths)}
  if 'flow' in classifier.streams:
    header.update(flow_backend=classifier.flow_backend, flow_params=[list(p) for p in classifier.flow_params],
                  flow_margin=classifier.flow_margin)
  results = {'predictions': run.predictions, 'failed': run.failed}
  last_write = [time.time()]

  def write(complete: bool):
    if output:
      rows = result_rows(results['predictions'], results['failed'], names, k)
      write_results(output, rows, k, extra=dict(header, complete=complete, num_failed=len(results['failed'])))
      last_write[0] = time.time()

  def report(prediction: VideoPrediction):
    rel = os.path.relpath(prediction.path, found.root)
    if progress:
      cut = '; --max_frames: only its first frames' if classifier.max_frames == prediction.num_frames else ''
      tqdm.write(format_prediction(prediction, names, k, name=rel, note=cut))
    if timeline_dir:
      from i3d_tf.visualize import plot_prediction_timeline  # pylint: disable=g-import-not-at-top
      top = [i for i, _, _ in prediction.top(k, names)]
      png = os.path.join(timeline_dir, output_name(rel) + '.png')
      plot_prediction_timeline(png, prediction.times, prediction.per_time_probabilities, names, top,
                               title=f'{rel}: {names[top[0]]} ({prediction.probabilities[top[0]]:.2f})',
                               duration=prediction.duration)
    if time.time() - last_write[0] > write_every:  # this video is counted once report returns: include it now
      results['predictions'].append(prediction)
      try:
        write(complete=False)
      finally:
        results['predictions'].pop()

  try:
    classify_videos(classifier, found.paths, progress=progress, on_result=report, results=results)
  except KeyboardInterrupt:
    run.interrupted = True
  run.predictions, run.failed = results['predictions'], results['failed']  # classify_videos' own lists
  write(complete=not run.interrupted)
  run.seconds = time.time() - start
  return run


def format_prediction(prediction: VideoPrediction, class_names: Sequence[str], top_k: int = 5,
                      name: Optional[str] = None, note: str = '') -> str:
  """'<video> (N frames, D s of video, S s[, note]):' then one 'rank. label  p  (class i)' line per class.

  Args:
    prediction: a `VideoPrediction`.
    class_names: K names.
    top_k: classes listed.
    name: how to name the video (default its path).
    note: appended inside the parentheses.
  """
  lines = [f'{name or prediction.path} ({prediction.num_frames} frames, {prediction.duration:.1f} s of video, '
           f'classified in {prediction.seconds:.1f} s{note}):']
  width = len(str(top_k)) + 1
  for rank, (index, label, p) in enumerate(prediction.top(top_k, class_names), 1):
    lines.append(f'  {f"{rank}.":<{width}} {label:<40s} {p:.3f}  (class {index})')
  return '\n'.join(lines)


def result_rows(predictions: Sequence[VideoPrediction], failed: Dict[str, str], class_names: Sequence[str],
                top_k: int) -> List[Dict]:
  """One dict per video (failures included, with their error), in path order.

  Args:
    predictions: the classified videos.
    failed: {path: 'ErrorType: reason'} of those that failed (rows with an empty top-k).
    class_names: K names.
    top_k: classes per row.

  Returns:
    [{'video', 'num_frames', 'duration_seconds', 'seconds', 'top_k': [{'index', 'label', 'probability'}],
    'error'}], the shape `write_results` writes; a failed video's frames, duration and seconds are None.
  """
  rows = []
  for p in predictions:
    top = p.top(top_k, class_names)
    rows.append({'video': p.path, 'num_frames': p.num_frames, 'duration_seconds': round(p.duration, 3),
                 'seconds': round(p.seconds, 3), 'top_k': [{'index': i, 'label': l, 'probability': round(pr, 6)}
                                                           for i, l, pr in top], 'error': ''})
  for path, error in failed.items():
    rows.append({'video': path, 'num_frames': None, 'duration_seconds': None, 'seconds': None, 'top_k': [],
                 'error': error})  # unknown, not 0: empty in the CSV, null in the JSON
  return sorted(rows, key=lambda r: r['video'])


def write_results(path: str, rows: Sequence[Dict], top_k: int, extra: Optional[Dict] = None) -> str:
  """Writes `rows` atomically as CSV (one line per video: top-k index/label/probability columns) or JSON.

  Args:
    path: the output file; its extension (.csv or .json) decides the format.
    rows: `result_rows(...)`.
    top_k: the CSV's top-k column groups.
    extra: JSON only: entries written beside 'videos' (the run's settings, 'complete', 'num_failed').

  Returns:
    `path`.

  Raises:
    ValueError: `path` ends with neither .csv nor .json.
  """
  import csv  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  from data_pipelines.io_utils import atomic_write  # pylint: disable=g-import-not-at-top
  if path.lower().endswith('.json'):
    evaluation.write_json(path, dict(extra or {}, videos=list(rows)))
    return path
  if not path.lower().endswith('.csv'):
    raise ValueError(f'--output must end with .csv or .json. Received: {path}')
  header = ['video', 'num_frames', 'duration_seconds', 'seconds']
  for r in range(1, top_k + 1):
    header += [f'top{r}_index', f'top{r}_label', f'top{r}_probability']
  header.append('error')
  buf = io.StringIO()
  writer = csv.writer(buf)
  writer.writerow(header)
  for row in rows:
    line = [row['video'], row['num_frames'], row['duration_seconds'], row['seconds']]
    for r in range(top_k):
      t = row['top_k'][r] if r < len(row['top_k']) else None
      line += [t['index'], t['label'], f'{t["probability"]:.6f}'] if t else ['', '', '']
    line.append(row['error'])
    writer.writerow(line)
  atomic_write(path, buf.getvalue())
  return path
