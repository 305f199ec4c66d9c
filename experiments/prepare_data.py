r"""Converts a video dataset into SequenceExample TFRecord shards (+ manifest.json).

Example:
  python experiments/prepare_data.py --dataset=ucf101 --video_dir=/data/UCF-101 \
    --split_dir=/data/ucfTrainTestlist --split=1 --subset=train --output_dir=/data/ucf101_tfr \
    --num_shards=16 --flow=tvl1 --workers=8
  python experiments/prepare_data.py --dataset=folder --video_dir=/tmp/videos --subset=demo \
    --output_dir=/tmp/tfr --flow=none --resize_short_side=128 --max_frames=64

`--runner=local` uses a process pool of `--workers`; any other value is an Apache Beam runner name
(DirectRunner, DataflowRunner, ...), extra Beam options go after `--`.

One class list per dataset: the first conversion into an --output_dir records it in manifest.json (or
--label_map gives it), and every later subset converted there is mapped by name against it.  A rerun
resumes only when nothing that determines the output changed; otherwise it stops with one line naming
what differs, unless --overwrite (docs/reruns.md).  A resumed run also converts again the videos earlier
runs recorded as failed, only those (--noretry_failed: left failed, counted in the summary line).
With --flow=tvl1_tf the frames are edge-padded to multiples of 32 for the flow (--flow_pad_multiple), so
frame sizes a few pixels apart compile once (docs/flow.md).  Exit status: 0 when every video converted, 1
when any failed (the summary line counts them); 2 with one line for arguments or an output folder that
cannot work.
"""

import os
import sys

if not __package__:  # run from a checkout (installed, this is i3d_tf.experiments.prepare_data)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from data_pipelines import constants  # noqa: E402

_DATASET = flags.DEFINE_enum('dataset', None, ['ucf101', 'hmdb51', 'kinetics400', 'kinetics600', 'folder'],
                             'Dataset layout.', required=True)
_VIDEO_DIR = flags.DEFINE_string('video_dir', None, 'Root of the video files.', required=True)
_SPLIT_DIR = flags.DEFINE_string('split_dir', None, 'Split / annotation files (not for folder).')
_SPLIT = flags.DEFINE_integer('split', 1, 'UCF-101 / HMDB-51 split (1, 2 or 3).')
_SUBSET = flags.DEFINE_string('subset', 'train', 'train | test (| val for Kinetics); names the output; for '
                              'Kinetics also selects the CSV rows of that split (test: val rows if none).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where shards and manifest.json go.', required=True)
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 1, 'Number of output shards.')
_FLOW, _FLOW_PARAMS = cli.define_flow_flags('flow', allow_none=True)
_FLOW_PAD = flags.DEFINE_integer(
    'flow_pad_multiple', None, 'Edge-pad frames to a multiple of this many pixels for the flow backend, the flow '
    f'cropped back: sizes a few pixels apart compile once. Default: {constants.FLOW_PAD_MULTIPLE} with '
    '--flow=tvl1_tf|tvl1_tf_fast, 1 (no padding) otherwise; 1 continues a tvl1_tf conversion begun before the '
    'flag existed (docs/flow.md).', lower_bound=1, upper_bound=constants.MAX_FLOW_PAD_MULTIPLE)
_WORKERS = flags.DEFINE_integer('workers', 1, 'Worker processes (local runner).')
_RUNNER = flags.DEFINE_string('runner', 'local', '"local" (process pool) or an Apache Beam runner name.')
_MAX_FRAMES = flags.DEFINE_integer('max_frames', None, 'Keep at most this many frames per video (at least 2: one '
                                   'flow field).', lower_bound=2)
_RESIZE = flags.DEFINE_integer('resize_short_side', constants.RESIZE_SHORT_SIDE, 'Smaller side after resizing (paper: 256).')
_FPS = flags.DEFINE_float('fps', constants.FPS, 'Output frame rate (paper: 25).')
_JPEG_QUALITY = flags.DEFINE_integer('jpeg_quality', 90, 'JPEG quality of RGB frames.')
_FLOW_FORMAT = flags.DEFINE_enum('flow_format', 'png', ['png', 'jpeg'], 'Flow image format (png: lossless).')
_LABEL_MAP = flags.DEFINE_string('label_map', None, 'The dataset\'s class list, honoured by every dataset: a text '
                                 'file (one class per line, line = index) or a manifest.json of an earlier '
                                 'conversion. Default: the list recorded in --output_dir\'s manifest.json, '
                                 'else the dataset\'s own (sorted class folders for folder).')
_CSV = flags.DEFINE_string('csv', None, 'Kinetics CSV (default <split_dir>/kinetics-<N>_<subset>.csv).')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Convert the subset again from scratch, removing its previous '
                               'shards, instead of refusing a rerun with other videos or settings.')
_RETRY_FAILED = flags.DEFINE_bool('retry_failed', True, 'A rerun converts again the videos earlier runs recorded as '
                                  'failed (only those; their files may have been replaced); --noretry_failed '
                                  'leaves them failed and counts them in the summary line.')


def _some(paths, n=5):
  return ', '.join(paths[:n]) + (f' and {len(paths) - n} more' if len(paths) > n else '')


def class_list(output_dir, label_map, subset, overwrite):
  """(labels or None, where they come from): --label_map, else the one recorded in output_dir."""
  from data_pipelines import conversion, datasets  # pylint: disable=g-import-not-at-top
  recorded = conversion.dataset_class_list(output_dir)
  where = os.path.join(output_dir, conversion.MANIFEST)
  if label_map is None:
    return (recorded[0], f'the class list of {where}') if recorded else (None, 'the class list')
  labels = datasets.read_label_map(label_map)
  if recorded and labels != recorded[0] and not (overwrite and recorded[1] == [subset]):
    diff = [f'class {i}: {a!r} vs {b!r}' for i, (a, b) in enumerate(zip(labels, recorded[0])) if a != b]
    raise app.UsageError(
        f'--label_map={label_map} differs from the class list {where} records for subset(s) '
        f'{", ".join(recorded[1])} ({len(labels)} vs {len(recorded[0])} classes'
        f'{f", first difference {diff[0]}" if diff else ""}): one dataset has one class list; drop --label_map '
        'or convert into a new --output_dir')
  return labels, f'--label_map={label_map}'


def main(argv):
  from data_pipelines import conversion, datasets  # pylint: disable=g-import-not-at-top
  from data_pipelines import flow as flow_lib  # pylint: disable=g-import-not-at-top
  if _RUNNER.value == 'local' and len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    flow_params = flow_lib.parse_flow_params(_FLOW_PARAMS.value)
    flow_lib.check_flow_params(_FLOW.value, flow_params)
  except ValueError as e:
    raise app.UsageError(f'--flow_params: {e}')
  try:
    pad = conversion.default_flow_pad_multiple(_FLOW.value, _FLOW_PAD.value)
  except ValueError as e:
    raise app.UsageError(str(e))
  try:
    conversion.check_subset_name(_SUBSET.value)  # before anything is listed, read or written
    labels, label_source = class_list(_OUTPUT_DIR.value, _LABEL_MAP.value, _SUBSET.value, _OVERWRITE.value)
    listing = datasets.list_dataset(_DATASET.value, _VIDEO_DIR.value, _SPLIT_DIR.value, _SPLIT.value,
                                    _SUBSET.value, labels, _CSV.value, label_source)
  except datasets.DatasetError as e:
    raise app.UsageError(str(e))
  options = conversion.ConversionOptions(fps=_FPS.value, resize_short_side=_RESIZE.value,
                                         max_frames=_MAX_FRAMES.value, flow=_FLOW.value, flow_params=flow_params,
                                         flow_pad_multiple=pad, jpeg_quality=_JPEG_QUALITY.value,
                                         flow_format=_FLOW_FORMAT.value)
  left_out = dict(non_video_files=listing.skipped_files, unlabelled_videos=listing.loose_videos)
  kwargs = dict(labels=listing.labels, overwrite=_OVERWRITE.value, extra=left_out, retry_failed=_RETRY_FAILED.value)
  try:
    if _RUNNER.value == 'local':
      summary = conversion.run_conversion(listing.entries, _OUTPUT_DIR.value, _SUBSET.value, _NUM_SHARDS.value,
                                          options, _WORKERS.value, **kwargs)
    else:
      from data_pipelines import beam_pipeline  # pylint: disable=g-import-not-at-top
      summary = beam_pipeline.run_beam(listing.entries, _OUTPUT_DIR.value, _SUBSET.value, _NUM_SHARDS.value,
                                       options, _RUNNER.value, argv[1:], **kwargs)
  except (conversion.OutputConflictError, datasets.DatasetError) as e:
    raise app.UsageError(str(e))
  if listing.skipped_files:
    print(f'skipped {len(listing.skipped_files)} file(s) that are not videos by their extension: '
          f'{_some(listing.skipped_files)}')
  if listing.loose_videos:
    print(f'NOT CONVERTED: {len(listing.loose_videos)} video(s) directly in {_VIDEO_DIR.value}, outside any class '
          f'folder (no label): {_some(listing.loose_videos)}; move them into a class folder')
  for line in conversion.failure_lines(_OUTPUT_DIR.value, _SUBSET.value):
    print(line)
  print(conversion.summary_line(summary))
  return 1 if summary['failed'] else 0  # 2 stays 'nothing tried' (cli.run); the count is in the summary line


def console_main():
  """The `i3d-tf-prepare-data` console script (setup.py): the same as `python experiments/prepare_data.py`."""
  cli.run(main)


if __name__ == '__main__':
  console_main()
