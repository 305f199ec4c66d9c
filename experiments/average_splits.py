"""Averages the three standard splits of UCF-101 / HMDB-51 (Table 5 protocol) from their results.json files.

  python experiments/average_splits.py \
      --results=runs/ucf101_s1/eval/results.json,runs/ucf101_s2/eval/results.json,runs/ucf101_s3/eval/results.json \
      --output=runs/ucf101_average.json

`--results` takes a comma-separated list of files or a glob (e.g. 'runs/ucf101_s*/eval/results.json').
"""

import os
import sys

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.average_splits)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

import glob
import json
import sys

from absl import app
from absl import flags

from i3d_tf import evaluation

_RESULTS = flags.DEFINE_string('results', None, 'Comma-separated results.json paths or a glob.', required=True)
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the averaged JSON (optional).')
_EXPECTED = flags.DEFINE_integer('expected_splits', 3, 'Warn when a different number of splits is found.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  paths = []
  for item in _RESULTS.value.split(','):
    matches = sorted(glob.glob(item)) if any(c in item for c in '*?[') else [item]
    paths.extend(matches)
  results, bad = [], []
  for path in paths:
    try:
      with open(path, encoding='utf-8') as f:
        results.append(json.load(f))
    except (OSError, ValueError) as e:
      bad.append(path)
      print(f'average_splits: skipped {path}: {e}', file=sys.stderr)
  if not results:
    raise app.UsageError(f'No readable results.json among {paths}')
  if len(results) != _EXPECTED.value:
    print(f'average_splits: warning: {len(results)} split(s) found, expected {_EXPECTED.value}', file=sys.stderr)
  avg = evaluation.average_results(results)
  avg['sources'] = paths
  if _OUTPUT.value:
    evaluation.write_json(_OUTPUT.value, avg)
  for i, (path, r) in enumerate(zip([p for p in paths if p not in bad], results)):
    m = r.get('metrics', r)
    print(f'split {i + 1}: top-1 {100 * m["top1"]:.2f}%  ({path})')
  print(f'average of {avg["num_splits"]} split(s): top-1 {100 * avg["top1"]:.2f}% '
        f'(std {100 * avg["top1_std"]:.2f})' +
        (f', top-5 {100 * avg["top5"]:.2f}%' if 'top5' in avg else '') +
        (f', mean-class {100 * avg["mean_class_accuracy"]:.2f}%' if 'mean_class_accuracy' in avg else '') +
        (f' -> {_OUTPUT.value}' if _OUTPUT.value else ''))


def console_main():
  """The `i3d-tf-average-splits` console script (setup.py): the same as `python experiments/average_splits.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
