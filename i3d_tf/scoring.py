"""From a model's outputs to one prediction per video: the paper's test-time rules, in one place.

Every consumer that turns logits into a prediction uses these functions: the trainer's validation
(`training/loop.py`), evaluation (`evaluation.py`), classification (`classification.py`), export and the
`StreamFusion` layer, so validation accuracy during training and the final evaluation follow one rule.

  * `last_step`: per-step outputs [B, T, K] are scored on their last step (Sec. 2.1, ConvNet+LSTM: "during
    testing we consider only the output on the last frame"); [B, K] passes unchanged.
  * `average_views`: several views of one video (test clips, flips) -> the mean of the views' softmax
    (Sec. 2.5: "the predictions are averaged"; the same rule as Model Garden's video classification).
  * `fuse_streams`: Two-Stream late fusion (Sec. 2.3-2.5): 'logits_sum' as the official kinetics-i3d
    `evaluate_sample.py`, 'logits_mean', or 'softmax_mean' (the paper's "averaged their predictions"),
    always returned as scores whose softmax is the fused prediction.

The functions are written with `keras.ops`, so they run on numpy arrays (and return numpy, keeping the
dtype: evaluation passes float64) and on tensors inside a `tf.function` (the trainer) alike.
"""

from typing import Sequence

import numpy as np

FUSIONS = ('logits_sum', 'logits_mean', 'softmax_mean')
LOG_EPSILON = 1e-12  # 'softmax_mean' returns log(mean probability + LOG_EPSILON)


def check_fusion(fusion: str) -> str:
  """`fusion` if it is one of FUSIONS; else ValueError naming the choices."""
  if fusion not in FUSIONS:
    raise ValueError(f'fusion must be one of {FUSIONS}. Received: fusion={fusion}')
  return fusion


def _ops():
  import keras  # pylint: disable=g-import-not-at-top
  return keras.ops


def _like(reference, value):
  """numpy in -> numpy out; a tensor stays a tensor."""
  if isinstance(reference, (np.ndarray, np.generic, list, tuple)):
    return np.asarray(_ops().convert_to_numpy(value))
  return value


def _as_tensor(x):
  if isinstance(x, (list, tuple)):
    x = np.asarray(x)
  return _ops().convert_to_tensor(x)


def softmax(scores, axis: int = -1):
  """Softmax over `axis` (default the class axis), in the input's float dtype.

  Args:
    scores: float array or tensor, any shape; numpy input gives numpy output.
  Returns:
    Probabilities of the same shape and dtype, summing to 1 over `axis`.
  """
  return _like(scores, _ops().softmax(_as_tensor(scores), axis=axis))


def last_step(logits):
  """The scores a clip is judged by: `logits` [B, K] unchanged, per-step [B, T, K] -> their last step [B, K].

  Sec. 2.1: the ConvNet+LSTM is trained on every step's output and tested "only [on] the output on the last
  frame".  Raises ValueError for any other rank.
  """
  rank = len(logits.shape)
  if rank == 3:
    return logits[:, -1]
  if rank != 2:
    raise ValueError(f'logits must be [B, K] or [B, T, K]. Received: logits.shape={tuple(logits.shape)}')
  return logits


def average_views(view_scores):
  """Several views of one video -> one prediction: `view_scores` (logits) [..., V, K] -> probabilities [..., K].

  The softmax of each view, averaged over the view axis (Sec. 2.5).  numpy float64 input is computed in
  float64; a tensor stays a tensor (the trainer's validation step).

  Raises:
    ValueError: `view_scores` of rank < 2.
  """
  ops = _ops()
  x = _as_tensor(view_scores)
  if len(x.shape) < 2:
    raise ValueError(f'view_scores must be [..., V, K]. Received: shape={tuple(x.shape)}')
  return _like(view_scores, ops.mean(ops.softmax(x, axis=-1), axis=-2))


def fuse_streams(stream_scores: Sequence, fusion: str = 'logits_sum'):
  """Late fusion of per-stream scores: a list of [..., K] -> scores [..., K] whose softmax is the prediction.

  Args:
    stream_scores: one array or tensor per stream, equal shapes.
    fusion: 'logits_sum' (the official release), 'logits_mean', or 'softmax_mean' (log of the mean of
      the streams' softmax, plus LOG_EPSILON).
  Raises:
    ValueError: an unknown `fusion` or no streams.
  """
  check_fusion(fusion)
  if not len(stream_scores):
    raise ValueError('fuse_streams needs at least one stream.')
  ops = _ops()
  stack = ops.stack([_as_tensor(s) for s in stream_scores], 0)
  if fusion == 'logits_sum':
    out = ops.sum(stack, axis=0)
  elif fusion == 'logits_mean':
    out = ops.mean(stack, axis=0)
  else:
    out = ops.log(ops.mean(ops.softmax(stack, axis=-1), axis=0) + LOG_EPSILON)
  return _like(stream_scores[0], out)
