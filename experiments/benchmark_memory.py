r"""Benchmark (not a test): peak memory of classify and extract_features against video length.

Generates 25 fps 340x256 videos of 1, 5 and 20 minutes (mp4v, a moving textured scene), then runs each binary
on each video in its own process and records the process's peak resident memory (ru_maxrss) and wall time.
The reference measured in the same run is what the binaries did before streaming: `decode_video`, which
holds the whole decoded video in memory (and extract_features then held a float32 copy as well).

  python experiments/benchmark_memory.py                      # 1, 5, 20 min; writes benchmarks/memory.json
  python experiments/benchmark_memory.py --minutes=1,5 --output=/tmp/memory.json

Target (issue 12): the 20-minute peak within 1.2x of the 1-minute peak, and under 3 GB.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, ROOT)  # run from a checkout

import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_MINUTES = flags.DEFINE_list('minutes', ['1', '5', '20'], 'Video lengths in minutes.')
_BINARIES = flags.DEFINE_list('binaries', ['classify', 'extract_features', 'decode_video'],
                              'What to measure (decode_video: the in-memory reference).')
_REFERENCE_MAX_MINUTES = flags.DEFINE_float('reference_max_minutes', 5, 'Skip the in-memory reference above this '
                                            'length (it needs about 15 GB per hour of video).')
_WORK_DIR = flags.DEFINE_string('work_dir', None, 'Where the generated videos go (default: a temporary folder).')
_OUTPUT = flags.DEFINE_string('output', os.path.join(ROOT, 'benchmarks', 'memory.json'), 'Result JSON.')
_UPDATE = flags.DEFINE_bool('update', False, 'Keep the rows of --output that this run does not measure again '
                            '(same binary and length), replacing the others.')

FPS, WIDTH, HEIGHT = 25, 340, 256
# Runs the command given as arguments and prints the child's peak RSS in KiB (Linux ru_maxrss).
PEAK = ('import resource, subprocess, sys; rc = subprocess.run([sys.executable] + sys.argv[1:], stdout=subprocess.DEVNULL, '
        'stderr=subprocess.PIPE).returncode; print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)')
DECODE = ('import sys; from data_pipelines.video import decode_video; v = decode_video(sys.argv[1]); '
          'print(v.frames.shape)')


def generate(path: str, minutes: float):
  """A textured background panning, with a square moving across: decodes like a real video."""
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  texture = cv2.GaussianBlur(rng.integers(0, 255, (HEIGHT, WIDTH * 2, 3), dtype=np.uint8), (9, 9), 0)
  writer = cv2.VideoWriter(path + '.tmp.mp4', cv2.VideoWriter_fourcc(*'mp4v'), FPS, (WIDTH, HEIGHT))
  for i in range(int(minutes * 60 * FPS)):
    x = i % WIDTH
    frame = np.ascontiguousarray(texture[:, x:x + WIDTH])
    s = (3 * i) % (WIDTH - 40)
    cv2.rectangle(frame, (s, 100), (s + 40, 160), (255, 255, 255), -1)
    writer.write(frame)
  writer.release()
  os.replace(path + '.tmp.mp4', path)


def measure(command, env):
  start = time.time()
  proc = subprocess.run([sys.executable, '-c', PEAK] + command, capture_output=True, text=True, env=env, cwd=ROOT)
  try:
    rc, kib = proc.stdout.split()
  except ValueError:
    raise RuntimeError(f'the measuring process failed: {proc.stderr[-2000:]}') from None
  return int(rc), int(kib) / 1024.0, time.time() - start


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
  from data_pipelines.io_utils import atomic_write_json  # pylint: disable=g-import-not-at-top
  pretrained.weights_path('kinetics400')  # fetched before timing
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
  work = _WORK_DIR.value or tempfile.mkdtemp(prefix='i3d_memory_')
  os.makedirs(work, exist_ok=True)
  rows = []
  for minutes in (float(m) for m in _MINUTES.value):
    video = os.path.join(work, f'{minutes:g}min_{WIDTH}x{HEIGHT}_{FPS}fps.mp4')
    if not os.path.exists(video):
      t = time.time()
      generate(video, minutes)
      print(f'generated {video} ({os.path.getsize(video) / 1e6:.0f} MB) in {time.time() - t:.0f} s', flush=True)
    frames = int(minutes * 60 * FPS)
    for binary in _BINARIES.value:
      if binary == 'decode_video' and minutes > _REFERENCE_MAX_MINUTES.value:
        continue
      if binary == 'classify':
        command = [os.path.join(ROOT, 'experiments', 'classify.py'), f'--videos={video}']
      elif binary == 'extract_features':
        features = os.path.join(work, f'features_{minutes:g}')
        shutil.rmtree(features, ignore_errors=True)  # a finished video would be skipped, not measured
        command = [os.path.join(ROOT, 'experiments', 'extract_features.py'), f'--videos={video}',
                   f'--output_dir={features}', '--streams=rgb', '--rgb_weights=kinetics400']
      else:
        command = ['-c', DECODE, video]
      rc, peak_mb, seconds = measure(command, env)
      row = {'binary': binary, 'minutes': minutes, 'frames': frames, 'peak_rss_mb': round(peak_mb, 1),
             'seconds': round(seconds, 1), 'frames_per_s': round(frames / seconds, 1), 'exit_status': rc}
      rows.append(row)
      print(json.dumps(row), flush=True)
  if _UPDATE.value and os.path.exists(_OUTPUT.value):
    with open(_OUTPUT.value, encoding='utf-8') as f:
      old = json.load(f)['rows']
    measured = {(r['binary'], r['minutes']) for r in rows}
    rows = sorted([r for r in old if (r['binary'], r['minutes']) not in measured] + rows,
                  key=lambda r: (r['minutes'], _BINARIES.default.index(r['binary'])
                                 if r['binary'] in _BINARIES.default else 99))
  summary = {}
  for binary in ('classify', 'extract_features'):
    peaks = {r['minutes']: r['peak_rss_mb'] for r in rows if r['binary'] == binary and r['exit_status'] == 0}
    if 1.0 in peaks and len(peaks) > 1:
      longest = max(peaks)
      summary[binary] = {'ratio_longest_to_1min': round(peaks[longest] / peaks[1.0], 3), 'longest_minutes': longest,
                         'max_peak_rss_mb': max(peaks.values())}
  from i3d_tf.benchmarking import cpu_name  # pylint: disable=g-import-not-at-top
  result = {'machine': {'cpu': cpu_name(), 'cores': os.cpu_count(), 'python': platform.python_version()},
            'video': f'{WIDTH}x{HEIGHT}, {FPS} fps, mp4v', 'settings': 'classify: defaults (i3d_rgb, kinetics400, '
            'chunk_frames 256, float32); extract_features: --streams=rgb --rgb_weights=kinetics400, stack/step 64',
            'rows': rows, 'summary': summary}
  atomic_write_json(_OUTPUT.value, result)
  print('| binary | video | peak RSS | wall time | frames/s |\n|---|---|---|---|---|')
  for r in rows:
    print(f'| {r["binary"]} | {r["minutes"]:g} min ({r["frames"]} frames) | {r["peak_rss_mb"]:,.0f} MB | '
          f'{r["seconds"]:.0f} s | {r["frames_per_s"]:.1f} |')
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
