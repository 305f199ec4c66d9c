"""The records path crops from frames of the size the model's Table 1 spec asks for, as the video-file path.

C3D's spec crops 112 from a 128 short side; the records hold frames at short side 256.  The records path
(train / evaluate / export) used to crop 112 straight out of the 256 frames: 112/256 = 44% of the short side
where a video file (classify, features) gives 112/128 = 88%.  Models whose spec crops from 256 keep the fast
path (JPEG decoded into the crop window), bit for bit.
"""

import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import constants, input_pipeline, make_dataset, streaming
from data_pipelines import preprocessing as pp
from data_pipelines import tfrecord_format as fmt
from data_pipelines.input_specs import FLOW, INPUT_SPECS, RGB, ClipSpec, InputSpec
from data_pipelines.testing import VIDEOS, write_records
from data_pipelines.video import decode_video, resize_frame, resized_shape


def _levels(x):
  return np.round((np.asarray(x) + 1) * 127.5).astype(np.int64)


def smooth_image(height, width, seed=0):
  """A smooth colour image (blurred noise plus ramps): bilinear resizes and JPEG stay close on it."""
  rng = np.random.default_rng(seed)
  noise = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (9, 9), 0).astype(int)
  r, c = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  ramps = np.stack([r * 200 // height, c * 200 // width, (r + c) * 100 // (height + width)], -1)
  return np.clip(noise // 4 + ramps, 0, 255).astype(np.uint8)


def test_c3d_records_and_video_file_give_the_same_test_input_on_a_real_clip(tmp_path):
  """The Kinetics clip (340x256, so stored as decoded) through prepare_data's encoding (JPEG q90) and the records
  path, against classification's video path (decode at short side 128, center crop 112), on the same frames.
  Measured: mean |difference| 1.7 levels, 99th percentile 8 (JPEG q90, resized); the old records path
  (a 112 crop of the 256 frames) was 60 levels off on average."""
  path = os.path.join(VIDEOS, 'arm_wrestling_kinetics.mp4')
  n = 20
  frames = decode_video(path, max_frames=n).frames
  assert frames.shape == (n, 256, 340, 3)  # stored as prepare_data stores it (short side 256)
  shard = str(tmp_path / 'test-00000-of-00001.tfrecord')
  encoded = fmt.encode_video(frames, None, video_id='arm', label_index=6)  # prepare_data's JPEG q90
  write_records(shard, [encoded])
  x, y = next(iter(make_dataset(shard, 'c3d', False, 1)))
  assert x.shape == (1, 15, 16, 112, 112, 3) and y.numpy().tolist() == [6]
  records = _levels(x[0])
  video = np.stack([s['rgb'] for s in streaming.video_steps(path, ('rgb',), 112, 128, max_frames=n)])
  assert video.shape == (n, 112, 112, 3)
  views = np.mod(pp.sample_indices(n, 16, 1, False, 15).numpy(), n)  # the 15 test clips' frame indices
  diff = np.abs(records - video[views].astype(np.int64))
  assert diff.mean() < 2.5 and np.percentile(diff, 99) <= 10, (diff.mean(), np.percentile(diff, 99))
  # Without the JPEG step: the records path is OpenCV's bilinear resize of the stored frames within one level.
  stored = fmt.decode_frames(tf.constant(encoded.images)).numpy()
  want = pp.center_crop(np.stack([resize_frame(f, 128) for f in stored]), 112)[views]
  assert np.abs(records - want.astype(np.int64)).max() <= 1


@pytest.mark.parametrize('model', sorted(m for m, s in INPUT_SPECS.items() if RGB in s.modalities))
def test_every_model_sees_its_specs_field_of_view_from_records(tmp_path, model):
  """Every model with RGB (C3D the only one with another resize_short_side or crop): the test input from
  records stored at 256x340 is the spec's crop of the frames resized to the spec's short side, what the video
  path gives (a still video, so every view and time step is that one crop)."""
  spec = INPUT_SPECS[model]
  image = smooth_image(256, 340)
  frames = np.repeat(image[None], 12, axis=0)
  flow = np.full((11, 256, 340, 2), 128, np.uint8) if FLOW in spec.modalities else None
  shard = str(tmp_path / 'test.tfrecord')
  write_records(shard, [fmt.encode_video(frames, flow, video_id='still', label_index=1)])
  inputs, _ = next(iter(make_dataset(shard, model, False, 1)))
  rgb = _levels(inputs[RGB] if isinstance(inputs, dict) else inputs)
  assert rgb.shape[-3:] == (spec.crop_size, spec.crop_size, 3)
  decoded = tf.io.decode_jpeg(fmt.encode_jpeg(image), channels=3).numpy()  # what the record stores
  want = pp.center_crop(resize_frame(decoded, spec.resize_short_side), spec.crop_size).astype(np.int64)
  diff = np.abs(rgb - want)
  # decode-into-window vs decode-then-crop differ by JPEG chroma upsampling at the window's edge (a level or
  # two); a crop of another field of view would be tens of levels off.
  assert diff.mean() < 0.5 and diff.max() <= 3, (diff.mean(), diff.max())


def test_c3d_field_of_view_numbers():
  """What C3D sees of a 256x340 stored frame at test: before, a 112 crop of the 256 short side; now the crop of
  the 128x170 resized frame, i.e. the 224x224 centre of the stored frame (the field of view of I3D's crop)."""
  spec = INPUT_SPECS['c3d']
  assert (spec.crop_size, spec.resize_short_side) == (112, 128)
  assert input_pipeline.record_resize_target(spec) == 128
  assert [input_pipeline.record_resize_target(s) for m, s in sorted(INPUT_SPECS.items()) if m != 'c3d'] == [None] * 6
  assert resized_shape(256, 340, 128) == (128, 170)
  assert spec.crop_size / spec.resize_short_side == constants.CROP_SIZE / constants.RESIZE_SHORT_SIDE == 0.875


def _ramp_records(tmp_path, height, width, n=6):
  r, c = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  frame = np.stack([r * 255 // (height - 1), c * 255 // (width - 1), np.full_like(r, 90)], -1).astype(np.uint8)
  shard = str(tmp_path / f'ramp-{height}x{width}.tfrecord')
  video = fmt.encode_video(np.repeat(frame[None], n, 0), None, video_id='ramp', label_index=0, jpeg_quality=100)
  write_records(shard, [video])
  return shard, video.images[0]


def test_c3d_training_crops_are_random_crops_of_the_resized_frame(tmp_path):
  """At training the 112 crop is drawn inside the 128x170 resized frame (offsets 0..16 and 0..58), flipped or
  not: each clip equals one window of the resized frame, and the windows vary."""
  shard, jpeg = _ramp_records(tmp_path, 256, 340)
  resized = pp.resize_frames(tf.io.decode_jpeg(jpeg, channels=3)[None], 128, 170)[0].numpy().astype(np.int64)
  ds = make_dataset(shard, 'c3d', True, 1, seed=3, deterministic=True, num_frames=2)
  offsets = set()
  for x, _ in ds.take(8):
    clip = _levels(x[0])
    assert clip.shape == (2, 112, 112, 3) and np.array_equal(clip[0], clip[1])
    flipped = clip[0, 0, 0, 1] > clip[0, 0, -1, 1]  # the column ramp runs backwards
    crop = clip[0, :, ::-1] if flipped else clip[0]
    y = int(np.argmin([np.abs(resized[i:i + 112, :112, 0] - crop[..., 0]).mean() for i in range(17)]))
    x0 = int(np.argmin([np.abs(resized[:112, j:j + 112, 1] - crop[..., 1]).mean() for j in range(59)]))
    np.testing.assert_array_equal(crop, resized[y:y + 112, x0:x0 + 112])
    offsets.add((y, x0))
  assert len(offsets) > 1


def test_fast_path_is_bit_identical_decode_into_the_crop_window(tmp_path):
  """I3D (spec short side 256) on records of any stored size, and C3D on records stored at its own 128: the
  frames are decoded straight into the crop window (`decode_and_crop_jpeg`), bit for bit, at test (centre) and
  at training (random window, found by search)."""
  for model, (height, width), crop in (('i3d_rgb', (40, 56), 32), ('i3d_rgb', (256, 340), 224),
                                       ('c3d', (128, 170), 112)):
    shard, jpeg = _ramp_records(tmp_path, height, width, n=4)
    ds = make_dataset(shard, model, False, 1, crop_size=crop, num_frames=4)
    x, _ = next(iter(ds))
    y0, x0 = (height - crop) // 2, (width - crop) // 2
    window = tf.image.decode_and_crop_jpeg(jpeg, [y0, x0, crop, crop], channels=3).numpy()
    np.testing.assert_array_equal(_levels(x[0]).reshape((-1, crop, crop, 3)),
                                  np.broadcast_to(window, (4 if model != 'c3d' else 60, crop, crop, 3)))
    train = make_dataset(shard, model, True, 1, crop_size=crop, num_frames=2, seed=1, deterministic=True)
    full = tf.io.decode_jpeg(jpeg, channels=3).numpy().astype(np.int64)
    for x, _ in train.take(3):
      frame = _levels(x[0, 0])
      if frame[0, 0, 1] > frame[0, -1, 1]:  # the column ramp runs backwards: flipped
        frame = frame[:, ::-1]
      # The offsets from the ramps (rows: channel 0, columns: channel 1), then the exact window near them.
      i = int(np.argmin([np.abs(full[k:k + crop, :crop, 0] - frame[..., 0]).mean() for k in range(height - crop + 1)]))
      j = int(np.argmin([np.abs(full[:crop, k:k + crop, 1] - frame[..., 1]).mean() for k in range(width - crop + 1)]))
      found = [(a, b) for a in range(max(i - 1, 0), min(i + 2, height - crop + 1))
               for b in range(max(j - 1, 0), min(j + 2, width - crop + 1))
               if np.array_equal(frame, tf.image.decode_and_crop_jpeg(jpeg, [a, b, crop, crop], channels=3).numpy())]
      assert found, (model, height, width)


def test_resized_size_is_the_video_decoders_rule():
  sizes = [(256, 340), (340, 256), (240, 320), (240, 426), (360, 480), (101, 203), (40, 56), (3, 1000), (57, 57),
           (1000, 3), (255, 383)]
  for short_side in (128, 256, 112, 7):
    for h, w in sizes:
      got = tuple(int(v) for v in pp.resized_size(h, w, short_side))
      assert got == resized_shape(h, w, short_side), (h, w, short_side)


def test_resize_frames_is_opencv_bilinear_within_one_level():
  frames = np.stack([smooth_image(256, 340, seed=s) for s in range(2)])
  for h, w in ((128, 170), (100, 133), (37, 52), (300, 398)):
    got = pp.resize_frames(tf.constant(frames), h, w).numpy().astype(np.int64)
    want = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames]).astype(np.int64)
    assert got.shape == (2, h, w, 3)
    assert np.abs(got - want).max() <= 1


def test_c3d_crop_override_larger_than_its_short_side_is_refused(tmp_path):
  shard, _ = _ramp_records(tmp_path, 256, 340, n=2)
  with pytest.raises(input_pipeline.CropTooLargeError) as e:
    make_dataset(shard, 'c3d', False, 1, crop_size=160)
  assert str(e.value) == (f'{shard}: the model crops from frames resized to short side 128 (its Table 1 input spec), '
                          'smaller than the 160x160 crop: pass --crop_size <= 128')
  # Stored frames smaller than the crop are no obstacle when they are resized first (upsampled to 128).
  small, _ = _ramp_records(tmp_path, 100, 140, n=2)
  x, _ = next(iter(make_dataset(small, 'c3d', False, 1, num_frames=2)))
  assert x.shape == (1, 15, 2, 112, 112, 3)


def test_a_resizing_spec_refuses_to_resize_stored_flow(tmp_path):
  """No registered flow model resizes; a spec that would (flow vectors are in stored pixels) gets a message."""
  spec = InputSpec((RGB, FLOW), train=ClipSpec(2), test=ClipSpec(2), crop_size=16, resize_short_side=20)
  frames = np.zeros((4, 40, 56, 3), np.uint8)
  flow = np.full((3, 40, 56, 2), 128, np.uint8)
  serialized = tf.constant(fmt.serialize(fmt.encode_video(frames, flow, video_id='f', label_index=0)))
  args = (tf.constant([0, 0]), spec, spec.test, False, 16)
  with pytest.raises(tf.errors.InvalidArgumentError, match='stored flow cannot be resized'):
    input_pipeline.parse_and_sample(serialized, *args)
  at_20 = fmt.serialize(fmt.encode_video(frames[:, :20, :28], flow[:, :20, :28], video_id='f', label_index=0))
  inputs, _ = input_pipeline.parse_and_sample(tf.constant(at_20), *args)  # stored at the spec's size: no resize
  assert inputs[RGB].shape == (2, 16, 16, 3) and inputs[FLOW].shape == (2, 16, 16, 2)
