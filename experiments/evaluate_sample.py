r"""The official kinetics-i3d `evaluate_sample.py` on our model: classifies the v_CricketShot sample.

  git clone https://github.com/deepmind/kinetics-i3d && (cd kinetics-i3d && git lfs pull)
  python experiments/evaluate_sample.py --eval_type=joint \
      --rgb_checkpoint=kinetics-i3d/data/checkpoints/rgb_imagenet/model.ckpt \
      --flow_checkpoint=kinetics-i3d/data/checkpoints/flow_imagenet/model.ckpt \
      --rgb_sample=kinetics-i3d/data/v_CricketShot_g04_c01_rgb.npy \
      --flow_sample=kinetics-i3d/data/v_CricketShot_g04_c01_flow.npy

or just `--kinetics_i3d_dir=kinetics-i3d [--noimagenet_pretrained]` for the official default paths.
Standard output is exactly the official printout (compare with kinetics-i3d out/imagenet_joint.txt);
progress and the one-line summary go to the log (stderr).
"""

import os
import time

from absl import app
from absl import flags
from absl import logging

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity
from i3d_tf.checkpoints import sample as S

_EVAL_TYPE = flags.DEFINE_enum('eval_type', 'joint', list(S.EVAL_TYPES), 'Stream(s); joint sums the logits.')
_RGB_CHECKPOINT = flags.DEFINE_string('rgb_checkpoint', None, 'RGB checkpoint prefix or .weights.h5.')
_FLOW_CHECKPOINT = flags.DEFINE_string('flow_checkpoint', None, 'Flow checkpoint prefix or .weights.h5.')
_RGB_SAMPLE = flags.DEFINE_string('rgb_sample', None, 'RGB input .npy [1, T, 224, 224, 3] in [-1, 1].')
_FLOW_SAMPLE = flags.DEFINE_string('flow_sample', None, 'Flow input .npy [1, T, 224, 224, 2] in [-1, 1].')
_KINETICS_I3D_DIR = flags.DEFINE_string('kinetics_i3d_dir', None, 'A kinetics-i3d clone (git-lfs pulled): '
                                        'default checkpoint and sample paths under its data/.')
_IMAGENET = flags.DEFINE_boolean('imagenet_pretrained', True, 'With --kinetics_i3d_dir: the *_imagenet '
                                 'checkpoints (the official default) rather than *_scratch.')
_LABEL_MAP = flags.DEFINE_string('label_map', None, 'Class names, one per line (default: the Kinetics-400 '
                                 'or -600 names shipped in data_pipelines/label_maps).')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 400, 'Classes of a .weights.h5 checkpoint.')
_SOURCE = flags.DEFINE_enum('source', 'deepmind', ['deepmind', 'pytorch_i3d'], 'Checkpoint kind.')


def _path(flag, *default):
  if flag.value:
    return flag.value
  if _KINETICS_I3D_DIR.value:
    return os.path.join(_KINETICS_I3D_DIR.value, 'data', *default)
  raise app.UsageError(f'--eval_type={_EVAL_TYPE.value} needs --{flag.name} (or --kinetics_i3d_dir)')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  start = time.time()
  kind = 'imagenet' if _IMAGENET.value else 'scratch'
  models, samples = {}, {}
  for modality, ckpt_flag, sample_flag in (('rgb', _RGB_CHECKPOINT, _RGB_SAMPLE),
                                           ('flow', _FLOW_CHECKPOINT, _FLOW_SAMPLE)):
    if _EVAL_TYPE.value not in (modality, 'joint'):
      continue
    ckpt = _path(ckpt_flag, 'checkpoints', f'{modality}_{kind}', 'model.ckpt')
    npy = _path(sample_flag, f'v_CricketShot_g04_c01_{modality}.npy')
    models[modality] = S.load_stream(ckpt, modality, _NUM_CLASSES.value, _SOURCE.value)
    logging.info('%s checkpoint restored from %s', modality, ckpt)
    samples[modality] = S.load_sample(npy, 3 if modality == 'rgb' else 2)
    logging.info('%s data loaded, shape=%s', modality, samples[modality].shape)
  logits = S.evaluate(_EVAL_TYPE.value, models.get('rgb'), models.get('flow'), samples.get('rgb'),
                      samples.get('flow'))
  labels = S.class_names(logits.size, _LABEL_MAP.value)
  text = S.format_top_classes(logits, labels)
  print(text)
  top = S.parse_top_classes(text)[1][0]
  logging.info('evaluate_sample %s: top class %r (p=%s) of %d, %.1fs', _EVAL_TYPE.value, top[2], top[0],
               logits.size, time.time() - start)


def console_main():
  """The `i3d-tf-evaluate-sample` console script (setup.py): the same as `python experiments/evaluate_sample.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
