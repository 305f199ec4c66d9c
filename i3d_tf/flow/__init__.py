"""TV-L1 optical flow in TensorFlow, plus .flo I/O, metrics and visualization.

Self-contained: imports nothing else from i3d_tf. See docs/flow.md.

  flow = i3d_tf.flow.tvl1(frames_a, frames_b)           # [B, H, W] -> [B, H, W, 2]
  flows = i3d_tf.flow.tvl1_video(gray_frames)           # [N, H, W] -> [N-1, H, W, 2]
  flows = i3d_tf.flow.tvl1_video(gray_frames, **i3d_tf.flow.FAST_BUDGET)
"""

from i3d_tf.flow.flo_io import read_flo, valid_mask, write_flo
from i3d_tf.flow.metrics import angular_error, endpoint_error
from i3d_tf.flow.tvl1 import (FAST_BUDGET, TVL1Params, centered_gradient, default_batch_size,
                              make_params, median_filter, opencv_defaults, pyramid_sizes, tvl1, tvl1_graph,
                              tvl1_video, warp)
from i3d_tf.flow.visualize import color_wheel, flow_to_color, save_flow_png, save_png

__all__ = [
    'FAST_BUDGET', 'TVL1Params', 'angular_error', 'centered_gradient', 'color_wheel',
    'default_batch_size', 'endpoint_error', 'flow_to_color', 'make_params', 'median_filter', 'opencv_defaults',
    'pyramid_sizes', 'read_flo', 'save_flow_png', 'save_png', 'tvl1', 'tvl1_graph', 'tvl1_video',
    'valid_mask', 'warp', 'write_flo'
]
