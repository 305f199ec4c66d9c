"""Middlebury `.flo` optical-flow files (Baker et al., IJCV 2011, flow format).

Layout: the float32 tag 202021.25 ('PIEH' in ASCII), int32 width, int32 height,
then height * width * 2 float32 values (u, v interleaved, row-major), all
little-endian. Values above 1e9 mark unknown flow in ground-truth files.
"""


import numpy as np

from data_pipelines.io_utils import atomic_write

FLO_TAG = 202021.25
UNKNOWN_FLOW_THRESHOLD = 1e9


def read_flo(path) -> np.ndarray:
  """Reads a .flo file.

  Args:
    path: file path.

  Returns:
    float32 [H, W, 2] (u, v); unknown pixels keep their (> 1e9) values.

  Raises:
    ValueError: if the tag or the size is wrong.
  """
  with open(path, 'rb') as f:
    data = f.read()
  if len(data) < 12:
    raise ValueError(f'{path}: too short for a .flo header. Received: {len(data)} bytes')
  tag = np.frombuffer(data, '<f4', 1, 0)[0]
  if tag != np.float32(FLO_TAG):
    raise ValueError(f'{path}: bad .flo tag. Received: tag={tag}')
  w, h = (int(v) for v in np.frombuffer(data, '<i4', 2, 4))
  expected = 12 + 8 * w * h
  if w <= 0 or h <= 0 or len(data) != expected:
    raise ValueError(f'{path}: bad size. Received: width={w}, height={h}, bytes={len(data)}, '
                     f'expected={expected}')
  return np.frombuffer(data, '<f4', 2 * w * h, 12).reshape(h, w, 2).astype(np.float32)


def write_flo(path, flow) -> None:
  """Writes `flow`, float [H, W, 2] (u, v) in pixels, to the .flo file `path` atomically (temp file + rename).

  Raises:
    ValueError: `flow` is not [H, W, 2].
  """
  flow = np.asarray(flow)
  if flow.ndim != 3 or flow.shape[2] != 2:
    raise ValueError(f'flow must be [H, W, 2]. Received: shape={flow.shape}')
  h, w = flow.shape[:2]
  payload = (np.array([FLO_TAG], '<f4').tobytes() + np.array([w, h], '<i4').tobytes() +
             np.ascontiguousarray(flow, '<f4').tobytes())
  atomic_write(path, payload)


def valid_mask(flow) -> np.ndarray:
  """bool [H, W] of a [H, W, 2] `flow`: True where both components are known (|value| <= 1e9, finite)."""
  flow = np.asarray(flow)
  return np.all(np.isfinite(flow) & (np.abs(flow) <= UNKNOWN_FLOW_THRESHOLD), axis=-1)
