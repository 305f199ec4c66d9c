"""Training: config, schedules, the custom distributed loop and transfer helpers (Sec. 2.5, Sec. 5)."""

from i3d_tf.training.config import TrainConfig
from i3d_tf.training.loop import (Trainer, train, make_strategy, per_example_loss, l2_weight_decay, plot_curves,
                                  set_bn_momentum)
from i3d_tf.training.schedules import PlateauController, LearningRate, piecewise_lr
from i3d_tf.training.transfer import freeze_backbone, copy_backbone, initialize, weights_digest
# Restoring a run lives in `i3d_tf.checkpoints.restore`; its two entry points are also reachable from here.
from i3d_tf.checkpoints.restore import restore_model, resolve_checkpoint
