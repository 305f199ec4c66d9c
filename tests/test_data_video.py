"""Video decoding: 25 fps resampling by timestamp, short side 256, RGB order, bad inputs."""

import os

import cv2
import numpy as np
import pytest

from data_pipelines import video as video_lib
from data_pipelines.testing import VIDEOS, write_video

REAL = ['arm_wrestling_kinetics.mp4', 'v_ApplyEyeMakeup_g01_c01.avi', 'flipping_pancake.mkv']


def _container(path):
  cap = cv2.VideoCapture(path)
  fps, count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
  ok, first = cap.read()
  cap.release()
  return fps, count, first


@pytest.mark.parametrize('name', REAL)
def test_real_clip_frame_count_size_and_rgb(name):
  path = os.path.join(VIDEOS, name)
  if not os.path.exists(path):
    pytest.skip(f'shared data missing: {path}')
  fps, count, first = _container(path)
  decoded = video_lib.decode_video(path)
  n, h, w, c = decoded.frames.shape
  assert abs(n - count / fps * 25) <= 1.0, (n, count, fps)
  assert min(h, w) == 256 and c == 3 and decoded.frames.dtype == np.uint8
  assert abs(w / h - first.shape[1] / first.shape[0]) < 0.01
  expected = cv2.resize(first, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1]  # BGR -> RGB
  np.testing.assert_array_equal(decoded.frames[0], expected)
  assert decoded.fps == 25.0


def test_expected_counts_of_the_shared_clips():
  counts = {}
  for name in REAL:
    path = os.path.join(VIDEOS, name)
    if not os.path.exists(path):
      pytest.skip(f'shared data missing: {path}')
    counts[name] = len(video_lib.decode_video(path, resize_short_side=64).frames)
  # 280 frames at 28 fps = 10 s; 164 at 25 fps = 6.56 s; 310 decoded at 30 fps = 10.333 s.
  assert counts == {REAL[0]: 250, REAL[1]: 164, REAL[2]: 259}


def test_resample_indices_exact():
  ts = np.arange(10) / 30.0  # 10 frames at 30 fps = 0.3333 s -> ceil(8.33) = 9 frames at 25 fps.
  idx = video_lib.resample_indices(ts, 10 / 30.0, 25.0)
  np.testing.assert_array_equal(idx, [0, 1, 2, 3, 4, 6, 7, 8, 9])
  ts = np.arange(5) / 12.5  # 12.5 fps -> every frame twice.
  np.testing.assert_array_equal(video_lib.resample_indices(ts, 0.4, 25.0), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])


def test_source_timestamps_fallback_on_broken_container_times():
  # OpenCV's AVI reader reports the next frame's time and 0 for the last frame.
  broken = np.array([0.04, 0.08, 0.12, 0.0])
  np.testing.assert_allclose(video_lib.source_timestamps(broken, 25.0), [0, 0.04, 0.08, 0.12])
  np.testing.assert_allclose(video_lib.source_timestamps(np.array([0.5, 0.6, 0.7]), 10.0), [0, 0.1, 0.2])


def test_resized_shape():
  assert video_lib.resized_shape(240, 320, 256) == (256, 341)
  assert video_lib.resized_shape(640, 360, 256) == (455, 256)
  assert video_lib.resized_shape(240, 320, None) == (240, 320)


def test_generated_video_30fps_and_max_frames(tmp_path):
  path = write_video(str(tmp_path / 'a.avi'), 30, fps=30)
  decoded = video_lib.decode_video(path, resize_short_side=32, max_frames=7)
  assert decoded.frames.shape == (7, 32, 43, 3)
  full = video_lib.decode_video(path, resize_short_side=None)
  assert full.frames.shape == (25, 48, 64, 3)  # 1 s at 25 fps.
  assert full.source_num_frames == 30


@pytest.mark.parametrize('fourcc,ext', [('VP80', 'webm'), ('FFV1', 'mkv'), ('XVID', 'avi'), ('mp4v', 'mp4')])
def test_containers_and_codecs_decode(tmp_path, fourcc, ext):
  """webm (VP8), mkv (FFV1, lossless), avi (XVID), mp4 (MPEG-4 part 2): 50 frames at 50 fps -> 25 at 25 fps."""
  path = write_video(str(tmp_path / f'clip.{ext}'), 50, fps=50, fourcc=fourcc)
  decoded = video_lib.decode_video(path, resize_short_side=None)
  assert decoded.frames.shape == (25, 48, 64, 3) and decoded.frames.dtype == np.uint8
  assert decoded.source_num_frames == 50
  # The bright square moves right 2 px per source frame: 4 px per 25 fps frame, in RGB order (white).
  cols = [np.flatnonzero(f[20, :, 0] > 200).min() for f in decoded.frames[:5]]
  assert np.allclose(np.diff(cols), 4, atol=1), cols


@pytest.mark.parametrize('kind', ['missing', 'empty', 'text', 'truncated'])
def test_bad_inputs_raise(tmp_path, kind):
  path = str(tmp_path / 'bad.mp4')
  if kind == 'empty':
    open(path, 'wb').close()
  elif kind == 'text':
    with open(path, 'w') as f:
      f.write('this is not a video\n' * 50)
  elif kind == 'truncated':
    good = write_video(str(tmp_path / 'good.avi'), 40)
    data = open(good, 'rb').read()
    path = str(tmp_path / 'bad.avi')
    open(path, 'wb').write(data[:len(data) // 2])
  with pytest.raises(video_lib.VideoDecodeError) as e:
    video_lib.decode_video(path)
  assert 'bad.' in str(e.value)


def test_one_frame_video_needs_two_frames(tmp_path):
  path = write_video(str(tmp_path / 'one.avi'), 1)
  assert video_lib.decode_video(path, min_frames=1).frames.shape[0] == 1
  with pytest.raises(video_lib.VideoDecodeError, match='1 frame'):
    video_lib.decode_video(path, min_frames=2)


@pytest.mark.parametrize('name', REAL)
def test_max_frames_reads_a_prefix_only(name):
  path = os.path.join(VIDEOS, name)
  if not os.path.exists(path):
    pytest.skip(f'shared data missing: {path}')
  full = video_lib.decode_video(path, resize_short_side=48)
  part = video_lib.decode_video(path, resize_short_side=48, max_frames=30)
  np.testing.assert_array_equal(part.frames, full.frames[:30])
  assert part.source_num_frames <= 30 * 30 / 25 + 3 < full.source_num_frames


def _variable_rate_mp4(path, steps_ms):
  """An mp4 whose frame i lasts steps_ms[i] milliseconds (PyAV: OpenCV writes constant rates only)."""
  import fractions
  import av  # dev extra
  container = av.open(path, 'w')
  stream = container.add_stream('mpeg4', rate=50)
  stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv420p'
  stream.codec_context.time_base = stream.time_base = fractions.Fraction(1, 1000)
  t = 0
  for i, step in enumerate(steps_ms):
    frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 5 * i, np.uint8), format='rgb24')
    frame.pts, frame.time_base = t, fractions.Fraction(1, 1000)
    for packet in stream.encode(frame):
      packet.duration = step
      container.mux(packet)
    t += step
  for packet in stream.encode():
    container.mux(packet)
  container.close()
  return path


@pytest.mark.parametrize('steps_ms', [[20] * 30 + [100] * 6, [100] * 6 + [20] * 30], ids=['fast_then_slow', 'slow_then_fast'])
def test_variable_frame_rate_keeps_the_last_frame(tmp_path, steps_ms):
  """1.2 s of video in either order -> 30 frames at 25 fps; frame k shows what plays at k / 25 s."""
  path = _variable_rate_mp4(str(tmp_path / 'vfr.mp4'), steps_ms)
  decoded = video_lib.decode_video(path, resize_short_side=None)
  assert decoded.frames.shape[0] == 30 and decoded.duration == pytest.approx(1.2)
  starts = np.concatenate([[0], np.cumsum(steps_ms)[:-1]]) / 1000.0
  expected = [int(np.searchsorted(starts, k / 25 + 1e-6, side='right') - 1) for k in range(30)]
  every = video_lib.decode_video(path, fps=None, resize_short_side=None).frames  # each source frame once
  assert len(every) == 36
  np.testing.assert_array_equal(decoded.frames, every[expected])
  np.testing.assert_array_equal(np.stack(list(video_lib.iter_frames(path, resize_short_side=None))), decoded.frames)
