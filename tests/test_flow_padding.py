"""Whole-frame flow on frames edge-padded to a multiple of 32 (issue 15 lever 2: sizes a few pixels apart share
one TensorFlow TV-L1 compilation): geometry, the crop back, the conversion key and prepare_data's default."""

import json
import os

import numpy as np
import pytest

from data_pipelines import constants, conversion, datasets
from data_pipelines import tfrecord_format as fmt
from data_pipelines.flow import centred_padding, compute_flow, dequantize_flow
from data_pipelines.testing import write_video


@pytest.mark.parametrize('height, width, multiple, pad', [
    (256, 340, 32, (0, 0, 6, 6)), (256, 341, 32, (0, 0, 5, 6)), (256, 454, 32, (0, 0, 13, 13)),
    (256, 456, 32, (0, 0, 12, 12)), (256, 352, 32, (0, 0, 0, 0)), (388, 584, 32, (14, 14, 12, 12)),
    (256, 341, 1, (0, 0, 0, 0)), (33, 17, 8, (3, 4, 3, 4))])
def test_centred_padding(height, width, multiple, pad):
  assert centred_padding(height, width, multiple) == pad
  top, bottom, left, right = pad
  assert (height + top + bottom) % multiple == 0 and (width + left + right) % multiple == 0


@pytest.mark.parametrize('multiple', [0, -32, 2.5, 3200, True])
def test_bad_multiples_are_refused(multiple):
  if multiple not in (3200, True):  # any size can be padded; the conversion bounds it (a typo: 3200x3200)
    with pytest.raises(ValueError, match='integer >= 1'):
      centred_padding(256, 340, multiple)
  with pytest.raises(ValueError, match='flow_pad_multiple must be an integer from 1 .no padding. to 128'):
    conversion.ConversionOptions(flow_pad_multiple=multiple)


@pytest.mark.parametrize('height, width', [(40, 52), (37, 61), (64, 64)])
def test_padded_flow_is_cropped_back_pixel_for_pixel(height, width):
  """A backend that returns each pixel's own (gray) level as u: the crop back must put every field value over
  its own pixel, whatever the padding; the backend sees a multiple of 32."""
  rng = np.random.default_rng(1)
  frames = rng.integers(0, 256, (3, height, width, 3), dtype=np.uint8)
  seen = []

  def level_flow(gray):
    seen.append(gray.shape)
    out = np.zeros(gray[:-1].shape + (2,), np.float32)
    out[..., 0] = gray[:-1] / 255 * 40 - 20  # the level, as flow in [-20, 20]
    return out

  padded = compute_flow(frames, level_flow, pad_to_multiple=32)
  plain = compute_flow(frames, level_flow)
  assert seen == [(3, -(-height // 32) * 32, -(-width // 32) * 32), (3, height, width)]
  assert padded.shape == (2, height, width, 2)
  np.testing.assert_array_equal(padded, plain)


def test_padding_changes_real_flow_little(shared_data):
  """Whole-frame OpenCV TV-L1 (float) of 3 pairs of the 256x341 shared clip, on the frame padded to 256x352
  against the frame as it is: 0.014 px mean here; docs/flow.md states the change over 32 pairs of every shared
  clip (larger on fast motion: the pyramid's level sizes change with the frame size)."""
  from data_pipelines.flow import to_gray, tvl1_opencv
  from data_pipelines.video import decode_video
  frames = decode_video(os.path.join(shared_data, 'videos', 'v_ApplyEyeMakeup_g01_c01.avi'), max_frames=4).frames
  gray = to_gray(frames)
  assert gray.shape[1:] == (256, 341)
  padded_flow = []

  def keep(g):
    padded_flow.append(tvl1_opencv(g))
    return padded_flow[-1]

  compute_flow(frames, keep, pad_to_multiple=32)
  assert padded_flow[0].shape == (3, 256, 352, 2)
  padded = padded_flow[0][:, :, 5:5 + 341]
  diff = np.linalg.norm(padded - tvl1_opencv(gray), axis=-1)
  assert 0.005 < diff.mean() < 0.03, diff.mean()
  assert diff[:, :, 40:-40].mean() < diff.mean()  # more change near the padded sides


def test_conversion_records_pad_in_the_key_and_in_the_flow(tmp_path):
  root = tmp_path / 'v'
  (root / 'c').mkdir(parents=True)
  write_video(str(root / 'c' / 'a.avi'), 4)  # 48 x 64 -> 32 x 43 at short side 32
  entries = datasets.folder_entries(str(root))
  base = conversion.ConversionOptions(resize_short_side=32, flow='data_pipelines.testing:frame_size_flow')
  assert 'flow_pad_multiple' not in conversion.conversion_key(entries, base, 1)['options']  # as older keys
  padded = conversion.ConversionOptions(resize_short_side=32, flow='data_pipelines.testing:frame_size_flow',
                                        flow_pad_multiple=32)
  assert conversion.conversion_key(entries, padded, 1)['options']['flow_pad_multiple'] == 32
  out = str(tmp_path / 'out')
  for options, u in ((base, 43 / 8), (padded, 64 / 8)):  # the backend saw 43, then 64 columns
    conversion.run_conversion(entries, out, 'train', 1, options, labels=['c'], progress=False, overwrite=True)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    (record,) = [fmt.decode_record_numpy(r.numpy()) for r in tf.data.TFRecordDataset(
        os.path.join(out, conversion.shard_name('train', 0, 1)))]
    assert record['flow'].shape == (3, 32, 43, 2)
    np.testing.assert_allclose(dequantize_flow(record['flow'])[..., 0], u, atol=0.08)
  key = json.load(open(os.path.join(out, 'manifest.json')))['subsets']['train']['key']
  assert key['options']['flow_pad_multiple'] == 32
  # A run without padding over padded records: refused, naming the option and how to continue.
  with pytest.raises(conversion.OutputConflictError) as e:
    conversion.run_conversion(entries, out, 'train', 1, base, labels=['c'], progress=False)
  assert 'settings: flow_pad_multiple 32 -> 1 (--flow_pad_multiple=32 continues with the recorded flow). Rerun' in str(
      e.value)
  # Another backend too: both named, and no padding hint (the padding alone would not make it resume).
  with pytest.raises(conversion.OutputConflictError) as e:
    conversion.run_conversion(entries, out, 'train', 1, conversion.ConversionOptions(resize_short_side=32),
                              labels=['c'], progress=False)
  assert "settings: flow 'data_pipelines.testing:frame_size_flow' -> 'tvl1'; flow_pad_multiple 32 -> 1. Rerun" in str(
      e.value)
  # Another shard count too: no hint either (the padding alone would not make it resume).
  with pytest.raises(conversion.OutputConflictError) as e:
    conversion.run_conversion(entries, out, 'train', 2, base, labels=['c'], progress=False)
  assert 'settings: num_shards 1 -> 2; flow_pad_multiple 32 -> 1. Rerun' in str(e.value)
  assert conversion.ConversionOptions(flow_pad_multiple=np.int64(32)).flow_pad_multiple.__class__ is int


def test_prepare_data_pads_for_the_tensorflow_backends_only():
  assert constants.FLOW_PAD_MULTIPLE == 32
  assert [conversion.default_flow_pad_multiple(f) for f in ('tvl1_tf', 'tvl1_tf_fast', 'tvl1', 'none', 'a.b:c')] == [
      32, 32, 1, 1, 1]
  assert conversion.default_flow_pad_multiple('tvl1_tf', 1) == 1
  assert conversion.default_flow_pad_multiple('tvl1', 16) == 16
  assert conversion.default_flow_pad_multiple('none') == conversion.default_flow_pad_multiple('none', 1) == 1
  with pytest.raises(ValueError, match='--flow_pad_multiple=32 with --flow=none: there is no flow to pad'):
    conversion.default_flow_pad_multiple('none', 32)
