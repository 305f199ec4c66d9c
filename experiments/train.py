r"""Trains a registered model (Sec. 2.5) or transfers one to new classes (Sec. 5); logic in i3d_tf.training.

  python experiments/train.py --model=i3d_rgb --num_classes=400 \
    --train_data='/data/kinetics/train-*' --eval_data='/data/kinetics/val-*' \
    --batch_size=8 --train_steps=110000 --learning_rate=0.1 --lr_schedule=piecewise \
    --init=inflate_2d:/weights/inception_v1.weights.h5 --model_dir=/runs/i3d_rgb_64x224_kinetics400

  # Smoke run on synthetic videos, two logical CPU replicas:
  python experiments/train.py --model=i3d_rgb --num_classes=3 --train_data=synthetic \
    --eval_data=synthetic --batch_size=4 --train_steps=4 --num_frames=8 --crop_size=32 \
    --strategy=mirrored --num_logical_devices=2 --model_dir=/tmp/smoke

  # A paper row, or a previous run's settings, with flags on top:
  python experiments/train.py --config=/runs/x/config.json --model_dir=/runs/y --train_steps=2000

Every TrainConfig field is a flag of the same name and default.  Restarting with the same --model_dir
resumes from its latest checkpoint.  See docs/training.md.
"""

import os  # noqa: E402
import sys  # noqa: E402

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.train)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

from absl import app
from absl import flags

from i3d_tf.training.config import TrainConfig  # noqa: E402

cli.define_dataclass_flags(TrainConfig)  # one flag per TrainConfig field: same name, default and help
_CONFIG = flags.DEFINE_string('config', None, 'A JSON TrainConfig (e.g. a run\'s config.json); flags given on the '
                              'command line override its values.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = cli.dataclass_from_flags(TrainConfig, config_file=_CONFIG.value,
                                    required=('train_data', 'num_classes', 'model_dir'))
  if config.strategy == 'mirrored' and config.num_logical_devices:
    from i3d_tf.training.loop import configure_logical_cpus  # before any TF op
    configure_logical_cpus(config.num_logical_devices)
  from i3d_tf import training
  metrics = training.train(config)
  summary = ' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in metrics.items())
  print(f'train: {config.model} step {metrics["step"]} in {config.model_dir}: {summary}')


def console_main():
  """The `i3d-tf-train` console script (setup.py): the same as `python experiments/train.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
