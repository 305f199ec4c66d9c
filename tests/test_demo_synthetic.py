"""The demo's pieces (fast): synthetic reversed-twin videos and the frame-averaging baseline's blindness to order."""

import os

import numpy as np
import pytest

from data_pipelines import synthetic
from data_pipelines.video import decode_video


def test_videos_are_real_files_and_twins_share_their_frames(tmp_path):
  out = synthetic.generate_dataset(str(tmp_path), videos_per_class=1, seed=3, num_frames=12, size=32)
  assert sorted(out) == sorted(synthetic.CLASSES) and len(synthetic.CLASSES) == 6
  for fwd, bwd in synthetic.PAIRS:
    a = decode_video(out[fwd][0][0], resize_short_side=None).frames
    b = decode_video(out[bwd][0][0], resize_short_side=None).frames
    assert a.shape == (12, 32, 32, 3)
    # MJPG codes frames independently: the reversed twin decodes to the same frames in reverse order.
    np.testing.assert_array_equal(a, b[::-1])
    assert not np.array_equal(a, b)  # ... but the order differs.
  assert not [p for _, _, files in os.walk(tmp_path) for p in files if '.tmp' in p]


def test_pairwise_order_accuracy():
  names = sorted(synthetic.CLASSES)  # folder datasets: alphabetical class indices
  idx = {c: i for i, c in enumerate(names)}
  labels = [idx['grow'], idx['shrink'], idx['appear'], idx['move_up']]
  scores = np.zeros((4, 6))
  scores[0, idx['grow']] = 1  # right twin
  scores[1, idx['grow']] = 1  # wrong twin
  scores[2, idx['move_up']] = 1  # neither twin scored: a tie counts one half
  scores[3, idx['move_up']] = 2
  scores[3, idx['move_down']] = 1
  assert synthetic.pairwise_order_accuracy(labels, scores, names) == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_frame_averaging_baseline_cannot_see_order():
  from i3d_tf.baselines import FrameAveragingCNN  # pylint: disable=g-import-not-at-top
  model = FrameAveragingCNN(6)
  x = np.random.default_rng(0).uniform(-1, 1, (1, 8, 32, 32, 3)).astype(np.float32)
  np.testing.assert_allclose(model(x).numpy(), model(x[:, ::-1]).numpy(), atol=1e-5)


@pytest.mark.parametrize('num_frames', [1, 0, -3])
def test_fewer_than_two_frames_is_one_clear_error(num_frames, tmp_path):
  """A 1-frame sequence divided by zero (ZeroDivisionError), 0 or fewer failed inside np.stack; a motion needs
  a first and a last frame (and prepare_data reports 1-frame videos as failed): one ValueError naming it."""
  for kind in ('move', 'grow', 'appear'):
    with pytest.raises(ValueError, match=rf'^num_frames must be an integer >= 2: .* Received: num_frames={num_frames}$'):
      synthetic.base_sequence(kind, np.random.default_rng(0), num_frames, 32)
  with pytest.raises(ValueError, match='num_frames must be an integer >= 2'):
    synthetic.generate_dataset(str(tmp_path / 'out'), 1, num_frames=num_frames, size=32)
  assert not os.path.exists(tmp_path / 'out')  # nothing written


def test_two_frames_are_the_motion_s_two_ends():
  for kind in ('move', 'grow', 'appear'):
    seq = synthetic.base_sequence(kind, np.random.default_rng(1), 2, 32)
    assert seq.shape == (2, 32, 32, 3) and seq.dtype == np.uint8
    assert np.abs(seq[0].astype(int) - seq[1]).sum() > 1000, kind  # start and end differ
