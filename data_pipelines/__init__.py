"""Data side of i3d_tf: video decoding, TV-L1 flow, TFRecords, dataset readers, tf.data input pipelines.

Light modules (video, flow, datasets, conversion, tfrecord_format writers) import no TensorFlow at import
time; `make_dataset` and the preprocessing ops load it on first use.
"""

import importlib

from data_pipelines.datasets import (VideoEntry, dataset_entries, folder_entries, hmdb51_entries,
                                     kinetics_entries, ucf101_entries)
from data_pipelines.flow import (FLOW_BACKENDS, compute_flow, dequantize_flow, get_flow_backend,
                                 quantize_flow, register_flow_backend)
from data_pipelines.video import DecodedVideo, VideoDecodeError, decode_video

__all__ = ['VideoEntry', 'dataset_entries', 'folder_entries', 'hmdb51_entries', 'kinetics_entries',
           'ucf101_entries', 'FLOW_BACKENDS', 'compute_flow', 'dequantize_flow', 'get_flow_backend',
           'quantize_flow', 'register_flow_backend', 'DecodedVideo', 'VideoDecodeError', 'decode_video',
           'make_dataset', 'parse_sequence_example', 'eval_input_from_numpy', 'run_conversion', 'convert_video']

_LAZY = {
    'make_dataset': 'data_pipelines.input_pipeline',
    'parse_sequence_example': 'data_pipelines.tfrecord_format',
    'eval_input_from_numpy': 'data_pipelines.input_pipeline',
    'run_conversion': 'data_pipelines.conversion',
    'convert_video': 'data_pipelines.conversion',
}


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module "data_pipelines" has no attribute {name!r}')
