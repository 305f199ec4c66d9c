"""Test-time model inputs of a video file, streamed one time step at a time (bounded memory; Sec. 2.5).

    probe_video -> iter_frames (25 fps, smaller side 256) -> [TV-L1 between consecutive frames, quantized
    exactly as the training records, on the crop's window (`flow_window`)] -> center crop
    (preprocessing.center_crop), uint8

One step is {'rgb': uint8 [c, c, 3]} and, with flow, {'flow': uint8 [c, c, 2]}: step i holds frame i and
flow field i (frame i -> i + 1), so a video of N frames gives N steps without flow and N - 1 with it (the
last frame has no field; both streams then cover the same frames, as the records' whole-video test clips).
Scale a stack of steps with `preprocessing.test_frames` / `to_model_range` ([-1, 1]).  Classification and
feature extraction read videos through this one function.
"""

from typing import Callable, Dict, Iterator, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from data_pipelines import constants
from data_pipelines.flow.backends import centred_padding
from data_pipelines.video import VideoDecodeError, VideoProbe, frame_size, iter_frames, probe_video, resized_shape

FLOW_BATCH = 8  # flow fields per backend call (a GPU batch of the TensorFlow TV-L1); one frame carried over


class FlowWindow(NamedTuple):
  """Where test-time flow is computed (`flow_window`); all in pixels of the resized frame.

  Attributes:
    y0, y1, x0, x1: the rows [y0, y1) and columns [x0, x1) of the frame the flow is computed on.
    pad: (top, bottom, left, right) rows / columns edge-replicated around that region.
    crop_y, crop_x: the center crop's offset in the padded window.
  """
  y0: int
  y1: int
  x0: int
  x1: int
  pad: Tuple[int, int, int, int]
  crop_y: int
  crop_x: int

  @property
  def shape(self) -> Tuple[int, int]:
    """(height, width) of the padded window: the frame size the flow backend sees."""
    return (self.y1 - self.y0 + self.pad[0] + self.pad[1], self.x1 - self.x0 + self.pad[2] + self.pad[3])

  def frames(self, frames: np.ndarray) -> np.ndarray:
    """[n, H, W, ...] whole `frames` (RGB [n, H, W, 3] or gray [n, H, W]) -> [n, *shape, ...]: the region,
    edge-padded (a copy only when padded)."""
    region = frames[:, self.y0:self.y1, self.x0:self.x1]
    if any(self.pad):
      top, bottom, left, right = self.pad
      region = np.pad(region, ((0, 0), (top, bottom), (left, right)) + ((0, 0),) * (frames.ndim - 3), mode='edge')
    return region

  def crop(self, fields: np.ndarray, crop_size: int) -> np.ndarray:
    """`fields` [n, *shape, C] (flow of the window) -> [n, crop_size, crop_size, C] under the frame's center crop."""
    return fields[:, self.crop_y:self.crop_y + crop_size, self.crop_x:self.crop_x + crop_size]


def flow_window(height: int, width: int, crop_size: int = constants.CROP_SIZE, margin: int = constants.FLOW_MARGIN,
                multiple: int = constants.FLOW_WINDOW_MULTIPLE) -> FlowWindow:
  """The region test-time flow is computed on: the center crop plus `margin` pixels each side (issue 15).

  TV-L1 couples every pixel to its neighbours, so the flow under the crop depends a little on what surrounds
  it; `margin` pixels each side keep the mean change inside the crop at <= 0.05 px on the shared clips
  (docs/flow.md: 0.042 px with ours, 0.046 px with OpenCV, on the 256x454 clip; 0.028 / 0.033 px where the
  window is the edge-padded whole frame).  The region is clipped to the frame and edge-padded (centred) to a
  multiple of `multiple`, so frames of many widths share one window shape (one TV-L1 compilation for
  `tvl1_tf`): at a 256 short side every frame 330 or more pixels wide gives 256 x 352.

  Args:
    height, width: the resized frame's size in pixels, each >= crop_size.
    crop_size: the test-time center crop (224), at `preprocessing.center_offsets`.
    margin: pixels each side of the crop; negative: the whole frame, unpadded (the training records' flow when
      they were converted unpadded: OpenCV's 'tvl1', or `flow_pad_multiple=1`).
    multiple: pad each side of the window up to a multiple of this (1: no padding).

  Returns:
    A `FlowWindow`.

  Raises:
    ValueError: frames smaller than the crop, or `multiple` < 1.
  """
  if height < crop_size or width < crop_size:
    raise ValueError(f'frames of {height}x{width} are smaller than the {crop_size}x{crop_size} crop: decode with '
                     f'a larger short side (paper: 256) or pass a smaller crop size')
  if multiple < 1:
    raise ValueError(f'multiple must be >= 1. Received: multiple={multiple}')
  y, x = (height - crop_size) // 2, (width - crop_size) // 2  # preprocessing.center_offsets
  if margin < 0:
    return FlowWindow(0, height, 0, width, (0, 0, 0, 0), y, x)
  y0, y1 = max(0, y - margin), min(height, y + crop_size + margin)
  x0, x1 = max(0, x - margin), min(width, x + crop_size + margin)
  pad = centred_padding(y1 - y0, x1 - x0, multiple)
  return FlowWindow(y0, y1, x0, x1, pad, y - y0 + pad[0], x - x0 + pad[2])


def window_flow(frames: np.ndarray, flow_fn: Callable[[np.ndarray], np.ndarray], crop_size: int = constants.CROP_SIZE,
                margin: int = constants.FLOW_MARGIN) -> np.ndarray:
  """Test-time flow under the center crop, computed on `flow_window`'s region.

  Args:
    frames: uint8 [n, H, W, 3] consecutive resized RGB frames, n >= 2.
    flow_fn: RGB uint8 [n, h, w, 3] -> quantized flow uint8 [n - 1, h, w, 2] (`flow.compute_flow` with a backend).
    crop_size: the center crop (224).
    margin: see `flow_window` (negative: the whole frame, exactly the records' flow where they were converted
      unpadded, then cropped).

  Returns:
    uint8 [n - 1, crop_size, crop_size, 2].
  """
  window = flow_window(frames.shape[1], frames.shape[2], crop_size, margin)
  return window.crop(flow_fn(window.frames(frames)), crop_size)


def prepare_window_flow(video_paths: Sequence[str], backend: str, params=(),
                        crop_size: int = constants.CROP_SIZE,
                        resize_short_side: Optional[int] = constants.RESIZE_SHORT_SIDE,
                        margin: int = constants.FLOW_MARGIN) -> Optional[Tuple[int, int]]:
  """Starts getting a flow backend ready, in the background, for the first readable video of `video_paths`
  (issue 15): call it before loading the networks, so that the TV-L1 compilation (10-20 s on 2 CPU cores;
  2-4 s from XLA's cache) overlaps their loading.

  The size is that of the window `window_flow` will compute that video's flow on (`flow_window` of the frame
  size its container states, resized to `resize_short_side`); the backend traces now and compiles in a thread
  (`data_pipelines.flow.prepare_flow_backend`; its first call of that size waits for it).  Nothing is decoded;
  files that cannot be opened are passed over (the caller reports them when it reads them).  Preparing even
  when later videos have other window shapes keeps the order in which the process traces the same from run to
  run, which XLA's cache needs.

  Args:
    video_paths: the videos, in the order they will be read.
    backend: a flow backend name (`data_pipelines.flow.get_flow_backend`); OpenCV's has nothing to prepare.
    params: the backend's TV-L1 parameters, a dict or (name, value) pairs.
    crop_size, resize_short_side, margin: as `video_steps` will be given them.

  Returns:
    The (height, width) being prepared, or None (a backend without compilation, or no readable video).

  Raises:
    ValueError: bad backend parameters (as the backend's first call would).
  """
  from data_pipelines.flow import prepare_flow_backend  # pylint: disable=g-import-not-at-top
  for path in video_paths:
    try:
      height, width = resized_shape(*frame_size(path), resize_short_side)
      shape = flow_window(height, width, crop_size, margin).shape
    except (VideoDecodeError, ValueError):  # unreadable, or smaller than the crop: reported when it is read
      continue
    return shape if prepare_flow_backend(backend, *shape, **dict(params)) else None
  return None


def num_steps(num_frames: int, streams: Sequence[str]) -> int:
  """Steps of a video of `num_frames` frames: N, or N - 1 when `streams` includes 'flow'."""
  return num_frames - 1 if 'flow' in streams else num_frames


def video_steps(path: str, streams: Sequence[str], crop_size: int = constants.CROP_SIZE,
                resize_short_side: Optional[int] = constants.RESIZE_SHORT_SIDE, fps: float = constants.FPS,
                max_frames: Optional[int] = None, probe: Optional[VideoProbe] = None,
                flow_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                needed: Optional[Callable[[int], bool]] = None,
                flow_margin: int = constants.FLOW_MARGIN) -> Iterator[Optional[Dict[str, np.ndarray]]]:
  """Yields the center-cropped uint8 inputs of every step of `path` (module docstring).

  Args:
    path: the video file.
    streams: ('rgb',), ('flow',) or ('rgb', 'flow').
    crop_size, resize_short_side, fps, max_frames: the test protocol (224, 256, 25) and a prefix.
    probe: `probe_video(path, fps, max_frames)` when already run.
    flow_fn: RGB uint8 [n, H, W, 3] -> quantized flow uint8 [n - 1, H, W, 2] (`flow.compute_flow` with a
      backend); required with a flow stream.
    needed: step index -> whether it is used; an unneeded step yields None and costs no flow.
    flow_margin: flow on the center crop plus this many pixels each side (`flow_window`); negative: on the
      whole frame, as the training records.

  Raises:
    data_pipelines.video.VideoDecodeError: as `iter_frames`.
    ValueError: frames smaller than the crop; a flow stream without `flow_fn`.
  """
  from data_pipelines import preprocessing as pp  # pylint: disable=g-import-not-at-top  (loads TensorFlow)
  probe = probe or probe_video(path, fps, max_frames, min_frames=2 if 'flow' in streams else 1)
  frames = iter_frames(path, fps, resize_short_side, max_frames, probe=probe)
  if 'flow' not in streams:
    for i, frame in enumerate(frames):
      yield {'rgb': pp.center_crop(frame, crop_size)} if needed is None or needed(i) else None
    return
  if flow_fn is None:
    raise ValueError('a flow stream needs flow_fn (data_pipelines.flow.compute_flow with a backend)')
  pending, first = [], 0  # frames first, first + 1, ... not yet turned into steps

  def steps(frames_: Sequence[np.ndarray], first_: int):
    """Steps first_ .. first_ + len - 2 from consecutive frames (flow only where needed)."""
    count = len(frames_) - 1
    use = [needed is None or needed(first_ + i) for i in range(count)]
    flow = {}
    i = 0
    while i < count:  # flow of each run of needed steps in one call
      if not use[i]:
        i += 1
        continue
      j = i
      while j < count and use[j]:
        j += 1
      for k, field in enumerate(window_flow(np.stack(frames_[i:j + 1]), flow_fn, crop_size, flow_margin)):
        flow[i + k] = field
      i = j
    for i in range(count):
      if not use[i]:
        yield None
        continue
      step = {'flow': flow[i]}
      if 'rgb' in streams:
        step['rgb'] = pp.center_crop(frames_[i], crop_size)
      yield step

  for frame in frames:
    pending.append(frame)
    if len(pending) == FLOW_BATCH + 1:
      yield from steps(pending, first)
      first += len(pending) - 1
      pending = pending[-1:]
  if len(pending) > 1:
    yield from steps(pending, first)
