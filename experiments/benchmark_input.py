r"""Input-pipeline throughput: decoded + augmented frames/s for I3D training clips (not a test).

Converts the shared real clips (25 fps, short side 256, JPEG q90, no flow) into a temporary shard, then
times `make_dataset(..., 'i3d_rgb', training=True)` (64-frame clips, 224x224 random crop + flip) with all
cores and with one tf.data thread, for both outputs: 'uint8' (what the trainer takes: raw levels, scaled to
[-1, 1] in the replica step on the accelerator) and 'float32' (scaled to [-1, 1] on the CPU).  The headline
per-core figure is the trainer's configuration; benchmarks/input_pipeline.json (written atomically) has all.

Example:
  python experiments/benchmark_input.py --batches=20 --repeats=3 --batch_size=4
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))  # run from a checkout

from absl import app
from absl import flags

_BATCHES = flags.DEFINE_integer('batches', 20, 'Timed batches per configuration.')
_WARMUP = flags.DEFINE_integer('warmup', 10, 'Untimed batches first.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed windows per configuration; the median is reported.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 4, 'Clips per batch.')
_MODEL = flags.DEFINE_string('model', 'i3d_rgb', 'Model whose training clips are timed.')
_OUTPUT = flags.DEFINE_string('output', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                                     'benchmarks', 'input_pipeline.json'), 'Result file.')
_DCT = flags.DEFINE_enum('dct_method', '', ['', 'INTEGER_FAST', 'INTEGER_ACCURATE'], 'JPEG IDCT.')
_VIDEO_DIR = flags.DEFINE_string('video_dir', None, 'Videos to convert (default: shared/data/videos).')


def _time(ds, warmup, batches, repeats):
  """Median of `repeats` timed windows of `batches` batches each, after `warmup` (tf.data autotuning)."""
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  windows = []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    clips = frames = 0
    for _ in range(batches):
      x, _ = next(it)
      x = x['rgb'] if isinstance(x, dict) else x
      clips += int(x.shape[0])
      frames += int(x.shape[0]) * int(x.shape[1])
    windows.append((time.perf_counter() - t0, time.process_time() - c0))
  dt, cpu = sorted(windows)[len(windows) // 2]
  # CPU seconds of all our threads: frames per CPU-second is the per-core rate even on a shared machine.
  return dict(seconds=round(dt, 3), cpu_seconds=round(cpu, 3), clips=clips, frames=frames,
              clips_per_s=round(clips / dt, 2), frames_per_s=round(frames / dt, 1),
              frames_per_cpu_s=round(frames / cpu, 1),
              frames_per_s_windows=[round(frames / w, 1) for w, _ in windows])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from data_pipelines import conversion, datasets, make_dataset  # pylint: disable=g-import-not-at-top
  from i3d_tf.benchmarking import cpu_name  # pylint: disable=g-import-not-at-top
  from data_pipelines.io_utils import atomic_write_json  # pylint: disable=g-import-not-at-top
  from data_pipelines.testing import VIDEOS  # pylint: disable=g-import-not-at-top
  video_dir = _VIDEO_DIR.value or VIDEOS
  cores = os.cpu_count()
  with tempfile.TemporaryDirectory() as tmp:
    entries = [datasets.VideoEntry(os.path.splitext(n)[0], os.path.join(video_dir, n), 0, 'x')
               for n in sorted(os.listdir(video_dir))]
    summary = conversion.run_conversion(entries, tmp, 'bench', 1, conversion.ConversionOptions(flow='none'),
                                        progress=False)
    print(conversion.summary_line(summary))
    pattern = os.path.join(tmp, 'bench-*.tfrecord')
    results = {}
    for dtype in ('uint8', 'float32'):
      for name, threads in [('all_cores', None), ('one_thread', 1)]:
        ds = make_dataset(pattern, _MODEL.value, True, _BATCH_SIZE.value, seed=0, dct_method=_DCT.value,
                          output_dtype=dtype)
        if threads:
          options = tf.data.Options()
          options.threading.private_threadpool_size = threads
          options.threading.max_intra_op_parallelism = 1
          ds = ds.with_options(options)
        results[f'{dtype}_{name}'] = _time(ds, _WARMUP.value, _BATCHES.value, _REPEATS.value)
        print(dtype, name, results[f'{dtype}_{name}'])
  head = results['uint8_all_cores']
  result = dict(
      model=_MODEL.value, clip='64 frames, 224x224 random crop + flip from 256-short-side JPEG q90',
      headline='output_dtype=uint8 (the trainer default; [-1, 1] scaling runs in the replica step)',
      batch_size=_BATCH_SIZE.value, dct_method=_DCT.value or 'default', batches=_BATCHES.value,
      repeats=_REPEATS.value,
      cpu_count=cores, machine=cpu_name(), gpu='none', videos=summary['ok'], stored_frames=summary['frames'],
      frames_per_s_per_core=round(head['frames_per_s'] / cores, 1), frames_per_cpu_s=head['frames_per_cpu_s'],
      frames_per_s_one_thread=results['uint8_one_thread']['frames_per_s'],
      float32_frames_per_s_per_core=round(results['float32_all_cores']['frames_per_s'] / cores, 1),
      uint8_over_float32=round(head['frames_per_s'] / results['float32_all_cores']['frames_per_s'], 2),
      load_average_1min=round(os.getloadavg()[0], 2), target_frames_per_s_per_core=1500,
      tensorflow=tf.__version__, **results)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  atomic_write_json(_OUTPUT.value, result)
  print(f'{_MODEL.value} training input (uint8 out): {head["frames_per_s"]} frames/s on {cores} cores '
        f'({result["frames_per_s_per_core"]} per core, {result["frames_per_cpu_s"]} per CPU-second; one thread '
        f'{result["frames_per_s_one_thread"]}), {head["clips_per_s"]} clips/s; float32 out '
        f'{result["float32_frames_per_s_per_core"]} per core ({result["uint8_over_float32"]}x slower); '
        f'load average {result["load_average_1min"]} -> {_OUTPUT.value}')


if __name__ == '__main__':
  app.run(main)
