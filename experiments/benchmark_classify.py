r"""Benchmark (not a test): `classify` speed in float32 and bfloat16, with the trained Kinetics-400 RGB I3D.

Steady state (each precision's model built and warmed up on the first clip), one process, both precisions
interleaved clip by clip so that a busy machine slows both alike; the float32 run is the reference measured
in the same run.  Per clip: wall seconds of `VideoClassifier.classify` (decode, resize, crop, forward,
scoring; min over --repeats), frames/s, the top-5 of each precision and the largest probability change.
Writes benchmarks/classify_<cpu|gpu>.json atomically.

  python experiments/benchmark_classify.py --videos=../shared/data/videos --repeats=3

Issue 15's target: a 10-second clip (250 frames at 25 fps) in <= 2.5 s in steady state on the reference CPU.
"""

import os
import sys

if not __package__:  # run from a checkout
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()

import platform  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

_VIDEOS = flags.DEFINE_string('videos', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                                     'shared', 'data', 'videos'), 'A folder, file or glob of videos.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed runs per clip and precision (the minimum is reported).')
_PRECISIONS = flags.DEFINE_list('precisions', ['float32', 'bfloat16'], 'Precisions; the first is the reference.')
_OUTPUT = flags.DEFINE_string('output', None, 'Result JSON (default benchmarks/classify_<cpu|gpu>.json).')


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments {argv[1:]}')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from data_pipelines.io_utils import atomic_write_json  # pylint: disable=g-import-not-at-top
  from data_pipelines.video import find_videos  # pylint: disable=g-import-not-at-top
  from i3d_tf import classification as C  # pylint: disable=g-import-not-at-top
  from i3d_tf import precision as P  # pylint: disable=g-import-not-at-top
  paths = find_videos(_VIDEOS.value).paths
  if not paths:
    raise cli.UsageError(f'no video in {_VIDEOS.value}')
  classifiers, build_seconds = {}, {}
  for p in _PRECISIONS.value:
    start = time.perf_counter()
    classifiers[p] = C.build_classifier('i3d_rgb', precision=p)
    build_seconds[p] = time.perf_counter() - start
    classifiers[p].classify(paths[0])  # trace + warm-up
  rows = []
  for path in paths:
    row = {'video': os.path.basename(path), 'seconds': {}, 'top5': {}, 'probabilities': {}}
    for _ in range(_REPEATS.value):
      for p, clf in classifiers.items():  # interleaved: a busy machine slows every precision alike
        prediction = clf.classify(path)
        row['seconds'][p] = min(row['seconds'].get(p, float('inf')), prediction.seconds)
        row['top5'][p] = [label for _, label, _ in prediction.top(5, clf.class_names)]
        row['probabilities'][p] = prediction.probabilities
        row['frames'], row['video_seconds'] = prediction.num_frames, round(prediction.duration, 2)
    reference = _PRECISIONS.value[0]
    row['frames_per_s'] = {p: row['frames'] / s for p, s in row['seconds'].items()}
    row['speed_vs_reference'] = {p: row['seconds'][reference] / s for p, s in row['seconds'].items()}
    row['same_top5'] = {p: t == row['top5'][reference] for p, t in row['top5'].items()}
    probabilities = row.pop('probabilities')
    row['max_probability_change'] = {p: float(np.abs(v - probabilities[reference]).max())
                                     for p, v in probabilities.items()}
    rows.append(row)
  device = 'gpu' if tf.config.list_physical_devices('GPU') else 'cpu'
  print(f'\nclassify, trained Kinetics-400 RGB I3D, whole video, steady state; {os.cpu_count()} cores '
        f'({platform.processor() or platform.machine()}; native bfloat16: {", ".join(P.cpu_bfloat16_flags()) or "no"})')
  print('| video | frames | precision | s | frames/s | vs ' + _PRECISIONS.value[0] + ' | same top-5 | max prob. change |')
  print('|---|---|---|---|---|---|---|---|')
  for r in rows:
    for p in _PRECISIONS.value:
      print(f'| {r["video"]} | {r["frames"]} | {p} | {r["seconds"][p]:.2f} | {r["frames_per_s"][p]:.0f} | '
            f'{r["speed_vs_reference"][p]:.2f}x | {r["same_top5"][p]} | {r["max_probability_change"][p]:.4f} |')
  totals = {p: sum(r['seconds'][p] for r in rows) for p in _PRECISIONS.value}
  for p in _PRECISIONS.value:
    print(f'{p}: {len(rows) / totals[p]:.2f} clips/s, {sum(r["frames"] for r in rows) / totals[p]:.0f} frames/s '
          f'({totals[_PRECISIONS.value[0]] / totals[p]:.2f}x); model built in {build_seconds[p]:.1f} s')
  output = _OUTPUT.value or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         'benchmarks', f'classify_{device}.json')
  atomic_write_json(output, {
      'machine': {'cores': os.cpu_count(), 'processor': platform.processor() or platform.machine(),
                  'platform': platform.platform(), 'cpu_bfloat16_flags': list(P.cpu_bfloat16_flags()),
                  'auto_precision': P.resolve_precision('auto')},
      'what': 'VideoClassifier.classify wall seconds per clip, steady state, min over repeats, precisions '
              'interleaved in one process', 'reference': _PRECISIONS.value[0], 'repeats': _REPEATS.value,
      'build_seconds': build_seconds, 'clips_per_s': {p: len(rows) / t for p, t in totals.items()},
      'results': rows})
  print(f'Wrote {output}')
  return 0


if __name__ == '__main__':
  cli.run(main)
