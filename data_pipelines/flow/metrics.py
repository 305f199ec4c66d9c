"""Flow accuracy measures of the Middlebury benchmark (Baker et al., IJCV 2011, sec. 4.1)."""

import numpy as np

from data_pipelines.flow.flo_io import valid_mask


def _prepare(flow, gt, mask):
  flow = np.asarray(flow, np.float64)
  gt = np.asarray(gt, np.float64)
  if flow.shape != gt.shape or flow.shape[-1] != 2:
    raise ValueError(f'flow and gt must both be [..., 2] of one shape. Received: '
                     f'flow.shape={flow.shape}, gt.shape={gt.shape}')
  m = valid_mask(gt)
  if mask is not None:
    m &= np.asarray(mask, bool)
  return flow[m], gt[m]


def endpoint_error(flow, gt, mask=None) -> float:
  """Average end-point error sqrt((u - u_gt)^2 + (v - v_gt)^2) in pixels over the known pixels.

  Args:
    flow: estimated flow [..., 2] (u, v) in pixels.
    gt: ground truth of the same shape; unknown values (> 1e9, non-finite) are left out.
    mask: optional bool [...]: further restricts the pixels averaged.

  Returns:
    The mean EPE (NaN when no pixel is left).

  Raises:
    ValueError: `flow` and `gt` differ in shape or are not [..., 2].
  """
  f, g = _prepare(flow, gt, mask)
  return float(np.mean(np.sqrt(np.sum((f - g) ** 2, axis=-1))))


def angular_error(flow, gt, mask=None) -> float:
  """Average angular error in degrees between (u, v, 1) and (u_gt, v_gt, 1) over the known pixels.

  `flow`, `gt` and `mask` as in `endpoint_error`, which also raises the same ValueError.
  """
  f, g = _prepare(flow, gt, mask)
  num = 1.0 + np.sum(f * g, axis=-1)
  den = np.sqrt(1.0 + np.sum(f * f, axis=-1)) * np.sqrt(1.0 + np.sum(g * g, axis=-1))
  return float(np.degrees(np.mean(np.arccos(np.clip(num / den, -1.0, 1.0)))))
