"""Test-time model inputs of a video file, streamed one time step at a time (bounded memory; Sec. 2.5).

    probe_video -> iter_frames (25 fps, smaller side 256) -> [TV-L1 between consecutive frames, quantized
    exactly as the training records] -> center crop (preprocessing.center_crop), uint8

One step is {'rgb': uint8 [c, c, 3]} and, with flow, {'flow': uint8 [c, c, 2]}: step i holds frame i and
flow field i (frame i -> i + 1), so a video of N frames gives N steps without flow and N - 1 with it (the
last frame has no field; both streams then cover the same frames, as the records' whole-video test clips).
Scale a stack of steps with `preprocessing.test_frames` / `to_model_range` ([-1, 1]).  Classification and
feature extraction read videos through this one function.
"""

from typing import Callable, Dict, Iterator, Optional, Sequence

import numpy as np

from data_pipelines import constants
from data_pipelines.video import VideoProbe, iter_frames, probe_video

FLOW_BATCH = 8  # flow fields per backend call (a GPU batch of the TensorFlow TV-L1); one frame carried over


def num_steps(num_frames: int, streams: Sequence[str]) -> int:
  """Steps of a video of `num_frames` frames: N, or N - 1 when `streams` includes 'flow'."""
  return num_frames - 1 if 'flow' in streams else num_frames


def video_steps(path: str, streams: Sequence[str], crop_size: int = constants.CROP_SIZE,
                resize_short_side: Optional[int] = constants.RESIZE_SHORT_SIDE, fps: float = constants.FPS,
                max_frames: Optional[int] = None, probe: Optional[VideoProbe] = None,
                flow_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                needed: Optional[Callable[[int], bool]] = None) -> Iterator[Optional[Dict[str, np.ndarray]]]:
  """Yields the center-cropped uint8 inputs of every step of `path` (module docstring).

  Args:
    path: the video file.
    streams: ('rgb',), ('flow',) or ('rgb', 'flow').
    crop_size, resize_short_side, fps, max_frames: the test protocol (224, 256, 25) and a prefix.
    probe: `probe_video(path, fps, max_frames)` when already run.
    flow_fn: RGB uint8 [n, H, W, 3] -> quantized flow uint8 [n - 1, H, W, 2] (`flow.compute_flow` with a
      backend); required with a flow stream.
    needed: step index -> whether it is used; an unneeded step yields None and costs no flow.

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
      for k, field in enumerate(flow_fn(np.stack(frames_[i:j + 1]))):
        flow[i + k] = field
      i = j
    for i in range(count):
      if not use[i]:
        yield None
        continue
      step = {'flow': pp.center_crop(flow[i], crop_size)}
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
