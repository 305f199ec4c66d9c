"""Pure preprocessing ops: exact sampled indices, ramp-fixture crops, flips, flow stacking."""

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import input_pipeline
from data_pipelines import preprocessing as pp
from data_pipelines.input_specs import get_input_spec


def ramp(n=10, h=20, w=24):
  """pixel = (row, col, t): crops and flips compare exactly against numpy slices."""
  t, r, c = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing='ij')
  return np.stack([r, c, t], -1).astype(np.uint8)


def test_sample_indices_exact():
  seed = tf.constant([1, 2])
  np.testing.assert_array_equal(pp.sample_indices(20, 4, 1, False, 3), [[0, 1, 2, 3], [8, 9, 10, 11],
                                                                         [16, 17, 18, 19]])
  np.testing.assert_array_equal(pp.sample_indices(20, 4, 1, False, 1), [[8, 9, 10, 11]])  # center
  np.testing.assert_array_equal(pp.sample_indices(7, None, 1, False), [np.arange(7)])  # whole video
  np.testing.assert_array_equal(pp.sample_indices(30, 3, 5, False, 1), [[9, 14, 19]])  # stride 5, room 19
  # C3D-like: 250 frames, 15 clips of 16 -> starts round(v * 234 / 14).
  starts = pp.sample_indices(250, 16, 1, False, 15)[:, 0].numpy()
  np.testing.assert_array_equal(starts, np.round(np.arange(15) * 234 / 14).astype(int))
  for s in range(20):  # training: a valid start, a contiguous clip
    pos = pp.sample_indices(20, 4, 2, True, 1, tf.constant([s, 0])).numpy()
    assert pos.shape == (1, 4) and 0 <= pos[0, 0] <= 13 and list(np.diff(pos[0])) == [2, 2, 2]
  starts = {int(pp.sample_indices(20, 4, 1, True, 1, tf.constant([s, 0]))[0, 0]) for s in range(300)}
  assert starts == set(range(17))  # every valid start is drawn, no other.
  np.testing.assert_array_equal(pp.sample_indices(20, 4, 1, True, 1, seed),
                                pp.sample_indices(20, 4, 1, True, 1, seed))


def test_looping_and_flow_indices():
  pos = pp.sample_indices(5, 8, 1, True, 1, tf.constant([3, 4]))
  np.testing.assert_array_equal(pos, [np.arange(8)])  # no room: start 0
  np.testing.assert_array_equal(pp.rgb_indices(pos, 5), [[0, 1, 2, 3, 4, 0, 1, 2]])
  np.testing.assert_array_equal(pp.flow_indices(tf.constant([[0, 10]]), 12, 3), [[[0, 1, 2], [10, 11, 0]]])
  assert int(pp.num_positions(12, 10, True)) == 2 and int(pp.num_positions(12, 10, False)) == 12
  assert int(pp.num_positions(5, 10, True)) == 1


def test_flip_and_stack_flow_exact():
  q = np.random.default_rng(0).integers(0, 256, (2, 3, 2, 4, 5, 2)).astype(np.uint8)  # [V, T, k, H, W, 2]
  stacked = pp.stack_flow(tf.constant(q)).numpy()
  assert stacked.shape == (2, 3, 4, 5, 4)
  np.testing.assert_array_equal(stacked[..., 0], q[:, :, 0, ..., 0])  # x0
  np.testing.assert_array_equal(stacked[..., 1], q[:, :, 0, ..., 1])  # y0
  np.testing.assert_array_equal(stacked[..., 2], q[:, :, 1, ..., 0])  # x1
  flipped = pp.flip_flow(tf.constant(stacked)).numpy()
  np.testing.assert_array_equal(flipped[..., 0::2], 255 - stacked[..., ::-1, 0::2])
  np.testing.assert_array_equal(flipped[..., 1::2], stacked[..., ::-1, 1::2])
  np.testing.assert_array_equal(pp.flip_rgb(tf.constant(ramp(2, 3, 4))).numpy(), ramp(2, 3, 4)[:, :, ::-1])
  np.testing.assert_allclose(pp.to_model_range(tf.constant([0, 128, 255], tf.uint8)), [-1, 0.0039216, 1], atol=1e-6)
  np.testing.assert_allclose(pp.to_model_range(tf.constant([0, 255], tf.uint8)), [-1, 1])


def test_eval_crop_is_the_numpy_center_slice():
  frames = ramp(10, 20, 24)
  out = input_pipeline.eval_input_from_numpy(frames, 'i3d_rgb', crop_size=16)
  assert out.shape == (1, 10, 16, 16, 3)
  np.testing.assert_array_equal(out[0].numpy(), frames[:, 2:18, 4:20].astype(np.float32) / 127.5 - 1)
  c3d = input_pipeline.eval_input_from_numpy(frames, 'c3d', crop_size=8, num_frames=None)
  assert c3d.shape == (1, 15, 16, 8, 8, 3)  # 15 views of 16 frames, looped from 10 frames
  np.testing.assert_array_equal(np.round((c3d[0, 3, :, 0, 0, 2].numpy() + 1) * 127.5),
                                np.arange(16) % 10)


@pytest.mark.parametrize('seed', range(6))
def test_training_crop_and_flip_exact_on_ramp(seed):
  frames = ramp(10, 20, 24)
  flow = np.stack([frames[1:, ..., 1], frames[1:, ..., 0]], -1) + 100  # x = col + 100, y = row + 100
  out = input_pipeline.clip_from_decoded(tf.constant(frames), tf.constant(flow), get_input_spec('two_stream_i3d'),
                                         True, crop_size=12, num_frames=4, seed=tf.constant([seed, 7]))
  rgb = np.round((out['rgb'].numpy() + 1) * 127.5).astype(np.int64)
  fl = np.round((out['flow'].numpy() + 1) * 127.5).astype(np.int64)
  assert rgb.shape == (4, 12, 12, 3) and fl.shape == (4, 12, 12, 2)
  t0, y = rgb[0, 0, 0, 2], rgb[0, 0, 0, 0]
  flipped = rgb[0, 0, 0, 1] > rgb[0, 0, -1, 1]
  x = rgb[0, 0, -1, 1] if flipped else rgb[0, 0, 0, 1]
  expect = frames[t0:t0 + 4, y:y + 12, x:x + 12].astype(np.int64)
  expect_flow = flow[t0:t0 + 4, y:y + 12, x:x + 12].astype(np.int64)
  if flipped:
    expect = expect[:, :, ::-1]
    expect_flow = expect_flow[:, :, ::-1]
    expect_flow[..., 0] = 255 - expect_flow[..., 0]
  np.testing.assert_array_equal(rgb, expect)
  np.testing.assert_array_equal(fl, expect_flow)
  assert 0 <= t0 <= 10 - 1 - 4 and 0 <= y <= 8 and 0 <= x <= 12


def test_training_flips_about_half_the_time():
  frames = ramp(4, 8, 8)
  flips = []
  for s in range(40):
    out = input_pipeline.clip_from_decoded(tf.constant(frames), None, get_input_spec('i3d_rgb'), True, 8, 2,
                                           seed=tf.constant([s, 1])).numpy()
    flips.append(out[0, 0, 0, 1] > out[0, 0, -1, 1])
  assert 10 <= sum(flips) <= 30


def test_frames_in_the_wrong_dtype_or_channels_are_refused():
  """Float frames in [0, 1] once became a constant uint8 video; a 4-channel video a reshape error."""
  from data_pipelines import input_pipeline
  from i3d_tf import features as F
  scaled = np.random.default_rng(0).uniform(0, 1, (5, 40, 48, 3)).astype(np.float32)
  with pytest.raises(ValueError, match=r'frames must be uint8 levels in \[0, 255\].*got float32 with values in \[2.29e-05, 1\]'):
    input_pipeline.eval_input_from_numpy(scaled, 'i3d_rgb', crop_size=32)
  with pytest.raises(ValueError, match=r'must be uint8 levels'):
    F.stream_inputs(scaled, ('rgb',), F.ExtractionOptions(crop_size=32, resize_short_side=40))
  rgba = np.zeros((5, 40, 48, 4), np.uint8)
  with pytest.raises(ValueError, match=r'frames must be \[N, H, W, 3\] \(3 channels\); got shape \[5, 40, 48, 4\]'):
    input_pipeline.eval_input_from_numpy(rgba, 'i3d_rgb', crop_size=32)
  frames = np.zeros((5, 40, 48, 3), np.uint8)
  with pytest.raises(ValueError, match=r'flow must be \[N - 1, H, W, 2\]'):
    input_pipeline.eval_input_from_numpy(frames, 'two_stream_i3d', flow=np.zeros((5, 40, 48, 2), np.uint8), crop_size=32)
  assert input_pipeline.eval_input_from_numpy(frames, 'i3d_rgb', crop_size=32).shape == (1, 5, 32, 32, 3)


def test_non_finite_flow_is_an_error_not_minus_20_px():
  from data_pipelines import flow as flow_lib
  frames = np.zeros((3, 16, 16, 3), np.uint8)

  def broken(gray):
    out = np.zeros((len(gray) - 1,) + gray.shape[1:] + (2,), np.float32)
    out[1, 3, 4, 0] = np.nan
    return out

  with pytest.raises(ValueError, match=r'returned 1 NaN or infinite values of 1024 \(fields \[1\]\)'):
    flow_lib.compute_flow(frames, broken)
  with pytest.raises(ValueError, match='frames must be uint8'):
    flow_lib.compute_flow(frames.astype(np.float32), broken)
