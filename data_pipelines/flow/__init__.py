"""Optical flow for the flow stream (Sec. 2.5: TV-L1, truncated to [-20, 20], 8 bits): every piece in one package.

  backends.py   the backend table ('tvl1' OpenCV DualTVL1, 'tvl1_tf', 'tvl1_tf_fast', 'module:function'),
                truncation and 8-bit quantization, `compute_flow`, `--flow_params` parsing (numpy + OpenCV)
  params.py     TV-L1's parameters (OpenCV's names and defaults), pyramid sizes, the median's network
  tf_tvl1.py    TV-L1 as a TensorFlow program (XLA; batched, tf.data, GPU) (docs/flow.md)
  native.py     the same TV-L1 as a compiled C kernel for the CPU (_tvl1_native.c), one pair per call
  flo_io.py     Middlebury .flo files; metrics.py  endpoint / angular error; visualize.py  colour wheel, PNGs

The TensorFlow solver's names (`tvl1`, `tvl1_video`, ...) load TensorFlow on first use, so `import
data_pipelines.flow` in a conversion worker with the OpenCV backend or the native engine does not:

  flows = data_pipelines.flow.compute_flow(frames_rgb, 'tvl1')      # [N, H, W, 3] uint8 -> [N-1, H, W, 2]
  flow = data_pipelines.flow.tvl1(frames_a, frames_b)               # [B, H, W] -> [B, H, W, 2]
  flows = data_pipelines.flow.tvl1_video(gray, **data_pipelines.flow.FAST_BUDGET)
"""

import importlib

from data_pipelines.flow.backends import (FLOW_BACKENDS, FLOW_BOUND, NUM_LEVELS, FlowBackend, centred_padding,
                                          check_flow_params,
                                          compute_flow, dequantize_flow, get_flow_backend, parse_flow_params,
                                          prepare_flow_backend, quantize_flow, register_flow_backend, to_gray,
                                          flow_engine, gpu_device_node, tvl1_engine, tvl1_opencv, tvl1_tf, tvl1_tf_fast,
                                          without_engine)
from data_pipelines.flow import native
from data_pipelines.flow.params import FAST_BUDGET, TVL1Params, make_params, opencv_defaults, pyramid_sizes
from data_pipelines.flow.flo_io import read_flo, valid_mask, write_flo
from data_pipelines.flow.metrics import angular_error, endpoint_error
from data_pipelines.flow.visualize import color_wheel, flow_to_color, save_flow_png, save_png

_TF_TVL1 = ('centered_gradient', 'default_batch_size', 'default_concurrent_calls', 'median_filter', 'prepare_tvl1',
            'tvl1', 'tvl1_graph', 'tvl1_video', 'warp')

__all__ = sorted([
    'FLOW_BACKENDS', 'FLOW_BOUND', 'NUM_LEVELS', 'FlowBackend', 'centred_padding', 'check_flow_params', 'compute_flow',
    'dequantize_flow', 'get_flow_backend', 'parse_flow_params', 'prepare_flow_backend', 'quantize_flow',
    'register_flow_backend', 'to_gray', 'flow_engine', 'gpu_device_node', 'tvl1_engine', 'without_engine', 'native', 'tvl1_opencv', 'tvl1_tf', 'tvl1_tf_fast',
    'read_flo', 'valid_mask', 'write_flo', 'angular_error', 'endpoint_error', 'color_wheel', 'flow_to_color',
    'save_flow_png', 'save_png',
    'FAST_BUDGET', 'TVL1Params', 'make_params', 'opencv_defaults', 'pyramid_sizes', *_TF_TVL1])


def __getattr__(name):
  if name in _TF_TVL1:
    value = getattr(importlib.import_module('data_pipelines.flow.tf_tvl1'), name)
    globals()[name] = value
    return value
  raise AttributeError(f'module "data_pipelines.flow" has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_TF_TVL1))
