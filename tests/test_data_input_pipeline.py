"""make_dataset on small in-memory records: shapes per model, ranges, looping, flips, determinism, errors."""


import cv2
import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import input_pipeline, make_dataset, shards
from data_pipelines import preprocessing as pp
from data_pipelines import tfrecord_format as fmt
from data_pipelines.testing import write_records

H, W, CROP = 40, 56, 32


def coded_video(n, label, vid):
  """RGB: ch0 = row * 4, ch1 = col * 4, ch2 = 5 * t (frame id); flow x = 130 + i % 100 (flow id), y = col * 4."""
  t, r, c = np.meshgrid(np.arange(n), np.arange(H), np.arange(W), indexing='ij')
  frames = np.stack([r * 4, c * 4, 5 * t], -1).astype(np.uint8)
  fx = (130 + t[:-1] % 100).astype(np.uint8)  # flow field i (frame i -> i + 1) carries i
  fy = (c[:-1] * 4).astype(np.uint8)
  video = fmt.encode_video(frames, np.stack([fx, fy], -1), video_id=vid, label_index=label)
  # 4:4:4 chroma at quality 100 so that colour channels survive JPEG within a few levels.
  params = [cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
  video.images = [cv2.imencode('.jpg', f[..., ::-1], params)[1].tobytes() for f in frames]
  return video


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  d = tmp_path_factory.mktemp('records')
  write_records(str(d / 'a-00000-of-00002.tfrecord'), [coded_video(12, 3, 'long')])
  write_records(str(d / 'a-00001-of-00002.tfrecord'), [coded_video(5, 4, 'short')])
  write_records(str(d / 'b.tfrecord'), [coded_video(40, 5, 'forty')])
  return d


def _q(x):
  return np.round((np.asarray(x) + 1) * 127.5).astype(np.int64)


def _frame_ids(rgb):
  """Frame ids from [..., H, W, 3] clips: blue = 5 t, averaged over the crop (JPEG error is a few levels)."""
  return np.round(_q(rgb)[..., 2].mean(axis=(-1, -2)) / 5).astype(int)


# Expected per-example shapes with CROP = 32 on the 12-frame video (V, T, C).
SHAPES = {
    'i3d_rgb': {'x': (12, CROP, CROP, 3)},
    'i3d_flow': {'x': (11, CROP, CROP, 2)},
    'two_stream_i3d': {'rgb': (11, CROP, CROP, 3), 'flow': (11, CROP, CROP, 2)},
    'convnet_lstm': {'x': (50, CROP, CROP, 3)},
    'c3d': {'x': (15, 16, CROP, CROP, 3)},
    'two_stream': {'rgb': (25, 1, CROP, CROP, 3), 'flow': (25, 1, CROP, CROP, 20)},
    'fused_3d': {'rgb': (5, 5, CROP, CROP, 3), 'flow': (5, 5, CROP, CROP, 20)},
}
TRAIN_SHAPES = {
    'i3d_rgb': {'x': (64, CROP, CROP, 3)}, 'i3d_flow': {'x': (64, CROP, CROP, 2)},
    'two_stream_i3d': {'rgb': (64, CROP, CROP, 3), 'flow': (64, CROP, CROP, 2)},
    'convnet_lstm': {'x': (25, CROP, CROP, 3)}, 'c3d': {'x': (16, CROP, CROP, 3)},
    'two_stream': {'rgb': (1, CROP, CROP, 3), 'flow': (1, CROP, CROP, 20)},
    'fused_3d': {'rgb': (5, CROP, CROP, 3), 'flow': (5, CROP, CROP, 20)},
}


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('model', sorted(SHAPES))
def test_shapes_and_ranges(records, model, training):
  ds = make_dataset(str(records / 'a-00000-*'), model, training, 1, crop_size=CROP, seed=0, deterministic=True)
  inputs, labels = next(iter(ds))
  got = inputs if isinstance(inputs, dict) else {'x': inputs}
  want = (TRAIN_SHAPES if training else SHAPES)[model]
  assert {k: tuple(v.shape) for k, v in got.items()} == {k: (1,) + s for k, s in want.items()}
  for v in got.values():
    assert v.dtype == tf.float32 and -1.0 <= float(tf.reduce_min(v)) and float(tf.reduce_max(v)) <= 1.0
  assert labels.dtype == tf.int32 and labels.numpy().tolist() == [3]


def test_looping_short_video(records):
  ds = make_dataset(str(records / 'a-00001-*'), 'i3d_rgb', True, 1, crop_size=CROP, num_frames=8, seed=1)
  x, y = next(iter(ds))
  frame_ids = _frame_ids(x[0])
  np.testing.assert_array_equal(frame_ids, [0, 1, 2, 3, 4, 0, 1, 2])
  assert y.numpy().tolist() == [4]


def test_test_views_indices(records):
  ds = make_dataset(str(records / 'b.tfrecord'), 'c3d', False, 1, crop_size=CROP, num_frames=4)
  x, _ = next(iter(ds))
  assert x.shape == (1, 15, 4, CROP, CROP, 3)
  ids = _frame_ids(x[0])
  starts = np.round(np.arange(15) * 36 / 14).astype(int)  # 40 frames, room 36
  np.testing.assert_array_equal(ids, starts[:, None] + np.arange(4))
  # c3d resizes the 40x56 frames to its 128 short side (128x179) first: the centre 32 crop covers rows
  # 14.7..24.3, cols 22.5..32.2 of the stored frame (ch0 = 4 row, ch1 = 4 col; crop means)
  means = _q(x[0]).mean(axis=(0, 1, 2, 3))
  assert abs(means[0] - 4 * 19.5) < 2 and abs(means[1] - 4 * 27.5) < 2  # one pixel off = 4 levels
  rows = _q(x[0])[..., 0].mean(axis=(0, 1, 3))  # ch0 down the crop: 31 resized rows = 9.7 stored rows, not 31
  assert abs((rows[-1] - rows[0]) - 4 * 31 / 3.2) < 6, rows[-1] - rows[0]


def test_flip_consistent_over_clip_and_flow(records):
  ds = make_dataset(str(records / 'b.tfrecord'), 'two_stream_i3d', True, 1, crop_size=CROP, num_frames=6,
                    seed=3, deterministic=True)
  seen = set()
  for inputs, _ in ds.take(16):
    rgb, flow = _q(inputs['rgb'][0]), _q(inputs['flow'][0])
    slope = np.sign(rgb[:, :, -1, 1].astype(int) - rgb[:, :, 0, 1])  # col ramp direction, per frame & row
    assert np.all(slope == slope.flat[0]) and slope.flat[0] != 0
    flipped = slope.flat[0] < 0
    frame_ids = _frame_ids(inputs['rgb'][0])
    flow_x = flow[..., 0]
    want_x = (130 + frame_ids) if not flipped else 255 - (130 + frame_ids)  # flow i aligned with frame i
    np.testing.assert_array_equal(flow_x, np.broadcast_to(want_x[:, None, None], flow_x.shape))
    fy = flow[..., 1]  # y flow is the col ramp (PNG: exact): mirrored with the RGB
    assert np.all(np.sign(fy[:, :, -1] - fy[:, :, 0]) == slope.flat[0])
    seen.add(bool(flipped))
  assert seen == {True, False}


def test_uint8_output_is_the_float_output_before_scaling(records):
  kw = dict(crop_size=CROP, num_frames=6, seed=5, deterministic=True)
  ds8 = make_dataset(str(records / 'b.tfrecord'), 'two_stream_i3d', True, 2, output_dtype='uint8', **kw)
  ds32 = make_dataset(str(records / 'b.tfrecord'), 'two_stream_i3d', True, 2, **kw)
  flips = set()
  for (x8, y8), (x32, y32) in zip(ds8.take(4), ds32.take(4)):
    assert x8['rgb'].dtype == tf.uint8 and x8['flow'].dtype == tf.uint8 and x8['rgb'].shape == (2, 6, CROP, CROP, 3)
    for k in ('rgb', 'flow'):  # the same clips, crops and flips; scaling later gives the same floats
      np.testing.assert_array_equal(pp.to_model_range(x8[k]).numpy(), x32[k].numpy())
    np.testing.assert_array_equal(y8, y32)
    flips.add(bool(x8['rgb'][0, 0, 0, 0, 1] > x8['rgb'][0, 0, 0, -1, 1]))
  assert flips == {True, False}
  with pytest.raises(ValueError, match='output_dtype'):
    make_dataset(str(records / 'b.tfrecord'), 'i3d_rgb', True, 1, output_dtype='float16')


def test_deterministic_with_seed(records):
  def first(seed):
    ds = make_dataset(str(records / 'a-*'), 'i3d_rgb', True, 2, crop_size=CROP, num_frames=4, seed=seed,
                      deterministic=True)
    return [(x.numpy(), y.numpy()) for x, y in ds.take(3)]
  a, b, c = first(7), first(7), first(8)
  for (xa, ya), (xb, yb) in zip(a, b):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_whole_video_needs_batch_one_and_repeat(records):
  with pytest.raises(ValueError, match='batch_size=1'):
    make_dataset(str(records / 'a-*'), 'i3d_rgb', False, 2)
  ds = make_dataset(str(records / 'a-*'), 'i3d_rgb', False, 1, crop_size=CROP, deterministic=True)
  assert sorted(int(x.shape[1]) for x, _ in ds) == [5, 12]  # every frame, once each
  ds = make_dataset(str(records / 'a-*'), 'i3d_rgb', False, 1, crop_size=CROP, repeat=2)
  assert len(list(ds)) == 4
  with pytest.raises(ValueError, match='No file matches'):
    make_dataset(str(records / 'nothing-*'), 'i3d_rgb', True, 1)


def test_repeat_counts_passes_and_refuses_zero_and_other_negatives(records):
  """repeat=0 gave one pass (so did -5): neither is a number of passes; they raise.  n >= 1 is n passes, -1 and
  None at training forever, None at test one pass."""
  def videos(repeat, training=False):
    ds = make_dataset(str(records / 'a-*'), 'i3d_rgb', training, 1, crop_size=CROP, num_frames=4, repeat=repeat,
                      drop_remainder=False)
    return len(list(ds.take(20)))
  assert [videos(r) for r in (None, 1, 2, 3)] == [2, 2, 4, 6]
  assert videos(1, training=True) == 2 and videos(None, training=True) == 20 and videos(-1) == 20
  for bad in (0, -2, -5, 1.5, True, '2'):
    with pytest.raises(ValueError) as e:
      make_dataset(str(records / 'a-*'), 'i3d_rgb', False, 1, crop_size=CROP, repeat=bad)
    assert str(e.value) == ('repeat must be None (forever at training, one pass at test), -1 (forever) or the number '
                            f'of passes, >= 1. Received: repeat={bad!r}')
  assert videos(np.int64(2)) == 4


def test_input_context_shards_files(records):
  ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
  ds = make_dataset(str(records / 'a-*'), 'i3d_rgb', False, 2, crop_size=CROP, num_frames=4, input_context=ctx)
  labels = [int(v) for _, y in ds for v in y.numpy()]
  assert labels == [4]  # second file only, per-replica batch 1


def test_fewer_files_than_workers_split_records_disjointly(tmp_path):
  """2 files, 3 input pipelines: each worker reads every file and keeps its share of the records, so every
  worker must see the records in one order (file shuffle and interleave order were per worker: overlap and
  loss).  One training pass (repeat=1), no seed: the shares are disjoint and cover every record."""
  for f in range(2):
    write_records(str(tmp_path / f'd-0000{f}-of-00002.tfrecord'),
                  [coded_video(5, 0, f'v{f}_{i}') for i in range(6)])
  seen = []
  for worker in range(3):
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=worker, num_replicas_in_sync=3)
    ds = make_dataset(str(tmp_path / 'd-*'), 'i3d_rgb', True, 3, crop_size=CROP, num_frames=4, input_context=ctx,
                      repeat=1, drop_remainder=False, with_video_ids=True)
    seen.append(sorted(v.decode() for _, _, ids in ds for v in ids.numpy()))
  assert sorted(sum(seen, [])) == sorted(f'v{f}_{i}' for f in range(2) for i in range(6))
  assert [len(s) for s in seen] == [4, 4, 4]


def test_corrupt_shard_named_or_skipped(records, tmp_path):
  data = open(records / 'a-00000-of-00002.tfrecord', 'rb').read()
  bad = tmp_path / 'c-00000.tfrecord'
  bad.write_bytes(data[:len(data) // 2])
  good = tmp_path / 'c-00001.tfrecord'
  good.write_bytes(open(records / 'a-00001-of-00002.tfrecord', 'rb').read())
  with pytest.raises(shards.CorruptShardError, match='c-00000.tfrecord'):
    make_dataset(str(tmp_path / 'c-*'), 'i3d_rgb', False, 1, crop_size=CROP)
  ds = make_dataset(str(tmp_path / 'c-*'), 'i3d_rgb', False, 1, crop_size=CROP, skip_corrupt=True)
  assert len(ds.skipped_files) == 1 and ds.skipped_files[0][0].endswith('c-00000.tfrecord')
  assert [int(y[0]) for _, y in ds] == [4]
  assert shards.scan_tfrecord(str(good)) == (1, None)
  flipped = bytearray(data)
  flipped[len(data) // 2] ^= 0xFF  # payload corruption: only the data CRC catches it
  (tmp_path / 'd.tfrecord').write_bytes(bytes(flipped))
  assert shards.scan_tfrecord(str(tmp_path / 'd.tfrecord'))[1] is None
  n, reason = shards.scan_tfrecord(str(tmp_path / 'd.tfrecord'), verify_data=True)
  assert 'corrupted record' in reason
  # skip_corrupt verifies payloads up front (reading would stop at the bad record, uncounted).
  ds = make_dataset([str(tmp_path / 'd.tfrecord'), str(good)], 'i3d_rgb', False, 1, crop_size=CROP,
                    skip_corrupt=True)
  assert [p for p, _ in ds.skipped_files] == [str(tmp_path / 'd.tfrecord')]
  assert [int(y[0]) for _, y in ds] == [4]


def write_shard_with_a_bad_jpeg(path):
  """Three sound records (CRCs fine); the middle one has a frame that is not a JPEG."""
  videos = [coded_video(6, label, f'v{label}') for label in range(3)]
  videos[1].images[3] = b'not a jpeg at all'
  write_records(str(path), videos)


def test_undecodable_record_is_counted_and_named(tmp_path):
  write_shard_with_a_bad_jpeg(tmp_path / 'bad.tfrecord')
  with pytest.raises(tf.errors.InvalidArgumentError):
    list(make_dataset(str(tmp_path / 'bad.tfrecord'), 'i3d_rgb', False, 1, crop_size=CROP))
  ds = make_dataset(str(tmp_path / 'bad.tfrecord'), 'i3d_rgb', False, 1, crop_size=CROP, skip_corrupt=True,
                    deterministic=True, with_video_ids=True)
  got = [(int(y[0]), v.numpy()[0].decode()) for _, y, v in ds]
  assert got == [(0, 'v0'), (2, 'v2')]
  assert ds.record_counts.as_dict() == {'records_read': 3, 'records_delivered': 2, 'records_skipped': 1}
  assert ds.skipped_files == []
  train = make_dataset(str(tmp_path / 'bad.tfrecord'), 'i3d_rgb', True, 2, crop_size=CROP, num_frames=4,
                       skip_corrupt=True, seed=0)
  for _ in train.take(5):  # an endless stream keeps going past the bad record, counting it each epoch
    pass
  counts = train.record_counts.as_dict()
  assert counts['records_delivered'] >= 10 and counts['records_skipped'] >= 3
  assert counts['records_read'] == counts['records_delivered'] + counts['records_skipped']


def test_record_without_flow_fails_for_flow_models(records, tmp_path):
  frames = np.zeros((6, H, W, 3), np.uint8)
  write_records(str(tmp_path / 'noflow.tfrecord'), [fmt.encode_video(frames, None, video_id='n', label_index=1)])
  rgb = make_dataset(str(tmp_path / 'noflow.tfrecord'), 'i3d_rgb', False, 1, crop_size=CROP)
  assert next(iter(rgb))[0].shape == (1, 6, CROP, CROP, 3)
  flow = make_dataset(str(tmp_path / 'noflow.tfrecord'), 'i3d_flow', False, 1, crop_size=CROP)
  with pytest.raises(tf.errors.InvalidArgumentError, match='no flow fields'):
    next(iter(flow))


def test_eval_input_from_numpy_two_stream_alignment():
  n = 9
  t = np.arange(n)[:, None, None] * np.ones((1, H, W), int)
  frames = np.stack([t * 10, t * 0, t * 0], -1).astype(np.uint8)
  flow = np.stack([100 + t[:-1], 50 + t[:-1]], -1).astype(np.uint8)
  out = input_pipeline.eval_input_from_numpy(frames, 'two_stream_i3d', flow=flow, crop_size=CROP)
  assert out['rgb'].shape == (1, n - 1, CROP, CROP, 3) and out['flow'].shape == (1, n - 1, CROP, CROP, 2)
  np.testing.assert_array_equal(_q(out['rgb'][0, :, 0, 0, 0]) // 10, np.arange(n - 1))
  np.testing.assert_array_equal(_q(out['flow'][0, :, 0, 0, 0]) - 100, np.arange(n - 1))  # flow i with frame i
  two = input_pipeline.eval_input_from_numpy(frames, 'two_stream', flow=flow, crop_size=CROP)
  assert two['flow'].shape == (1, 25, 1, CROP, CROP, 20)
  np.testing.assert_array_equal(_q(two['flow'][0, 0, 0, 0, 0, 0::2]) - 100, np.arange(10) % 8)  # looped stack


def test_a_file_that_is_no_tfrecord_is_named_as_such_not_as_a_corrupt_shard(records, tmp_path):
  good = tmp_path / 'a-00000-of-00001.tfrecord'
  good.write_bytes(open(records / 'a-00001-of-00002.tfrecord', 'rb').read())
  (tmp_path / 'a-manifest.json').write_text('[\n  {"id": "x"}\n]\n')
  for skip in (False, True):  # a glob matching the wrong files is no damaged data: never skipped silently
    with pytest.raises(shards.NotATFRecordError) as e:
      make_dataset(str(tmp_path / 'a-*'), 'i3d_rgb', False, 1, crop_size=CROP, skip_corrupt=skip)
    assert str(e.value) == (
        f"{tmp_path / 'a-manifest.json'} is not a TFRecord file (its first bytes '[\\n  {{\"id\": \"' are no record "
        f"header, like JSON): the file pattern {str(tmp_path / 'a-*')!r} matches more than shards; narrow it, e.g. "
        'to <dir>/<subset>-*.tfrecord')
  assert shards.not_a_tfrecord(str(good)) is None
  truncated = tmp_path / 'b.tfrecord'
  truncated.write_bytes(good.read_bytes()[:100])  # a damaged shard is still a corrupt shard
  assert shards.not_a_tfrecord(str(truncated)) is None
  with pytest.raises(shards.CorruptShardError, match='b.tfrecord: truncated record'):
    make_dataset(str(truncated), 'i3d_rgb', False, 1, crop_size=CROP)
  (tmp_path / 'c').mkdir()
  assert shards.not_a_tfrecord(str(tmp_path / 'c')) == 'it is a folder'


def test_first_layout_sidecars_are_left_out_of_shard_globs(records, tmp_path):
  """prepare_data's first layout wrote '<shard>.manifest.json' beside the shards: 'a-*' matched them."""
  shard = tmp_path / 'a-00000-of-00001.tfrecord'
  shard.write_bytes(open(records / 'a-00001-of-00002.tfrecord', 'rb').read())
  (tmp_path / 'a-00000-of-00001.tfrecord.manifest.json').write_text('[{"id": "short"}]\n')
  (tmp_path / '.tmp-0badc0de-a-00000-of-00001.tfrecord').write_bytes(b'partial')  # a killed writer's leftover
  assert shards.list_shards(str(tmp_path / 'a-*')) == [str(shard)]
  assert shards.list_shards(str(tmp_path / '*.tfrecord*')) == [str(shard)]
  ds = make_dataset(str(tmp_path / 'a-*'), 'i3d_rgb', False, 1, crop_size=CROP)
  assert [int(y[0]) for _, y in ds] == [4]


def test_a_crop_larger_than_the_stored_frames_is_named_when_the_pipeline_is_built(tmp_path):
  """Frames stored at short side 40 with the default 224 crop: training died with 'Need minval < maxval',
  evaluation called the records undecodable, the export's serialized signature failed in the JPEG decoder."""
  import pytest
  from data_pipelines import make_dataset, tfrecord_format as fmt
  from data_pipelines.input_pipeline import CropTooLargeError
  from data_pipelines.testing import write_records
  frames = np.zeros((6, 40, 52, 3), np.uint8)
  path = str(tmp_path / 'train-00000-of-00001.tfrecord')
  write_records(path, [fmt.encode_video(frames, None, video_id='v', label_index=0)])
  for training in (True, False):
    with pytest.raises(CropTooLargeError) as e:
      make_dataset(path, 'i3d_rgb', training=training, batch_size=1)
    assert str(e.value) == (f'{path}: the stored frames are 40x52, smaller than the 224x224 crop: convert with '
                            'prepare_data --resize_short_side >= 224 (the paper: 256), or pass --crop_size <= 40')
  # The graph checks each record too (records of several sizes, serving): a message, not a JPEG error.
  from data_pipelines.input_specs import get_input_spec
  spec = get_input_spec('i3d_rgb')
  serialized = fmt.serialize(fmt.encode_video(frames, None, video_id='v', label_index=0))
  with pytest.raises(tf.errors.InvalidArgumentError, match='stored frames are smaller than the 224x224 crop'):
    input_pipeline.parse_and_sample(tf.constant(serialized), tf.constant([0, 0]), spec,
                                    input_pipeline.resolve_clip(spec, False), False, 224)
  assert make_dataset(path, 'i3d_rgb', training=False, batch_size=1, crop_size=40) is not None


def test_training_on_shards_without_records_is_one_clear_error(tmp_path):
  """Every video failed to convert: an empty shard.  Training said nothing until tf.data's End of sequence."""
  (tmp_path / 'train-00000-of-00001.tfrecord').write_bytes(b'')
  with pytest.raises(ValueError, match=r"hold no records \(did every video fail to convert"):
    make_dataset(str(tmp_path / 'train-*'), 'i3d_rgb', True, 2, num_frames=4, crop_size=16)
  ds = make_dataset(str(tmp_path / 'train-*'), 'i3d_rgb', False, 1, crop_size=16)  # testing: nothing to score
  assert list(ds) == []

