"""Video decoding: any OpenCV-readable file -> RGB frames at 25 fps, smaller side 256 (paper Sec. 2.5).

The paper resamples every video to 25 fps and resizes the smaller side to 256 pixels before cropping.
Frames are resized as they are read, so memory holds resized frames only (about 100 MB for 10 s at 256p).
`decode_video` does both with OpenCV only (no TensorFlow), so it runs in worker processes cheaply.

Resampling is by timestamp: source frame i covers [ts_i, ts_{i+1}); output frame k (time k / fps) is the
source frame whose interval holds k / fps.  A video lasting D seconds gives ceil(D * fps) output frames.
Timestamps come from the container (CAP_PROP_POS_MSEC) when they are finite and strictly increasing, else
from the frame index and the container frame rate.
"""

import dataclasses
import math
import os
from typing import Optional

import cv2
import numpy as np

TARGET_FPS = 25.0
RESIZE_SHORT_SIDE = 256
# A file decoding to fewer frames than this fraction of its container frame count is reported as truncated
# (container counts of some formats are estimates: mkv says 311 for 310 frames, so some slack is kept).
TRUNCATION_RATIO = 0.9


class VideoDecodeError(ValueError):
  """A file that cannot be decoded into at least `min_frames` frames."""


@dataclasses.dataclass
class DecodedVideo:
  frames: np.ndarray  # uint8 [N, H, W, 3], RGB.
  fps: float  # output frame rate (the target).
  source_fps: float
  source_num_frames: int
  duration: float  # seconds.


def resized_shape(height: int, width: int, short_side: Optional[int]):
  """(new_height, new_width) with the smaller side `short_side` and the aspect ratio kept (rounded)."""
  if not short_side:
    return height, width
  scale = short_side / min(height, width)
  if height <= width:
    return short_side, max(1, int(round(width * scale)))
  return max(1, int(round(height * scale))), short_side


def resize_frame(frame: np.ndarray, short_side: Optional[int]) -> np.ndarray:
  h, w = frame.shape[:2]
  nh, nw = resized_shape(h, w, short_side)
  if (nh, nw) == (h, w):
    return frame
  return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)


def _read_all(path, resize_short_side=None, max_source_frames=None):
  """Every frame, resized and in RGB as it is read (memory: resized frames only), with timestamps."""
  if not os.path.isfile(path):
    raise VideoDecodeError(f'missing file: {path}')
  if os.path.getsize(path) == 0:
    raise VideoDecodeError(f'empty file (0 bytes): {path}')
  cap = cv2.VideoCapture(path)
  if not cap.isOpened():
    raise VideoDecodeError(f'not a readable video: {path}')
  try:
    fps = cap.get(cv2.CAP_PROP_FPS)
    expected = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    frames, stamps = [], []
    while max_source_frames is None or len(frames) < max_source_frames:
      ok, frame = cap.read()
      if not ok or frame is None:
        break
      frames.append(cv2.cvtColor(resize_frame(frame, resize_short_side), cv2.COLOR_BGR2RGB))
      stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
  finally:
    cap.release()
  stopped_early = max_source_frames is not None and len(frames) >= max_source_frames
  if (not stopped_early and expected and math.isfinite(expected) and
      len(frames) < TRUNCATION_RATIO * expected - 2):
    raise VideoDecodeError(f'truncated or corrupt: {len(frames)} of {int(expected)} frames decoded: {path}')
  return frames, np.asarray(stamps, np.float64), fps


def _container_fps(path):
  cap = cv2.VideoCapture(path)
  try:
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
  finally:
    cap.release()
  return fps if fps and math.isfinite(fps) and 1 <= fps <= 1000 else 0.0


def source_timestamps(stamps: np.ndarray, fps: float) -> np.ndarray:
  """Start time (s, first frame at 0) of every source frame; container times if sane, else i / fps."""
  n = len(stamps)
  if not (fps and math.isfinite(fps) and fps > 0):
    fps = TARGET_FPS
  if n > 1 and np.all(np.isfinite(stamps)) and np.all(np.diff(stamps) > 0):
    return stamps - stamps[0]
  return np.arange(n, dtype=np.float64) / fps


def resample_indices(timestamps: np.ndarray, duration: float, fps: float = TARGET_FPS) -> np.ndarray:
  """Source frame index for every output frame k at time k / fps (k / fps < duration)."""
  count = int(math.ceil(duration * fps - 1e-6))
  times = np.arange(count, dtype=np.float64) / fps
  idx = np.searchsorted(timestamps, times + 1e-6, side='right') - 1
  return np.clip(idx, 0, len(timestamps) - 1)


def decode_video(path: str, fps: Optional[float] = TARGET_FPS,
                 resize_short_side: Optional[int] = RESIZE_SHORT_SIDE,
                 max_frames: Optional[int] = None, min_frames: int = 1) -> DecodedVideo:
  """Decodes a video file into RGB uint8 frames resampled to `fps` with the smaller side resized.

  Args:
    path: any file OpenCV's VideoCapture reads (mp4, avi, mkv, webm, ...).
    fps: output frame rate (25 in the paper); None keeps every source frame.
    resize_short_side: smaller side after a bilinear resize (aspect kept); None or 0 keeps the size.
    max_frames: keep at most this many output frames (the first ones).
    min_frames: raise VideoDecodeError when fewer frames come out.

  Returns:
    DecodedVideo with frames uint8 [N, H, W, 3] in RGB order.

  Raises:
    VideoDecodeError: missing, empty, unreadable or too short file.
  """
  max_source = None
  if max_frames:  # read only what the first max_frames output frames can use (+ margin for the fps guess)
    src_fps = _container_fps(path)
    if src_fps and fps:
      max_source = int(math.ceil(max_frames * src_fps / fps)) + 2
  frames, stamps, src_fps = _read_all(path, resize_short_side, max_source)
  if not frames:
    raise VideoDecodeError(f'no decodable frame in: {path}')
  ts = source_timestamps(stamps, src_fps)
  step = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0 / (src_fps or TARGET_FPS)
  duration = float(ts[-1] + step)
  if fps:
    idx = resample_indices(ts, duration, fps)
  else:
    idx = np.arange(len(frames))
  if max_frames:
    idx = idx[:max_frames]
  out = [frames[int(i)] for i in idx]
  if len(out) < min_frames:
    raise VideoDecodeError(f'{len(out)} frame(s) decoded, at least {min_frames} needed: {path}')
  return DecodedVideo(frames=np.stack(out), fps=float(fps or src_fps), source_fps=float(src_fps or 0.0),
                      source_num_frames=len(frames), duration=duration)
