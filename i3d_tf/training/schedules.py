"""Learning-rate schedules of Sec. 2.5 and the official release.

* 'plateau' (the paper): "a 10x reduction of learning rate when validation loss saturated".  A
  `PlateauController` sees the validation loss every `eval_every` steps; after `patience` evaluations
  without an improvement of more than `min_delta` it multiplies the LR by `factor` (0.1).  Its state (best
  loss, evaluations since the best, current multiplier) lives in variables saved with the checkpoint.
* 'piecewise' (the official RGB recipe): 0.1, then 0.01 from step 97k, 0.001 from 108k.
* 'constant'.

The trainer sets the optimizer's LR variable from `learning_rate_at(step)` before every step, so all
three schedules share one optimizer and the LR is part of the optimizer checkpoint.
"""

import math
from typing import Sequence

import tensorflow as tf


def piecewise_lr(step: int, base: float, boundaries: Sequence[int], decay: float = 0.1) -> float:
  """base * decay ** (number of boundaries <= step): 0.1 / 0.01 (>= 97k) / 0.001 (>= 108k) officially."""
  return base * decay ** sum(1 for b in boundaries if step >= b)


class PlateauController(tf.Module):
  """Divides the LR by 1/factor when the monitored (validation) loss stops improving.

  Args:
    patience: evaluations without improvement tolerated; the next one reduces the LR.
    factor: LR multiplier on a plateau (0.1: "10x reduction").
    min_delta: an improvement must exceed this to reset the count.
    min_scale: the multiplier never goes below this.
  """

  def __init__(self, patience: int = 3, factor: float = 0.1, min_delta: float = 0.0,
               min_scale: float = 1e-6, name='plateau'):
    super().__init__(name=name)
    if patience < 1 or not 0 < factor < 1:
      raise ValueError(f'patience must be >= 1 and 0 < factor < 1. Received: patience={patience}, factor={factor}')
    self.patience, self.factor, self.min_delta, self.min_scale = patience, factor, min_delta, min_scale
    self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name='best')
    self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False, name='bad_evals')
    self.scale = tf.Variable(1.0, dtype=tf.float64, trainable=False, name='scale')
    self.reductions = tf.Variable(0, dtype=tf.int64, trainable=False, name='reductions')

  def update(self, loss: float) -> bool:
    """Records one evaluation's validation `loss`; returns True when it reduced the LR (after `patience`
    evaluations not `min_delta` below the best)."""
    loss = float(loss)
    if loss < float(self.best.numpy()) - self.min_delta:
      self.best.assign(loss)
      self.bad_evals.assign(0)
      return False
    self.bad_evals.assign_add(1)
    if int(self.bad_evals.numpy()) >= self.patience:
      self.scale.assign(max(float(self.scale.numpy()) * self.factor, self.min_scale))
      self.reductions.assign_add(1)
      self.bad_evals.assign(0)
      return True
    return False

  def lr(self, base: float) -> float:
    """`base` times the current multiplier (factor ** reductions, at least min_scale)."""
    return base * float(self.scale.numpy())


class LearningRate:
  """The configured schedule as a function of the step (plateau: of the controller's state)."""

  def __init__(self, kind: str, base: float, boundaries: Sequence[int] = (), decay: float = 0.1,
               controller: PlateauController = None):
    if kind not in ('piecewise', 'plateau', 'constant'):
      raise ValueError(f'Unknown lr_schedule. Received: lr_schedule={kind}')
    if kind == 'plateau' and controller is None:
      raise ValueError('plateau needs a PlateauController')
    self.kind, self.base, self.boundaries = kind, base, tuple(boundaries)
    self.decay, self.controller = decay, controller

  def __call__(self, step: int) -> float:
    if self.kind == 'piecewise':
      return piecewise_lr(step, self.base, self.boundaries, self.decay)
    if self.kind == 'plateau':
      return self.controller.lr(self.base)
    return self.base
