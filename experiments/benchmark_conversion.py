r"""Benchmark (not a test): `prepare_data --flow=tvl1_tf` against `--flow=tvl1` (OpenCV) on mixed-size videos.

Issue 15's third target: the whole `prepare_data` process (start-up, decoding, TV-L1 with its compilation,
JPEG/PNG encoding, shard writing) on a folder of videos of several frame sizes, ours at <= 0.5x OpenCV's
wall time with the first video's compilation included.  Each configuration runs in a fresh process:
OpenCV's DualTVL1; ours with its default engine (on a CPU the native kernel: nothing to compile); then ours
on the XLA engine (`--flow_params=engine=xla`; frames padded to multiples of 32, the default) with an empty
XLA cache; again with the cache the first run left (a rerun, another worker); without frame-size buckets
(`--flow_pad_multiple=1`: one compilation per frame size) with an empty cache of its own.  The shared clips
are linked into one class folder each (the `folder` dataset).
Writes benchmarks/conversion_<cpu|gpu>.json atomically.

  python experiments/benchmark_conversion.py --frames=65
"""

import os
import sys

if not __package__:  # run from a checkout
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import benchmarking, cli  # noqa: E402

cli.quiet_start()

import platform  # noqa: E402
import tempfile  # noqa: E402

from absl import flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_VIDEOS = flags.DEFINE_string('videos', os.path.join(ROOT, '..', 'shared', 'data', 'videos'),
                              'A folder, file or glob of videos (each becomes its own class folder).')
_FRAMES = flags.DEFINE_integer('frames', 65, 'Frames kept per video (--max_frames of prepare_data).')
_OUTPUT = flags.DEFINE_string('output', None, 'Result JSON (default benchmarks/conversion_<cpu|gpu>.json).')

CONFIGS = {  # name: (prepare_data flags, XLA cache folder: a new name starts empty)
    'reference: --flow=tvl1 (OpenCV DualTVL1)': (['--flow=tvl1'], 'xla_none'),
    'ours: --flow=tvl1_tf (its default engine)': (['--flow=tvl1_tf'], 'xla_native'),
    'ours, XLA engine: empty XLA cache': (['--flow=tvl1_tf', '--flow_params=engine=xla'], 'xla_padded'),
    'ours, XLA engine: XLA cache of the run above': (['--flow=tvl1_tf', '--flow_params=engine=xla'], 'xla_padded'),
    'ours, XLA engine, --flow_pad_multiple=1 (every frame size compiles), empty XLA cache': (
        ['--flow=tvl1_tf', '--flow_params=engine=xla', '--flow_pad_multiple=1'], 'xla_unpadded'),
}


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments {argv[1:]}')
  if _FRAMES.value < 2:
    raise cli.UsageError(f'--frames must be >= 2. Received: {_FRAMES.value}')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from data_pipelines.io_utils import atomic_write_json  # pylint: disable=g-import-not-at-top
  from data_pipelines.video import decode_video, find_videos  # pylint: disable=g-import-not-at-top
  paths = find_videos(_VIDEOS.value).paths
  if not paths:
    raise cli.UsageError(f'no video in {_VIDEOS.value}')
  sizes = ['x'.join(map(str, decode_video(p, max_frames=1).frames.shape[1:3])) for p in paths]
  print(f'prepare_data on {len(paths)} videos x {_FRAMES.value} frames ({", ".join(sizes)}), whole process each:',
        flush=True)
  runs = []
  with tempfile.TemporaryDirectory() as tmp:
    videos = os.path.join(tmp, 'videos')
    for i, path in enumerate(paths):
      os.makedirs(os.path.join(videos, f'class{i}'))
      os.symlink(os.path.abspath(path), os.path.join(videos, f'class{i}', os.path.basename(path)))
    for k, (name, (extra, cache)) in enumerate(CONFIGS.items()):
      env = dict(os.environ, TF_XLA_FLAGS=f'--tf_xla_persistent_cache_directory={os.path.join(tmp, cache)}')
      cmd = [sys.executable, os.path.join(ROOT, 'experiments', 'prepare_data.py'), '--dataset=folder',
             f'--video_dir={videos}', f'--output_dir={os.path.join(tmp, f"out{k}")}', '--subset=train',
             f'--max_frames={_FRAMES.value}'] + extra
      run = benchmarking.timed_process(cmd, env=env, cwd=ROOT)
      if run['returncode'] != 0:
        raise RuntimeError(f'{name}: prepare_data failed: {run["stderr"].strip().splitlines()[-3:]}')
      compiles = run['compile_lines']
      print(f'  {name}: {run["wall_seconds"]:.1f} s wall, {run["cpu_seconds"]:.1f} s CPU '
            f'({run["cpu_utilisation"]:.0%} of {os.cpu_count()} cores)'
            + (f'; {"; ".join(c[9:] for c in compiles)}' if compiles else ''), flush=True)
      runs.append({'config': name, 'flags': extra, 'wall_seconds': run['wall_seconds'],
                   'cpu_seconds': run['cpu_seconds'], 'cpu_utilisation': run['cpu_utilisation'],
                   'compile_lines': compiles, 'summary': run['stdout'].strip().splitlines()[-1:]})
  reference = runs[0]['wall_seconds']
  for r in runs:
    r['time_vs_reference'] = r['wall_seconds'] / reference
  print('| prepare_data (whole process) | wall s | CPU use | time vs reference |')
  print('|---|---|---|---|')
  for r in runs:
    print(f'| {r["config"]} | {r["wall_seconds"]:.1f} | {r["cpu_utilisation"]:.0%} | {r["time_vs_reference"]:.2f}x |')
  output = _OUTPUT.value or os.path.join(
      ROOT, 'benchmarks', f'conversion_{"gpu" if tf.config.list_physical_devices("GPU") else "cpu"}.json')
  atomic_write_json(output, {
      'machine': {'cpu': benchmarking.cpu_name(), 'cores': os.cpu_count(), 'platform': platform.platform()},
      'videos': [os.path.basename(p) for p in paths], 'frame_sizes': sizes, 'frames_per_video': _FRAMES.value,
      'reference': runs[0]['config'], 'runs': runs,
      'target': "issue 15: ours <= 0.5x the reference's wall time, first video's compilation included"})
  print(f'Wrote {output}')
  return 0


if __name__ == '__main__':
  cli.run(main)
