r"""Parameter counts of every registered model against Table 1, as a Markdown table.

Builds each registered model with the Kinetics classifier (400 classes) and its Table 1 input shape, counts
trainable parameters (BN moving statistics excluded, BN offsets/scales included), prints the table and writes
it atomically to --output.

  python experiments/model_table.py
  python experiments/model_table.py --num_classes=400 --output=docs/model_table.md
"""

import os
import sys

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.model_table)
  sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402

from i3d_tf import model_table  # noqa: E402
from data_pipelines.io_utils import atomic_write  # noqa: E402
from i3d_tf.registry import list_models  # noqa: E402

_NUM_CLASSES = flags.DEFINE_integer('num_classes', 400, 'Classifier size (Kinetics: 400).')
_OUTPUT = flags.DEFINE_string(
    'output', os.path.join(os.path.dirname(__file__), '..', 'docs', 'model_table.md'),
    'Markdown file to write (atomically); empty to only print.')
_MODELS = flags.DEFINE_list('models', None, 'Registered names to include (default: all).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  names = _MODELS.value or list_models()
  rows = []
  for name in names:
    row = model_table.parameter_row(name, _NUM_CLASSES.value)
    print(f'{name}: {row.ours:,} trainable parameters (Table 1: {row.paper})', flush=True)
    rows.append(row)
    keras.backend.clear_session()  # Free each model before building the next.
  table = model_table.markdown_table(rows, _NUM_CLASSES.value)
  print(table)
  if _OUTPUT.value:
    atomic_write(_OUTPUT.value, table)
  worst = max((abs(r.relative_error) for r in rows if r.relative_error is not None), default=0.0)
  print(f'model_table: {len(rows)} models, worst deviation from Table 1 {100 * worst:.1f}%'
        + (f', written to {os.path.normpath(_OUTPUT.value)}' if _OUTPUT.value else ''))


def console_main():
  """The `i3d-tf-model-table` console script (setup.py): the same as `python experiments/model_table.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
