"""Small helpers for tests, smoke runs and demos: a tiny I3D-shaped model and synthetic labelled videos.

`tiny_i3d` keeps what the trainer relies on (Units with BN, the I3D head with dropout and the
`Logits.Conv3d_0c_1x1` classifier) at a few thousand parameters.  The learnable synthetic videos of
`--train_data=synthetic[:N]` are a data source of `data_pipelines.synthetic` (`learnable_dataset_fn`).

Run as a module, it trains once and writes weights and metrics (the subprocess half of the distributed and
kill/resume tests):

  python -m i3d_tf.training.testing --config='{"model": "i3d_rgb", ...}' --out=/tmp/w.npz --tiny
"""

import json
import os
import sys

import keras
import numpy as np

from i3d_tf.inception import build_head
from i3d_tf import layers as L

def tiny_i3d(num_classes: int, channels: int = 3, dropout_keep_prob: float = 0.5,
             synchronized_bn: bool = False, input_shape=None) -> keras.Model:
  """Two strided Units then the I3D head (capped 2x7x7 pool, dropout, Logits unit, time average).

  Args:
    num_classes: logits per video.
    channels: input channels (3 RGB, 2 flow) when `input_shape` is None.
    dropout_keep_prob: in (0, 1].
    synchronized_bn: cross-replica BN statistics.
    input_shape: (T, H, W, C); default (None, None, None, channels).

  Returns:
    A Keras model (batch, T, H, W, C) -> logits (batch, num_classes).
  """
  inputs = keras.Input(shape=input_shape or (None, None, None, channels), name='inputs')
  x = L.Unit(8, 3, 2, synchronized_bn=synchronized_bn, name='Conv3d_1a_7x7')(inputs)
  x = L.Unit(16, 3, 2, synchronized_bn=synchronized_bn, name='Conv3d_2c_3x3')(x)
  logits = build_head(x, num_classes, dropout_keep_prob=dropout_keep_prob)
  return keras.Model(inputs, logits, name='tiny_i3d')


def replica_spread(model: keras.Model, trainable_only: bool = False) -> float:
  """Max |replica_i - replica_0| over all variables of `model` (the trainable ones with `trainable_only`);
  0 outside MirroredStrategy."""
  worst = 0.0
  for v in (model.trainable_variables if trainable_only else model.variables):
    inner = getattr(v, 'value', v)
    values = getattr(inner, 'values', None)
    if values is None or len(values) < 2:
      continue
    ref = values[0].numpy()
    for other in values[1:]:
      worst = max(worst, float(np.max(np.abs(other.numpy().astype(np.float64) - ref))))
  return worst


def main(argv):
  """Trains once from `--config` (TrainConfig JSON); writes `--out` (.npz of the final weights, '/' in names
  as '|') and `<out>.json` (metrics, losses before training, history, replica spreads).  `argv` excludes the
  program name."""
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser()
  parser.add_argument('--config', required=True, help='TrainConfig as JSON')
  parser.add_argument('--out', required=True, help='.npz of the final weights (+ .json metrics)')
  parser.add_argument('--tiny', action='store_true', help='tiny_i3d instead of the registry model')
  parser.add_argument('--sigkill_at_step', type=int, default=0,
                      help='SIGKILL this process right after step N (tests of resuming)')
  args = parser.parse_args(argv)
  from i3d_tf.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
  config = TrainConfig.from_dict(json.loads(args.config))
  if config.strategy == 'mirrored' and config.num_logical_devices:
    from i3d_tf.training.loop import configure_logical_cpus  # pylint: disable=g-import-not-at-top
    configure_logical_cpus(config.num_logical_devices)
  from i3d_tf.training.loop import Trainer  # pylint: disable=g-import-not-at-top
  model_fn = None
  if args.tiny:
    model_fn = lambda n: tiny_i3d(n, dropout_keep_prob=config.dropout_keep_prob,  # noqa: E731
                                  synchronized_bn=config.synchronized_bn)
  after_step = None
  if args.sigkill_at_step:
    import signal  # pylint: disable=g-import-not-at-top

    def after_step(step):
      if step == args.sigkill_at_step:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

  trainer = Trainer(config, model_fn=model_fn, after_step=after_step)
  losses_before = trainer.evaluate() if trainer.eval_dataset_fn else {}
  metrics = trainer.train()
  metrics['replica_spread'] = replica_spread(trainer.model)
  metrics['replica_spread_trainable'] = replica_spread(trainer.model, trainable_only=True)
  metrics['eval_before'] = losses_before
  metrics['history'] = trainer.history
  from i3d_tf.training.transfer import weights_digest  # pylint: disable=g-import-not-at-top
  weights = weights_digest(trainer.model)
  tmp = args.out + '.tmp.npz'
  np.savez(tmp, **{k.replace('/', '|'): v for k, v in weights.items()})
  os.replace(tmp, args.out)
  with open(args.out + '.json', 'w') as f:
    json.dump(metrics, f, default=str)
  print('DONE', json.dumps({k: v for k, v in metrics.items() if k != 'history'}, default=str))


if __name__ == '__main__':
  main(sys.argv[1:])
