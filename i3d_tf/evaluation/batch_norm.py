"""Precise batch norm: re-estimating the moving statistics on training clips before evaluation.
"""

from typing import Iterable


def recalibrate_batch_norm(model, batches: Iterable, num_batches: int = 20) -> int:
  """"Precise BN": replaces every BatchNorm's moving statistics by their average over `num_batches` batches.

  Official I3D batch norm keeps moving averages with decay 0.999, which need thousands of steps to forget
  their initial values; a model trained for a few hundred steps (the demo) predicts from stale statistics
  at test.  This re-estimates them with the weights frozen (running `model(x, training=True)` with momentum
  k / (k + 1) at batch k, i.e. an exact mean of the batch statistics).  Returns the number of batches used.
  Paper runs (110k steps) do not need it.
  """
  import keras  # pylint: disable=g-import-not-at-top
  bns = [l for l in model._flatten_layers(include_self=False, recursive=True)  # pylint: disable=protected-access
         if isinstance(l, keras.layers.BatchNormalization)]
  if not bns:
    return 0
  saved = [bn.momentum for bn in bns]
  count = 0
  try:
    for element in batches:
      x = element[0] if isinstance(element, (tuple, list)) else element
      for bn in bns:
        bn.momentum = count / (count + 1.0)
      model(x, training=True)
      count += 1
      if count >= num_batches:
        break
  finally:
    for bn, m in zip(bns, saved):
      bn.momentum = m
  return count
