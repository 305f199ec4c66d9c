r"""Benchmark (not a test): video -> two-stream I3D features, end to end, ours against an in-project reference.

Issue 15's yardstick: what people assemble today is OpenCV's DualTVL1 flow plus an I3D in float32 (the
PyTorch ports), flow on the whole frame; the in-project reference stands in for it: `extract_features.py
--flow_backend=tvl1 --precision=float32 --flow_margin=-1`.  Ours: `--flow_backend=tvl1_tf --precision=auto`
with the default `--flow_margin` (flow on the center crop plus 64 px each side, padded to a multiple of 32: one
256x352 window for all three clips), on the CPU the native TV-L1 engine; then the same with the XLA engine
(`--flow_params=engine=xla`), with an empty XLA cache and with the cache that run left.  Each runs the whole
binary in a fresh process on the same videos (mixed frame sizes: the shared clips resize to 256x340, 256x454
and 256x341), so the figures include start-up, model build, TV-L1 compilation and every stage.  Per process: wall seconds, CPU seconds and utilisation
(CPU / wall / cores).  Then, in this process, each stage alone in steady state (decode + resize, flow,
RGB stream, flow stream), for both configurations.  Writes benchmarks/features_<cpu|gpu>.json atomically.

  python experiments/benchmark_features.py --videos=../shared/data/videos --frames=33

The RGB stream uses the trained Kinetics-400 weights; the flow stream has random weights (speed does not
depend on the values; the official flow weights are not installable here).
"""

import os
import sys

if not __package__:  # run from a checkout
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import benchmarking, cli  # noqa: E402

cli.quiet_start()

import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_VIDEOS = flags.DEFINE_string('videos', os.path.join(ROOT, '..', 'shared', 'data', 'videos'),
                              'A folder, file or glob of videos.')
_FRAMES = flags.DEFINE_integer('frames', 33, 'Frames per video (25 fps): frames - 1 flow fields, one window.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Timed repeats of each in-process stage (the minimum is kept).')
_STAGE_PAIRS = flags.DEFINE_integer('stage_pairs', 8, 'Flow pairs per video timed in the stage breakdown.')
_OUTPUT = flags.DEFINE_string('output', None, 'Result JSON (default benchmarks/features_<cpu|gpu>.json).')

CONFIGS = {  # name: extract_features flags
    'reference: OpenCV DualTVL1 on the whole frame + float32': ['--flow_backend=tvl1', '--precision=float32',
                                                                 '--flow_margin=-1'],
    'ours: tvl1_tf (its default engine) on the crop window + auto precision': ['--flow_backend=tvl1_tf',
                                                                               '--precision=auto'],
    'ours, XLA engine, empty XLA cache': ['--flow_backend=tvl1_tf', '--flow_params=engine=xla', '--precision=auto'],
    'ours, XLA engine, XLA cache of the run above': ['--flow_backend=tvl1_tf', '--flow_params=engine=xla',
                                                     '--precision=auto'],
}


def _end_to_end(name, extra, videos, frames, xla_cache, out_root):
  """Runs extract_features in a fresh process; returns wall and CPU seconds (children's rusage)."""
  out = os.path.join(out_root, f'out{len(os.listdir(out_root))}')
  cmd = [sys.executable, os.path.join(ROOT, 'experiments', 'extract_features.py'), f'--videos={videos}',
         f'--output_dir={out}', '--streams=rgb,flow', '--rgb_weights=kinetics400', '--allow_random_weights',
         f'--max_frames={frames}', f'--stack_size={frames - 1}', f'--step_size={frames - 1}'] + extra
  env = dict(os.environ, TF_XLA_FLAGS=f'--tf_xla_persistent_cache_directory={xla_cache}')
  run = benchmarking.timed_process(cmd, env=env, cwd=ROOT)
  if run['returncode'] != 0:
    raise RuntimeError(f'{name}: extract_features failed: {run["stderr"].strip().splitlines()[-1:]}')
  wall, cpu, compiles = run['wall_seconds'], run['cpu_seconds'], run['compile_lines']
  print(f'  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU ({run["cpu_utilisation"]:.0%} of '
        f'{os.cpu_count()} cores)' + (f'; {"; ".join(c[9:] for c in compiles)}' if compiles else ''), flush=True)
  return {'config': name, 'flags': extra, 'wall_seconds': wall, 'cpu_seconds': cpu,
          'cpu_utilisation': run['cpu_utilisation'], 'compile_lines': compiles,
          'summary': run['stdout'].strip().splitlines()[-1]}


def _best(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def _stages(paths, frames, repeats, stage_pairs):
  """Seconds per video of each stage alone, steady state (one untimed warm-up per shape)."""
  from data_pipelines import flow as flow_lib  # pylint: disable=g-import-not-at-top
  from data_pipelines import preprocessing as pp  # pylint: disable=g-import-not-at-top
  from data_pipelines.streaming import flow_window  # pylint: disable=g-import-not-at-top
  from data_pipelines.video import decode_video  # pylint: disable=g-import-not-at-top
  from i3d_tf import features  # pylint: disable=g-import-not-at-top
  extractors = {p: features.load_extractor({'rgb': 'kinetics400', 'flow': None}, allow_random_weights=True,
                                           precision=p) for p in ('float32', 'bfloat16')}
  backends = {'tvl1': flow_lib.get_flow_backend('tvl1'), 'tvl1_tf': flow_lib.get_flow_backend('tvl1_tf'),
              'xla': flow_lib.get_flow_backend('tvl1_tf', engine='xla')}
  rows = []
  for path in paths:
    row = {'video': os.path.basename(path)}
    row['decode_resize'] = _best(lambda: decode_video(path, max_frames=frames), repeats)
    video = decode_video(path, max_frames=frames).frames
    row['frame_size'] = list(video.shape[1:3])
    gray = flow_lib.to_gray(video[:stage_pairs + 1])
    window = flow_window(*video.shape[1:3])  # ours: the crop plus FLOW_MARGIN (--flow_margin's default)
    gray_window = flow_lib.to_gray(window.frames(video[:stage_pairs + 1]))
    row['flow_window'] = list(window.shape)
    for name, backend, g in (('tvl1', backends['tvl1'], gray), ('tvl1_tf_whole_frame', backends['tvl1_tf'], gray),
                             ('tvl1_tf', backends['tvl1_tf'], gray_window),
                             ('tvl1_tf_xla_engine', backends['xla'], gray_window)):
      backend(g[:2])  # compile / warm up at this size
      per_pair = _best(lambda backend=backend, g=g: backend(g), repeats) / stage_pairs
      row[f'flow_{name}'] = per_pair * (len(video) - 1)  # the video's frames - 1 pairs
    rgb = pp.test_frames(video[:-1])[None]
    flow = pp.to_model_range(pp.center_crop(np.full((len(video) - 1,) + video.shape[1:3] + (2,), 128, np.uint8),
                                            224))[None]
    for p, extractor in extractors.items():
      for stream, x in (('rgb', rgb), ('flow', flow)):
        extractor.batch_features(stream, x)  # trace / warm up
        row[f'{stream}_stream_{p}'] = _best(lambda e=extractor, s=stream, x=x: e.batch_features(s, x), repeats)
    rows.append(row)
    print(f'  {row["video"]} {row["frame_size"]}: ' + ', '.join(f'{k} {v:.2f} s' for k, v in row.items()
                                                               if isinstance(v, float)), flush=True)
  return rows


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments {argv[1:]}')
  if _FRAMES.value < 9:
    raise cli.UsageError(f'--frames must be >= 9. Received: {_FRAMES.value}')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from data_pipelines.io_utils import atomic_write_json  # pylint: disable=g-import-not-at-top
  from data_pipelines.video import find_videos  # pylint: disable=g-import-not-at-top
  from i3d_tf import precision as P  # pylint: disable=g-import-not-at-top
  paths = find_videos(_VIDEOS.value).paths
  if not paths:
    raise cli.UsageError(f'no video in {_VIDEOS.value}')
  frames = _FRAMES.value
  print(f'{len(paths)} videos x {frames} frames, two-stream features, whole process each:', flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    xla_cache, outputs = os.path.join(tmp, 'xla'), os.path.join(tmp, 'out')
    os.makedirs(outputs)
    runs = [_end_to_end(name, extra, _VIDEOS.value, frames, xla_cache, outputs) for name, extra in CONFIGS.items()]
  reference = runs[0]['wall_seconds']
  for r in runs:
    r['speed_vs_reference'] = reference / r['wall_seconds']
  print('Stages alone, steady state, seconds per video:', flush=True)
  stages = _stages(paths, frames, _REPEATS.value, _STAGE_PAIRS.value)
  totals = {k: sum(r[k] for r in stages) for k in stages[0] if isinstance(stages[0][k], float)}
  from data_pipelines.flow import tvl1_engine  # pylint: disable=g-import-not-at-top
  machine = {'cores': os.cpu_count(), 'processor': platform.processor() or platform.machine(),
             'tvl1_engine': tvl1_engine(),
             'platform': platform.platform(), 'cpu_bfloat16_flags': list(P.cpu_bfloat16_flags()),
             'auto_precision': P.resolve_precision('auto')}
  print(f'\nVideo -> two-stream features, {len(paths)} videos x {frames} frames (mixed sizes), '
        f'{os.cpu_count()} cores ({machine["processor"]}; native bfloat16: '
        f'{", ".join(machine["cpu_bfloat16_flags"]) or "no"})')
  print('| pipeline (whole process) | wall s | CPU use | vs reference |')
  print('|---|---|---|---|')
  for r in runs:
    print(f'| {r["config"]} | {r["wall_seconds"]:.1f} | {r["cpu_utilisation"]:.0%} | '
          f'{r["speed_vs_reference"]:.2f}x |')
  print('\n| stage (all videos, steady state) | reference s | ours s | ratio |')
  print('|---|---|---|---|')
  pairs = [('decode + resize', 'decode_resize', 'decode_resize'), ('flow', 'flow_tvl1', 'flow_tvl1_tf'),
           ('flow, XLA engine', 'flow_tvl1', 'flow_tvl1_tf_xla_engine'),
           ('RGB stream', 'rgb_stream_float32', 'rgb_stream_bfloat16'),
           ('flow stream', 'flow_stream_float32', 'flow_stream_bfloat16')]
  for label, ref, ours in pairs:
    print(f'| {label} | {totals[ref]:.2f} | {totals[ours]:.2f} | {totals[ref] / totals[ours]:.2f}x |')
  output = _OUTPUT.value or os.path.join(ROOT, 'benchmarks', f'features_{"gpu" if tf.config.list_physical_devices("GPU") else "cpu"}.json')
  atomic_write_json(output, {
      'machine': machine, 'videos': [os.path.basename(p) for p in paths], 'frames_per_video': frames,
      'reference': runs[0]['config'], 'end_to_end': runs, 'stages_seconds_per_video': stages,
      'stage_totals_seconds': totals,
      'note': 'flow stream with random weights; flow stage from --stage_pairs pairs per video, scaled to the '
              "video's frames - 1 pairs"})
  print(f'Wrote {output}')
  return 0


if __name__ == '__main__':
  cli.run(main)
