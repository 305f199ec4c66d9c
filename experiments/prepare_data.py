r"""Converts a video dataset into SequenceExample TFRecord shards (+ manifest.json).

Example:
  python experiments/prepare_data.py --dataset=ucf101 --video_dir=/data/UCF-101 \
    --split_dir=/data/ucfTrainTestlist --split=1 --subset=train --output_dir=/data/ucf101_tfr \
    --num_shards=16 --flow=tvl1 --workers=8
  python experiments/prepare_data.py --dataset=folder --video_dir=/tmp/videos --subset=demo \
    --output_dir=/tmp/tfr --flow=none --resize_short_side=128 --max_frames=64

`--runner=local` uses a process pool of `--workers`; any other value is an Apache Beam runner name
(DirectRunner, DataflowRunner, ...), extra Beam options go after `--`.  Exit status: 0 when every video
converted, else the number of failed videos (capped at 100).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))  # run from a checkout

from absl import app
from absl import flags
from absl import logging

_DATASET = flags.DEFINE_enum('dataset', None, ['ucf101', 'hmdb51', 'kinetics400', 'kinetics600', 'folder'],
                             'Dataset layout.', required=True)
_VIDEO_DIR = flags.DEFINE_string('video_dir', None, 'Root of the video files.', required=True)
_SPLIT_DIR = flags.DEFINE_string('split_dir', None, 'Split / annotation files (not for folder).')
_SPLIT = flags.DEFINE_integer('split', 1, 'UCF-101 / HMDB-51 split (1, 2 or 3).')
_SUBSET = flags.DEFINE_string('subset', 'train', 'train | test (| val for Kinetics); names the output.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where shards and manifest.json go.', required=True)
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 1, 'Number of output shards.')
_FLOW = flags.DEFINE_enum('flow', 'tvl1', ['tvl1', 'tvl1_tf', 'tvl1_tf_fast', 'none'], 'Optical flow backend (tvl1: OpenCV; tvl1_tf_fast: ours, fixed FAST_BUDGET).')
_FLOW_PARAMS = flags.DEFINE_string('flow_params', '', 'TV-L1 parameters for the flow backend, e.g. '
                                    '"gamma=0.3,warps=3" (i3d_tf.flow.TVL1Params names; default: OpenCV\'s).')
_WORKERS = flags.DEFINE_integer('workers', 1, 'Worker processes (local runner).')
_RUNNER = flags.DEFINE_string('runner', 'local', '"local" (process pool) or an Apache Beam runner name.')
_MAX_FRAMES = flags.DEFINE_integer('max_frames', None, 'Keep at most this many frames per video.')
_RESIZE = flags.DEFINE_integer('resize_short_side', 256, 'Smaller side after resizing (paper: 256).')
_FPS = flags.DEFINE_float('fps', 25.0, 'Output frame rate (paper: 25).')
_JPEG_QUALITY = flags.DEFINE_integer('jpeg_quality', 90, 'JPEG quality of RGB frames.')
_FLOW_FORMAT = flags.DEFINE_enum('flow_format', 'png', ['png', 'jpeg'], 'Flow image format (png: lossless).')
_LABEL_MAP = flags.DEFINE_string('label_map', None, 'Kinetics label map (one class per line).')
_CSV = flags.DEFINE_string('csv', None, 'Kinetics CSV (default <split_dir>/kinetics-<N>_<subset>.csv).')


def main(argv):
  from data_pipelines import conversion, datasets  # pylint: disable=g-import-not-at-top
  entries, labels = datasets.dataset_entries(_DATASET.value, _VIDEO_DIR.value, _SPLIT_DIR.value, _SPLIT.value,
                                             _SUBSET.value, _LABEL_MAP.value, _CSV.value)
  from data_pipelines import flow as flow_lib  # pylint: disable=g-import-not-at-top
  try:
    flow_params = flow_lib.parse_flow_params(_FLOW_PARAMS.value)
    flow_lib.check_flow_params(_FLOW.value, flow_params)
  except ValueError as e:
    raise app.UsageError(f'--flow_params: {e}')
  options = conversion.ConversionOptions(fps=_FPS.value, resize_short_side=_RESIZE.value,
                                         max_frames=_MAX_FRAMES.value, flow=_FLOW.value, flow_params=flow_params,
                                         jpeg_quality=_JPEG_QUALITY.value, flow_format=_FLOW_FORMAT.value)
  logging.info('%d videos, %d classes -> %s', len(entries), len(labels), _OUTPUT_DIR.value)
  if _RUNNER.value == 'local':
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    summary = conversion.run_conversion(entries, _OUTPUT_DIR.value, _SUBSET.value, _NUM_SHARDS.value,
                                        options, _WORKERS.value, labels)
  else:
    from data_pipelines import beam_pipeline  # pylint: disable=g-import-not-at-top
    summary = beam_pipeline.run_beam(entries, _OUTPUT_DIR.value, _SUBSET.value, _NUM_SHARDS.value, options,
                                     _RUNNER.value, argv[1:], labels)
  for line in conversion.failure_lines(_OUTPUT_DIR.value):
    print(line)
  print(conversion.summary_line(summary))
  return min(summary['failed'], 100)


if __name__ == '__main__':
  app.run(main)
