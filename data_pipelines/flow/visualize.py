"""Middlebury colour-wheel flow visualization (Baker et al., IJCV 2011, fig. 8).

Hue encodes direction, saturation the magnitude relative to the largest one:
zero flow is white; +u (right) is red, +v (down) orange-yellow, -u cyan-blue,
-v (up) blue-violet.
"""


import numpy as np

from data_pipelines.flow.flo_io import valid_mask
from data_pipelines.io_utils import save_png

# Segment lengths of the colour wheel: red-yellow, yellow-green, green-cyan,
# cyan-blue, blue-magenta, magenta-red (55 hues in all).
_RY, _YG, _GC, _CB, _BM, _MR = 15, 6, 4, 11, 13, 6


def color_wheel() -> np.ndarray:
  """float [55, 3] RGB colours (0..255) of the Middlebury wheel."""
  # (length, channel that changes, rising?, base colour at the segment start)
  segments = ((_RY, 1, True, (255, 0, 0)), (_YG, 0, False, (255, 255, 0)),
              (_GC, 2, True, (0, 255, 0)), (_CB, 1, False, (0, 255, 255)),
              (_BM, 0, True, (0, 0, 255)), (_MR, 2, False, (255, 0, 255)))
  cols = []
  for n, channel, rising, base in segments:
    seg = np.tile(np.array(base, np.float64), (n, 1))
    ramp = np.floor(255 * np.arange(n) / n)
    seg[:, channel] = ramp if rising else 255 - ramp
    cols.append(seg)
  return np.concatenate(cols)


def flow_to_color(flow, max_magnitude=None) -> np.ndarray:
  """Colours a flow field.

  Args:
    flow: float [H, W, 2] (u, v); unknown values (> 1e9, non-finite) become black.
    max_magnitude: magnitude mapped to full saturation; None: the largest known one.

  Returns:
    uint8 [H, W, 3] RGB.
  """
  flow = np.asarray(flow, np.float64)
  if flow.ndim != 3 or flow.shape[2] != 2:
    raise ValueError(f'flow must be [H, W, 2]. Received: shape={flow.shape}')
  known = valid_mask(flow)
  u = np.where(known, flow[..., 0], 0.0)
  v = np.where(known, flow[..., 1], 0.0)
  mag = np.sqrt(u * u + v * v)
  if max_magnitude is None:
    max_magnitude = mag.max() if mag.size else 0.0
  scale = max_magnitude if max_magnitude > 0 else 1.0
  u, v, mag = u / scale, v / scale, mag / scale
  wheel = color_wheel()
  n = wheel.shape[0]
  angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]
  fk = (angle + 1) / 2 * (n - 1)
  k0 = np.floor(fk).astype(int)
  k1 = (k0 + 1) % n
  f = (fk - k0)[..., None]
  col = ((1 - f) * wheel[k0] + f * wheel[k1]) / 255.0
  m = mag[..., None]
  col = np.where(m <= 1, 1 - m * (1 - col), col * 0.75)
  out = np.floor(255 * col).astype(np.uint8)
  out[~known] = 0
  return out


def save_flow_png(path, flow, max_magnitude=None) -> None:
  """Saves `flow_to_color(flow, max_magnitude)` as an RGB PNG at `path` (float [H, W, 2] flow in pixels;
  `max_magnitude` None: the largest known magnitude)."""
  save_png(path, flow_to_color(flow, max_magnitude))
