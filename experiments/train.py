r"""Trains a registered model (Sec. 2.5) or transfers one to new classes (Sec. 5); logic in i3d_tf.training.

  python experiments/train.py --model=i3d_rgb --num_classes=400 \
    --train_data='/data/kinetics/train-*' --eval_data='/data/kinetics/val-*' \
    --batch_size=8 --train_steps=110000 --learning_rate=0.1 --lr_schedule=piecewise \
    --init=inflate_2d:/weights/inception_v1.weights.h5 --model_dir=/runs/i3d_rgb_64x224_kinetics400

  # Smoke run on synthetic videos, two logical CPU replicas:
  python experiments/train.py --model=i3d_rgb --num_classes=3 --train_data=synthetic \
    --eval_data=synthetic --batch_size=4 --train_steps=4 --num_frames=8 --crop_size=32 \
    --strategy=mirrored --num_cpu_devices=2 --model_dir=/tmp/smoke

Restarting with the same --model_dir resumes from its latest checkpoint.  See docs/training.md.
"""

import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))  # run from a checkout

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

from absl import app
from absl import flags

_MODEL = flags.DEFINE_string('model', 'i3d_rgb', 'Registry name (i3d_tf.registry.list_models()).')
_TRAIN_DATA = flags.DEFINE_string('train_data', None, 'Training TFRecord glob (or "synthetic[:N]").',
                                  required=True)
_EVAL_DATA = flags.DEFINE_string('eval_data', None, 'Validation TFRecord glob (plateau schedule, eval).')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', None, 'Classes of the (new) classifier.', required=True)
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Global batch, split evenly over replicas.')
_TRAIN_STEPS = flags.DEFINE_integer('train_steps', 110_000, 'Total steps (paper: 110k on Kinetics).')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', 0.1, 'Base learning rate.')
_LR_SCHEDULE = flags.DEFINE_enum('lr_schedule', 'piecewise', ['piecewise', 'plateau', 'constant'],
                                 'piecewise: x0.1 at --lr_boundaries; plateau: x0.1 when eval loss stalls.')
_LR_BOUNDARIES = flags.DEFINE_list('lr_boundaries', ['97000', '108000'], 'Piecewise boundaries (steps).')
_PLATEAU_PATIENCE = flags.DEFINE_integer('plateau_patience', 3, 'Evaluations without improvement.')
_STRATEGY = flags.DEFINE_enum('strategy', 'default', ['default', 'mirrored', 'multi_worker'],
                              'tf.distribute strategy (multi_worker reads TF_CONFIG).')
_NUM_CPU_DEVICES = flags.DEFINE_integer('num_cpu_devices', 0, 'mirrored without GPUs: logical CPU replicas.')
_MIXED_PRECISION = flags.DEFINE_enum('mixed_precision', 'none', ['none', 'bfloat16', 'float16'],
                                     'Compute dtype; float16 uses dynamic loss scaling.')
_INPUT_DTYPE = flags.DEFINE_enum('input_dtype', 'uint8', ['uint8', 'float32'],
                                 'uint8: the pipeline ships raw levels, the step scales them on the device.')
_INIT = flags.DEFINE_string('init', 'scratch',
                            'scratch | inflate_2d:<2D InceptionV1 .weights.h5> | <checkpoint or model_dir>.')
_TRANSFER = flags.DEFINE_enum('transfer', 'none', ['none', 'fixed', 'full'],
                              'fixed: frozen backbone + new classifier; full: fine-tune all + new classifier.')
_MODEL_DIR = flags.DEFINE_string('model_dir', None, 'Checkpoints, config.json, summaries, curves.',
                                 required=True)
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed.')
_DETERMINISTIC = flags.DEFINE_boolean('deterministic', False, 'Deterministic ops and input order.')
_NUM_FRAMES = flags.DEFINE_integer('num_frames', None, 'Override the Table 1 training clip length.')
_CROP_SIZE = flags.DEFINE_integer('crop_size', None, 'Override the Table 1 crop size.')
_CHECKPOINT_EVERY = flags.DEFINE_integer('checkpoint_every', 1000, 'Steps between checkpoints.')
_EVAL_EVERY = flags.DEFINE_integer('eval_every', 1000, 'Steps between evaluations.')
_EVAL_STEPS = flags.DEFINE_integer('eval_steps', None, 'Batches per evaluation (default: all).')
_LOG_EVERY = flags.DEFINE_integer('log_every', 10, 'Steps between TensorBoard scalars.')
_SYNC_BN = flags.DEFINE_boolean('synchronized_bn', False, 'Batch-norm statistics across replicas.')
_WEIGHT_DECAY = flags.DEFINE_float('weight_decay', 1e-7, 'L2 on conv kernels: wd * sum(w^2) / 2.')
_DROPOUT_KEEP = flags.DEFINE_float('dropout_keep_prob', 0.5, 'Keep probability before the logits.')
_BN_MOMENTUM = flags.DEFINE_float('bn_momentum', None, 'Override the BN moving-statistics momentum (model: '
                                  '0.999); ~0.9 for runs of a few hundred steps.')
_JIT = flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the train step (slower on CPU).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _STRATEGY.value == 'mirrored' and _NUM_CPU_DEVICES.value:
    from i3d_tf.training.loop import configure_logical_cpus  # before any TF op
    configure_logical_cpus(_NUM_CPU_DEVICES.value)
  from i3d_tf import training
  config = training.TrainConfig(
      model=_MODEL.value, num_classes=_NUM_CLASSES.value, train_data=_TRAIN_DATA.value,
      eval_data=_EVAL_DATA.value, model_dir=_MODEL_DIR.value, batch_size=_BATCH_SIZE.value,
      train_steps=_TRAIN_STEPS.value, learning_rate=_LEARNING_RATE.value, lr_schedule=_LR_SCHEDULE.value,
      lr_boundaries=tuple(int(b) for b in _LR_BOUNDARIES.value), plateau_patience=_PLATEAU_PATIENCE.value,
      strategy=_STRATEGY.value, num_logical_devices=_NUM_CPU_DEVICES.value,
      mixed_precision=_MIXED_PRECISION.value, input_dtype=_INPUT_DTYPE.value, init=_INIT.value,
      transfer=_TRANSFER.value, seed=_SEED.value, deterministic=_DETERMINISTIC.value, num_frames=_NUM_FRAMES.value,
      crop_size=_CROP_SIZE.value, checkpoint_every=_CHECKPOINT_EVERY.value, eval_every=_EVAL_EVERY.value,
      eval_steps=_EVAL_STEPS.value, log_every=_LOG_EVERY.value, synchronized_bn=_SYNC_BN.value,
      weight_decay=_WEIGHT_DECAY.value, dropout_keep_prob=_DROPOUT_KEEP.value,
      bn_momentum=_BN_MOMENTUM.value, jit_compile=_JIT.value)
  metrics = training.train(config)
  summary = ' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in metrics.items())
  print(f'train: {config.model} step {metrics["step"]} in {config.model_dir}: {summary}')


if __name__ == '__main__':
  cli.run(main)
