r"""Whole-video evaluation (Sec. 2.5): center crops over all frames, predictions averaged over time.

  # One stream:
  python experiments/evaluate.py --model=i3d_rgb --eval_data='/data/ucf101_tfr/test-*' --num_classes=101 \
      --checkpoint=runs/ucf101_rgb --output_dir=runs/ucf101_rgb/eval
  # Two-Stream I3D from separately trained streams (sum of logits, as the official release):
  python experiments/evaluate.py --model=two_stream_i3d --eval_data='/data/ucf101_tfr/test-*' \
      --num_classes=101 --rgb_checkpoint=runs/ucf101_rgb --flow_checkpoint=runs/ucf101_flow \
      --fusion=logits_sum --output_dir=runs/ucf101_two_stream/eval

Writes results.json (top-1, top-5, mean per-class accuracy), predictions.csv and confusion_matrix.png.
"""

import os
import sys

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.evaluate)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from data_pipelines import datasets  # noqa: E402
from i3d_tf import evaluation  # noqa: E402
from i3d_tf import precision as precision_lib  # noqa: E402
from i3d_tf.checkpoints import restore  # noqa: E402

_MODEL = flags.DEFINE_string('model', None, 'Registry name (i3d_rgb, i3d_flow, two_stream_i3d, baselines).',
                             required=True)
_EVAL_DATA = flags.DEFINE_string('eval_data', None, 'Test TFRecord glob (prepare_data output).', required=True)
_SOURCE = cli.define_model_source_flags()  # --checkpoint, --rgb_checkpoint, --flow_checkpoint, --num_classes, --fusion
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where results.json, predictions.csv, the PNG go.',
                                  required=True)
_CLASS_NAMES = flags.DEFINE_string('class_names', None, 'The model\'s class names: text file or JSON (default: '
                                   'the class list of its training data, from its model_dir; else the data\'s '
                                   'manifest.json). Records labelled with another list are refused.')
_CROP_SIZE = flags.DEFINE_integer('crop_size', None, 'Center crop (default: Table 1, 224).')
_NUM_FRAMES = flags.DEFINE_integer('num_frames', None, 'Test clip length (default: the whole video).')
_MAX_VIDEOS = flags.DEFINE_integer('max_videos', None, 'Evaluate at most this many videos.')
_SKIP_CORRUPT = flags.DEFINE_bool('skip_corrupt', True, 'Skip corrupt shards/records (reported).')
_BN_DATA = flags.DEFINE_string('bn_calibration_data', None, 'Training TFRecord glob: re-estimate batch-norm '
                                'statistics on it before testing ("precise BN", for short training runs).')
_BN_BATCHES = flags.DEFINE_integer('bn_calibration_batches', 20, 'Batches of 8 training clips for it.')
_BN_FRAMES = flags.DEFINE_integer('bn_calibration_frames', None, 'Clip length for it (default: Table 1).')
_ALLOW_RANDOM = flags.DEFINE_bool('allow_random_weights', False, 'Random weights (tests only).')
_PRECISION = cli.define_precision_flag('auto')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  two = _MODEL.value == 'two_stream_i3d' and not _SOURCE['checkpoint'].value
  if two and not (_SOURCE['rgb_checkpoint'].value and _SOURCE['flow_checkpoint'].value) and not _ALLOW_RANDOM.value:
    raise app.UsageError('two_stream_i3d needs --rgb_checkpoint and --flow_checkpoint (or --checkpoint).')
  if not two and not _SOURCE['checkpoint'].value and not _ALLOW_RANDOM.value:
    raise app.UsageError('--checkpoint is required.')
  start = time.time()
  num_classes = _SOURCE['num_classes'].value
  if num_classes is None:
    reference = _SOURCE['checkpoint'].value or _SOURCE['rgb_checkpoint'].value or _SOURCE['flow_checkpoint'].value
    if not reference:
      raise app.UsageError('--num_classes is needed with random weights (no checkpoint to read it from)')
    num_classes = restore.checkpoint_num_classes(reference)
  model = restore.restore_stream_models(_MODEL.value, num_classes, _SOURCE['checkpoint'].value,
                                           _SOURCE['rgb_checkpoint'].value, _SOURCE['flow_checkpoint'].value, _SOURCE['fusion'].value,
                                           allow_random_weights=_ALLOW_RANDOM.value, precision=_PRECISION.value)
  if _BN_DATA.value:
    from data_pipelines import make_dataset  # pylint: disable=g-import-not-at-top
    calib = make_dataset(_BN_DATA.value, _MODEL.value, training=True, batch_size=8, seed=0,
                         num_frames=_BN_FRAMES.value, crop_size=_CROP_SIZE.value)
    n = evaluation.recalibrate_batch_norm(model, calib, _BN_BATCHES.value)
    print(f'evaluate: batch-norm statistics re-estimated on {n} training batches')
  dataset = evaluation.records_with_video_ids(_EVAL_DATA.value, _MODEL.value, crop_size=_CROP_SIZE.value,
                                              num_frames=_NUM_FRAMES.value, skip_corrupt=_SKIP_CORRUPT.value)
  names = (datasets.read_label_map(_CLASS_NAMES.value) if _CLASS_NAMES.value else None)
  for source in (_SOURCE['checkpoint'].value, _SOURCE['rgb_checkpoint'].value):  # the model's own classes: its training data's
    names = names or evaluation.training_class_names(source)
  try:
    data_names = evaluation.manifest_class_names(_EVAL_DATA.value)
  except ValueError as e:  # folders of --eval_data recording different class lists
    raise app.UsageError(f'--eval_data={_EVAL_DATA.value}: {e}')
  names = names or data_names
  if names and len(names) != num_classes:
    raise app.UsageError(f'{len(names)} class names ({"--class_names" if _CLASS_NAMES.value else "from the data"}) '
                         f'for a {num_classes}-class model: the records were converted with another class '
                         'list (convert them with prepare_data --label_map=<the training data\'s manifest.json>), '
                         'or pass the model\'s --class_names')
  extra = {'model': _MODEL.value, 'eval_data': _EVAL_DATA.value, 'fusion': _SOURCE['fusion'].value if two or
           _MODEL.value == 'two_stream_i3d' else None, 'crop_size': _CROP_SIZE.value,
           'num_frames': _NUM_FRAMES.value, 'checkpoint': _SOURCE['checkpoint'].value,
           'bn_calibration_data': _BN_DATA.value,
           'rgb_checkpoint': _SOURCE['rgb_checkpoint'].value, 'flow_checkpoint': _SOURCE['flow_checkpoint'].value,
           'precision': precision_lib.model_precision(model),
           'protocol': 'whole video, center crop, time-averaged logits (Sec. 2.5); softmax averaged over views'}
  results = evaluation.evaluate(model, dataset, num_classes, _OUTPUT_DIR.value, names,
                                max_videos=_MAX_VIDEOS.value, extra=extra)
  failed, bad_shards = results.get('num_failed', 0), len(results.get('skipped_shards', ()))
  print(f'evaluate {_MODEL.value} ({extra["precision"]}): {evaluation.format_metrics(results["metrics"])}'
        f'{f", {failed} failed" if failed else ""}{f", {bad_shards} shard(s) skipped" if bad_shards else ""} '
        f'in {time.time() - start:.0f} s -> '
        f'{os.path.join(_OUTPUT_DIR.value, "results.json")}')


def console_main():
  """The `i3d-tf-evaluate` console script (setup.py): the same as `python experiments/evaluate.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
