"""Helpers for the data tests and demos: where shared data lives, small generated videos and records."""

import os

import cv2
import numpy as np

# Repo checkout and shared/ side by side (CI layout); I3D_SHARED_DATA overrides.
SHARED_DATA = os.environ.get('I3D_SHARED_DATA') or os.path.normpath(
    os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data'))
VIDEOS = os.path.join(SHARED_DATA, 'videos')
SPLITS = os.path.join(SHARED_DATA, 'splits')


def write_video(path, num_frames, height=48, width=64, fps=25, fourcc='MJPG', step=2):
  """Writes a test video: a white 12 x 20 px square moving right `step` px per frame on a blurred noise
  background (not atomic); returns `path`.

  Args:
    path: the video file; its extension must suit `fourcc` (e.g. .avi for MJPG).
    num_frames: frames written.
    height, width: frame size in pixels.
    fps: the container's frame rate.
    fourcc: four-character codec code.
    step: square motion in pixels per frame.

  Raises:
    AssertionError: OpenCV cannot open a writer for `fourcc` at `path`.
  """
  rng = np.random.default_rng(0)
  background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (5, 5), 0)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
  assert writer.isOpened(), path
  for i in range(num_frames):
    img = background.copy()
    x = 4 + step * i
    cv2.rectangle(img, (x, 10), (x + 12, 30), (255, 255, 255), -1)
    writer.write(img)
  writer.release()
  return path


def write_records(path, videos):
  """Writes `videos` (EncodedVideo objects) to the TFRecord file `path`; returns the record count."""
  from data_pipelines import tfrecord_format  # pylint: disable=g-import-not-at-top
  return tfrecord_format.write_tfrecord(path, [tfrecord_format.serialize(v) for v in videos])


def crash_on_three_frames(gray_frames):
  """A flow backend for tests ('data_pipelines.testing:crash_on_three_frames'): kills its process on a
  3-frame video (a stand-in for a decoder segfault), zero flow otherwise.

  Args:
    gray_frames: uint8 [N, H, W] grayscale frames.

  Returns:
    float32 zeros [N - 1, H, W, 2] (the backend contract), unless N == 3 (then `os._exit(3)`).
  """
  if gray_frames.shape[0] == 3:
    os._exit(3)  # pylint: disable=protected-access
  return np.zeros((gray_frames.shape[0] - 1,) + gray_frames.shape[1:] + (2,), np.float32)


def frame_size_flow(gray_frames):
  """A flow backend for tests ('data_pipelines.testing:frame_size_flow'): shows the frame size it was given.

  Args:
    gray_frames: uint8 [N, H, W] grayscale frames.

  Returns:
    float32 [N - 1, H, W, 2]: u = W / 8 px and v = H / 8 px everywhere.
  """
  n, h, w = gray_frames.shape
  out = np.empty((max(n - 1, 0), h, w, 2), np.float32)
  out[..., 0], out[..., 1] = w / 8, h / 8
  return out
