"""Video decoding: any OpenCV-readable file -> RGB frames at 25 fps, smaller side 256 (paper Sec. 2.5).

The paper resamples every video to 25 fps and resizes the smaller side to 256 pixels before cropping.
Frames are resized as they are read, so memory holds resized frames only (about 100 MB for 10 s at 256p).
`decode_video` does both with OpenCV only (no TensorFlow), so it runs in worker processes cheaply.

Resampling is by timestamp: source frame i covers [ts_i, ts_{i+1}); output frame k (time k / fps) is the
source frame whose interval holds k / fps.  A video lasting D seconds gives ceil(D * fps) output frames; the
last frame lasts as long as the step before it (`output_indices`).
Timestamps come from the container (CAP_PROP_POS_MSEC) when they are finite and strictly increasing, else
from the frame index and the container frame rate.
"""

import dataclasses
import glob
import math
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from data_pipelines.constants import FPS as TARGET_FPS
from data_pipelines.constants import RESIZE_SHORT_SIDE

# A file decoding to fewer frames than this fraction of its container frame count is reported as truncated
# (container counts of some formats are estimates: mkv says 311 for 310 frames, so some slack is kept).
TRUNCATION_RATIO = 0.9


# File extensions taken as videos when a folder or a glob is searched (an explicitly named file is always tried).
VIDEO_EXTENSIONS = ('.3gp', '.avi', '.flv', '.m4v', '.mkv', '.mov', '.mp4', '.mpeg', '.mpg', '.ogv', '.webm', '.wmv')


@dataclasses.dataclass
class FoundVideos:
  """What `find_videos` found: sorted video paths, the folder ids are relative to, and skipped non-videos."""
  paths: List[str]
  root: str
  skipped: List[str]  # files that matched but are not videos by their extension (README.txt, .DS_Store)


def find_videos(videos: str, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> FoundVideos:
  """Videos named by a file, a folder (searched recursively) or a glob (`**` allowed).

  A folder search skips hidden entries (names starting with '.': .git, .DS_Store, ...); other files that
  are not videos by their extension are listed in `skipped`.

  Args:
    videos: a file (always taken, whatever its extension), a folder or a glob.
    extensions: file name endings taken as videos, case-insensitive; ('',) takes every file.

  Raises:
    FileNotFoundError: nothing exists at `videos`, or the glob matches no file.
  """
  extensions = tuple(e.lower() for e in extensions)
  if os.path.isfile(videos):
    return FoundVideos([videos], os.path.dirname(os.path.abspath(videos)), [])
  if os.path.isdir(videos):
    root = videos
    files = []
    for folder, subfolders, names in os.walk(videos):
      subfolders[:] = sorted(d for d in subfolders if not d.startswith('.'))
      files += [os.path.join(folder, f) for f in names if not f.startswith('.')]
  else:
    files = [p for p in glob.glob(videos, recursive=True) if os.path.isfile(p)]
    if not files:
      raise FileNotFoundError(f'No file matches {videos!r}: give a video file, a folder or a glob such as '
                              "'videos/**/*.mp4' (quoted, so that the shell does not expand it)")
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in files])
  paths = sorted(p for p in files if p.lower().endswith(extensions))
  skipped = sorted(p for p in files if not p.lower().endswith(extensions))
  return FoundVideos(paths, root, skipped)


class VideoDecodeError(ValueError):
  """A file that cannot be decoded into at least `min_frames` frames."""


@dataclasses.dataclass
class DecodedVideo:
  """What `decode_video` returns.

  Attributes:
    frames: uint8 [N, H, W, 3] RGB, resampled to `fps`, smaller side resized.
    fps: output frame rate (the target; the source rate when decoding with fps=None).
    source_fps: the container's frame rate (0.0 when unknown).
    source_num_frames: source frames decoded.
    duration: seconds the decoded source frames cover.
  """
  frames: np.ndarray  # uint8 [N, H, W, 3], RGB.
  fps: float  # output frame rate (the target).
  source_fps: float
  source_num_frames: int
  duration: float  # seconds.


def resized_shape(height: int, width: int, short_side: Optional[int]):
  """(new_height, new_width) in pixels for frames of `height` x `width`, with the smaller side `short_side`
  (256, Sec. 2.5) and the aspect ratio kept (rounded, >= 1); unchanged when `short_side` is None or 0."""
  if not short_side:
    return height, width
  scale = short_side / min(height, width)
  if height <= width:
    return short_side, max(1, int(round(width * scale)))
  return max(1, int(round(height * scale))), short_side


def resize_frame(frame: np.ndarray, short_side: Optional[int]) -> np.ndarray:
  """`frame` [H, W, C] resized bilinearly to smaller side `short_side` px (`resized_shape`); unchanged (the
  same array) when the size already matches or `short_side` is None or 0."""
  h, w = frame.shape[:2]
  nh, nw = resized_shape(h, w, short_side)
  if (nh, nw) == (h, w):
    return frame
  return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)


def _open(path):
  """An opened cv2.VideoCapture, or VideoDecodeError naming the file and the reason."""
  if not os.path.isfile(path):
    raise VideoDecodeError(f'missing file: {path}')
  if os.path.getsize(path) == 0:
    raise VideoDecodeError(f'empty file (0 bytes): {path}')
  cap = cv2.VideoCapture(path)
  if not cap.isOpened():
    cap.release()
    raise VideoDecodeError(f'not a readable video: {path}')
  return cap


def _check_complete(count, expected, stopped_early, path):
  if (not stopped_early and expected and math.isfinite(expected) and
      count < TRUNCATION_RATIO * expected - 2):
    raise VideoDecodeError(f'truncated or corrupt: {count} of {int(expected)} frames decoded: {path}')


def _read_all(path, resize_short_side=None, max_source_frames=None):
  """Every frame, resized and in RGB as it is read (memory: resized frames only), with timestamps."""
  cap = _open(path)
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
  _check_complete(len(frames), expected, max_source_frames is not None and len(frames) >= max_source_frames, path)
  return frames, np.asarray(stamps, np.float64), fps


def _container_fps(path):
  cap = cv2.VideoCapture(path)
  try:
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
  finally:
    cap.release()
  return fps if fps and math.isfinite(fps) and 1 <= fps <= 1000 else 0.0


def source_timestamps(stamps: np.ndarray, fps: float) -> np.ndarray:
  """Start time in seconds (first frame at 0) of every source frame: the container times `stamps` (float
  [S], seconds) if finite and strictly increasing, else i / `fps` (the container rate; 25 if unknown)."""
  n = len(stamps)
  if not (fps and math.isfinite(fps) and fps > 0):
    fps = TARGET_FPS
  if n > 1 and np.all(np.isfinite(stamps)) and np.all(np.diff(stamps) > 0):
    return stamps - stamps[0]
  return np.arange(n, dtype=np.float64) / fps


def resample_indices(timestamps: np.ndarray, duration: float, fps: float = TARGET_FPS) -> np.ndarray:
  """Source frame index (int [K]) for every output frame k at time k / fps, k / fps < `duration` (seconds):
  the last of `timestamps` (float [S], frame start times in seconds, increasing) at or before it."""
  count = int(math.ceil(duration * fps - 1e-6))
  times = np.arange(count, dtype=np.float64) / fps
  idx = np.searchsorted(timestamps, times + 1e-6, side='right') - 1
  return np.clip(idx, 0, len(timestamps) - 1)


def _max_source_frames(path, max_frames, fps):
  """Source frames the first `max_frames` output frames can use (+ margin for the container-fps guess)."""
  if not max_frames:
    return None
  src_fps = _container_fps(path)
  if src_fps and fps:
    return int(math.ceil(max_frames * src_fps / fps)) + 2
  return None


def output_indices(stamps: np.ndarray, source_fps: float, fps: Optional[float], max_frames: Optional[int] = None):
  """(source frame index of every output frame, duration in s): the resampling rule of the module docstring.

  The last source frame lasts as long as the step before it: OpenCV gives each frame's start, not the
  stream's end.  Constant frame rate: one frame period.  Variable frame rate: the local period, not a median
  over the video (20 ms frames then 100 ms frames for 1.2 s gave 28 frames instead of 30 with the median).
  The container's duration (frame count / rate) is not used: it counts frames that do not decode (the shared
  flipping_pancake.mkv says 311 frames, 310 decode).

  Args:
    stamps: float64 [S] (S >= 1) container start times in seconds of the decoded source frames.
    source_fps: the container's frame rate, used when `stamps` are not finite and strictly increasing.
    fps: output frame rate; None keeps every source frame.
    max_frames: keep the first this many output frames; None or 0 keeps all.
  """
  ts = source_timestamps(stamps, source_fps)
  step = float(ts[-1] - ts[-2]) if len(ts) > 1 else 1.0 / (source_fps or TARGET_FPS)
  duration = float(ts[-1] + step)
  idx = resample_indices(ts, duration, fps) if fps else np.arange(len(ts))
  if max_frames:
    idx = idx[:max_frames]
  return idx, duration


def decode_video(path: str, fps: Optional[float] = TARGET_FPS,
                 resize_short_side: Optional[int] = RESIZE_SHORT_SIDE,
                 max_frames: Optional[int] = None, min_frames: int = 1) -> DecodedVideo:
  """Decodes a video file into RGB uint8 frames resampled to `fps` with the smaller side resized.

  Holds the whole video in memory (about 0.26 MB per frame at 256x340); `iter_frames` streams instead.

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
  frames, stamps, src_fps = _read_all(path, resize_short_side, _max_source_frames(path, max_frames, fps))
  if not frames:
    raise VideoDecodeError(f'no decodable frame in: {path}')
  idx, duration = output_indices(stamps, src_fps, fps, max_frames)
  out = [frames[int(i)] for i in idx]
  if len(out) < min_frames:
    raise VideoDecodeError(f'{len(out)} frame(s) decoded, at least {min_frames} needed: {path}')
  return DecodedVideo(frames=np.stack(out), fps=float(fps or src_fps), source_fps=float(src_fps or 0.0),
                      source_num_frames=len(frames), duration=duration)


@dataclasses.dataclass
class VideoProbe:
  """What `probe_video` learns from a pass over the packets (no pixel is converted or kept)."""
  path: str
  indices: np.ndarray  # int64 [N]: the source frame of each output frame
  fps: float  # output frame rate
  source_fps: float
  source_num_frames: int
  duration: float  # seconds
  height: int  # source frame size
  width: int

  @property
  def num_frames(self) -> int:
    """N, the output frames."""
    return len(self.indices)


def _stated_size(cap) -> Tuple[int, int]:
  """(height, width) an opened cv2.VideoCapture's container states (0 when it states none)."""
  return int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))


def frame_size(path: str) -> Tuple[int, int]:
  """(height, width) in pixels of a video's frames as its container states them, before resizing (the size
  `probe_video` reports), read without decoding a frame.

  Args:
    path: any file OpenCV's VideoCapture reads.

  Raises:
    VideoDecodeError: a missing, empty or unreadable file, or one that states no frame size.
  """
  cap = _open(path)
  try:
    height, width = _stated_size(cap)
  finally:
    cap.release()
  if height < 1 or width < 1:
    raise VideoDecodeError(f'no frame size stated: {path}')
  return height, width


def probe_video(path: str, fps: Optional[float] = TARGET_FPS, max_frames: Optional[int] = None,
                min_frames: int = 1) -> VideoProbe:
  """Frame count and resampling of a video from its time stamps alone (`grab()`, no colour conversion).

  Costs about 0.01 s per second of 25 fps 340x256 video here.  `iter_frames` needs it to stream: the
  output frame count of the whole video is known before the first frame is used.

  Args:
    path: any file OpenCV's VideoCapture reads.
    fps: output frame rate (25); None keeps every source frame.
    max_frames: keep at most this many output frames (the first ones); None keeps all.
    min_frames: raise VideoDecodeError when fewer output frames result.

  Returns:
    A VideoProbe (source frame index of each output frame, rates, duration, source size).

  Raises:
    VideoDecodeError: missing, empty, unreadable, truncated or too short file.
  """
  cap = _open(path)
  max_source = _max_source_frames(path, max_frames, fps)
  try:
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    expected = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    height, width = _stated_size(cap)
    stamps = []
    while (max_source is None or len(stamps) < max_source) and cap.grab():
      stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
  finally:
    cap.release()
  if not stamps:
    raise VideoDecodeError(f'no decodable frame in: {path}')
  _check_complete(len(stamps), expected, max_source is not None and len(stamps) >= max_source, path)
  idx, duration = output_indices(np.asarray(stamps, np.float64), src_fps, fps, max_frames)
  if len(idx) < min_frames:
    raise VideoDecodeError(f'{len(idx)} frame(s) decoded, at least {min_frames} needed: {path}')
  return VideoProbe(path, idx.astype(np.int64), float(fps or src_fps), float(src_fps or 0.0), len(stamps),
                    duration, height, width)


def iter_frames(path: str, fps: Optional[float] = TARGET_FPS, resize_short_side: Optional[int] = RESIZE_SHORT_SIDE,
                max_frames: Optional[int] = None, min_frames: int = 1,
                probe: Optional[VideoProbe] = None) -> Iterator[np.ndarray]:
  """Streams the frames `decode_video` returns, one uint8 [H, W, 3] RGB array at a time.

  Memory does not grow with the video's length: one decoded frame is held at a time.  The frames are
  exactly `decode_video(path, fps, resize_short_side, max_frames).frames` (same resampling rule, from
  `probe_video`, run first unless `probe` is given; `min_frames` is passed to it).

  Raises:
    VideoDecodeError: as `probe_video`, or when a frame that the probe counted cannot be decoded.
  """
  probe = probe or probe_video(path, fps, max_frames, min_frames)
  cap = _open(path)
  try:
    source_index, k, n = -1, 0, probe.num_frames
    frame = None
    while k < n:
      needed = int(probe.indices[k])
      while source_index < needed:
        if not cap.grab():
          raise VideoDecodeError(f'truncated or corrupt: source frame {source_index + 1} of '
                                 f'{probe.source_num_frames} could not be read: {path}')
        source_index += 1
        frame = None
      if frame is None:
        ok, raw = cap.retrieve()
        if not ok or raw is None:
          raise VideoDecodeError(f'truncated or corrupt: source frame {source_index} could not be decoded: {path}')
        frame = cv2.cvtColor(resize_frame(raw, resize_short_side), cv2.COLOR_BGR2RGB)
      yield frame
      k += 1
  finally:
    cap.release()
