r"""Saves the paper's Fig. 4 picture: all conv1 filters of an I3D stream, time left to right.

  python experiments/visualize_filters.py --model=i3d_rgb --num_classes=400 \
      --checkpoint=converted/rgb_imagenet.weights.h5 --output=conv1_rgb.png
"""

from absl import app
from absl import flags

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity
from i3d_tf import visualize

_MODEL = flags.DEFINE_enum('model', 'i3d_rgb', ['i3d_rgb', 'i3d_flow'], 'Registered I3D stream.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', None, 'Classes of the checkpoint (default: read from it).')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'A .weights.h5 file, a training model_dir or a '
                                  'checkpoint prefix.', required=True)
_OUTPUT = flags.DEFINE_string('output', 'conv1_filters.png', 'PNG to write.')
_COLUMNS = flags.DEFINE_integer('columns', 4, 'Blocks of filters side by side.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from i3d_tf.checkpoints import restore  # pylint: disable=g-import-not-at-top
  model = restore.load_model(_MODEL.value, _NUM_CLASSES.value, _CHECKPOINT.value)
  image = visualize.save_conv1_filters(model, _OUTPUT.value, columns=_COLUMNS.value)
  print(f'Wrote {_OUTPUT.value} ({image.shape[1]}x{image.shape[0]} px, '
        f'{model.get_layer("Conv3d_1a_7x7").filters} filters).')


def console_main():
  """The `i3d-tf-visualize-filters` console script (setup.py): the same as `python experiments/visualize_filters.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
