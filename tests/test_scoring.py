"""i3d_tf.scoring: the one home of the test-time rules (last step, view averaging, stream fusion)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from i3d_tf import scoring
from i3d_tf.layers import StreamFusion


def _np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_softmax_keeps_dtype_and_numpy():
  x = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
  out = scoring.softmax(x)
  assert isinstance(out, np.ndarray) and out.dtype == np.float64
  np.testing.assert_allclose(out, [[1, 0, 0], _np_softmax(np.array([1.0, 2.0, 3.0]))], atol=1e-15)
  assert scoring.softmax(x.astype(np.float32)).dtype == np.float32


def test_average_views_is_mean_of_softmax_not_of_logits():
  views = np.array([[[10.0, 0.0, 0.0], [-10.0, 2.0, 0.0]]])  # [B=1, V=2, K=3]
  probs = scoring.average_views(views)
  np.testing.assert_allclose(probs, _np_softmax(views).mean(1), rtol=1e-12)
  assert probs.argmax(-1).tolist() == [0] and views.mean(1).argmax(-1).tolist() == [1]
  tensor = scoring.average_views(tf.constant(views, tf.float32))  # the trainer's path: a tensor stays one
  assert isinstance(tensor, tf.Tensor)
  np.testing.assert_allclose(tensor.numpy(), probs, rtol=1e-6)
  with pytest.raises(ValueError, match='view_scores must be'):
    scoring.average_views(np.zeros(3))


def test_fuse_streams_by_hand_and_in_the_layer():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
  expected = {'logits_sum': a + b, 'logits_mean': (a + b) / 2,
              'softmax_mean': np.log((_np_softmax(a) + _np_softmax(b)) / 2 + scoring.LOG_EPSILON)}
  for fusion, want in expected.items():
    np.testing.assert_allclose(scoring.fuse_streams([a, b], fusion), want, rtol=1e-12)
    layer_out = keras.ops.convert_to_numpy(StreamFusion(fusion)([a.astype('float32'), b.astype('float32')]))
    assert layer_out.dtype == np.float32
    np.testing.assert_allclose(layer_out, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='fusion must be one of'):
    scoring.fuse_streams([a, b], 'max')
  with pytest.raises(ValueError, match='fusion must be one of'):
    StreamFusion('max')
