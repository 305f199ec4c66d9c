"""SequenceExample format: writer and parser round trip (frames within JPEG tolerance, flow exact)."""

import numpy as np
import pytest

from data_pipelines import flow as flow_lib
from data_pipelines import tfrecord_format as fmt


def _video(n=5, h=40, w=52):
  yy, xx = np.mgrid[0:h, 0:w]
  frames = np.stack([np.stack([(yy * 4 + t * 10) % 256, (xx * 4) % 256, np.full_like(yy, 30 * t)], -1)
                     for t in range(n)]).astype(np.uint8)
  rng = np.random.default_rng(0)
  flow = rng.normal(0, 6, (n - 1, h, w, 2)).astype(np.float32)
  return frames, flow_lib.quantize_flow(flow)


def test_round_trip_png_flow_exact():
  frames, flow_q = _video()
  enc = fmt.encode_video(frames, flow_q, video_id='v_x', label_index=7, label_text='cls', source='/a/b.avi',
                         jpeg_quality=95)
  out = fmt.decode_record_numpy(fmt.serialize(enc))
  assert out['frames'].shape == frames.shape
  diff = np.abs(out['frames'].astype(int) - frames)
  assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 12, (diff.mean(), diff.max())
  np.testing.assert_array_equal(out['flow'], flow_q)
  assert (out['video/id'], out['clip/label/index'], out['clip/label/text'], out['video/source']) == (
      'v_x', 7, 'cls', '/a/b.avi')
  assert (out['video/num_frames'], out['flow/num_frames'], out['image/height'], out['image/width']) == (
      5, 4, 40, 52)
  assert out['video/fps'] == 25.0 and out['flow/format'] == 'png'


def test_jpeg_flow_within_one_step_on_smooth_flow():
  frames, _ = _video(n=3)
  yy, xx = np.mgrid[0:40, 0:52]
  flow = np.stack([np.stack([xx / 52 * 10 - 5, yy / 40 * 6 - 3], -1)] * 2).astype(np.float32)
  q = flow_lib.quantize_flow(flow)
  enc = fmt.encode_video(frames, q, video_id='j', flow_format='jpeg', flow_jpeg_quality=100)
  out = fmt.decode_record_numpy(fmt.serialize(enc))
  assert out['flow/format'] == 'jpeg'
  assert np.abs(out['flow'].astype(int) - q).max() <= 1


def test_no_flow_and_validation():
  frames, flow_q = _video(n=2)
  out = fmt.decode_record_numpy(fmt.serialize(fmt.encode_video(frames, None, video_id='n')))
  assert out['flow'] is None and out['flow/num_frames'] == 0 and out['clip/label/index'] == -1
  with pytest.raises(ValueError, match='N - 1'):
    fmt.encode_video(frames, np.concatenate([flow_q, flow_q]), video_id='bad')
  with pytest.raises(ValueError, match='flow_format'):
    fmt.encode_video(frames, flow_q, video_id='bad', flow_format='webp')
  with pytest.raises(ValueError, match='uint8'):
    fmt.encode_video(frames.astype(np.float32), None, video_id='bad')


def test_model_garden_keys_and_atomic_write(tmp_path):
  frames, flow_q = _video(n=2)
  ex = fmt.to_sequence_example(fmt.encode_video(frames, flow_q, video_id='k', label_index=3))
  assert ex.context.feature['clip/label/index'].int64_list.value == [3]
  assert len(ex.feature_lists.feature_list['image/encoded'].feature) == 2
  assert len(ex.feature_lists.feature_list['flow/x/encoded'].feature) == 1
  path = str(tmp_path / 'a.tfrecord')
  assert fmt.write_tfrecord(path, [ex.SerializeToString()] * 3) == 3
  assert sorted(p.name for p in tmp_path.iterdir()) == ['a.tfrecord']


def test_unrolled_decode_equals_map_fn_decode():
  """Static frame counts decode unrolled, dynamic ones through map_fn: the same pixels either way."""
  import tensorflow as tf
  frames, flow_q = _video(n=6)
  video = fmt.encode_video(frames, flow_q, video_id='u')
  images, fx, fy = (tf.constant(v) for v in (video.images, video.flow_x, video.flow_y))
  window = tf.constant([3, 5, 24, 32])
  static = tf.function(lambda e, x, y: (fmt.decode_frames(e, window), fmt.decode_flow(x, y)))
  dynamic = tf.function(lambda e, x, y: (fmt.decode_frames(e, window), fmt.decode_flow(x, y)),
                        input_signature=[tf.TensorSpec([None], tf.string)] * 3)
  graph = static.get_concrete_function(images, fx, fy).graph
  assert not any(op.type == 'While' for op in graph.get_operations())  # unrolled
  assert any(op.type in ('While', 'StatelessWhile') for op in
             dynamic.get_concrete_function().graph.get_operations())
  (rgb_a, flow_a), (rgb_b, flow_b) = static(images, fx, fy), dynamic(images, fx, fy)
  assert rgb_a.shape == (6, 24, 32, 3) and flow_a.shape == (5, 40, 52, 2)
  np.testing.assert_array_equal(rgb_a.numpy(), rgb_b.numpy())
  np.testing.assert_array_equal(flow_a.numpy(), flow_b.numpy())
  np.testing.assert_array_equal(flow_a.numpy(), flow_q)  # PNG: exact
