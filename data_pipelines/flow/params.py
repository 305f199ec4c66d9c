"""TV-L1 parameters and the pieces both engines share, without TensorFlow (`tf_tvl1`: the TensorFlow program;
`native`: the compiled CPU kernel).

Names and defaults mirror OpenCV's `cv::optflow::DualTVL1OpticalFlow` (docs/flow.md); a conversion worker with
the native engine imports this module and never TensorFlow.
"""

import dataclasses
import math

_MIN_LEVEL_SIZE = 16


@dataclasses.dataclass(frozen=True)
class TVL1Params:
  """TV-L1 parameters; names and defaults mirror OpenCV's DualTVL1OpticalFlow.

  The OpenCV getter each field mirrors is named in the comment; a test checks
  that these defaults equal what the getters of opencv-contrib 5.0 return.
  `early_stopping`, `interpolation`, `border` are ours.
  """
  tau: float = 0.25  # getTau: time step of the numerical scheme.
  lambda_: float = 0.15  # getLambda: weight of the data term.
  theta: float = 0.3  # getTheta: tightness of the u-v coupling.
  nscales: int = 5  # getScalesNumber: pyramid levels.
  warps: int = 5  # getWarpingsNumber: warpings per level.
  epsilon: float = 0.01  # getEpsilon: stopping threshold.
  inner_iterations: int = 30  # getInnerIterations.
  outer_iterations: int = 10  # getOuterIterations.
  scale_step: float = 0.8  # getScaleStep: downsampling factor per level.
  gamma: float = 0.0  # getGamma: weight of the illumination term (0: off).
  median_filtering: int = 5  # getMedianFiltering: median kernel (<= 1: off).
  use_initial_flow: bool = False  # getUseInitialFlow.
  early_stopping: bool = True  # False: run every inner/outer iteration.
  interpolation: str = 'bicubic'  # warping: 'bicubic' (OpenCV) or 'bilinear'.
  border: str = 'constant'  # warping outside the image: 'constant' (0) or 'replicate'.

  def validate(self):
    """Raises ValueError on a value of the wrong type (a float field takes a finite number, an int field an
    integer, a bool field true/false) or out of range."""
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.type is float:
        ok, what = (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value)), 'a finite number'
      elif field.type is int:
        ok, what = isinstance(value, int) and not isinstance(value, bool), 'an integer'
      elif field.type is bool:
        ok, what = isinstance(value, bool), 'true or false'
      else:
        ok, what = isinstance(value, str), 'text'
      if not ok:
        raise ValueError(f'{field.name} must be {what}. Received: {field.name}={value!r}')
    if self.tau <= 0 or self.lambda_ <= 0 or self.theta <= 0:
      raise ValueError('tau, lambda_ and theta must be > 0. Received: '
                       f'tau={self.tau}, lambda_={self.lambda_}, theta={self.theta}')
    if self.nscales < 1 or self.warps < 1:
      raise ValueError(f'nscales and warps must be >= 1. Received: nscales={self.nscales}, '
                       f'warps={self.warps}')
    if self.inner_iterations < 1 or self.outer_iterations < 1:
      raise ValueError('inner_iterations and outer_iterations must be >= 1. Received: '
                       f'inner_iterations={self.inner_iterations}, '
                       f'outer_iterations={self.outer_iterations}')
    if not 0.0 < self.scale_step < 1.0:
      raise ValueError(f'scale_step must be in (0, 1). Received: scale_step={self.scale_step}')
    if self.gamma < 0.0:
      raise ValueError(f'gamma must be >= 0 (0: no illumination term). Received: gamma={self.gamma}')
    if self.median_filtering > 1 and self.median_filtering not in (3, 5):
      raise ValueError('median_filtering must be <= 1 (off), 3 or 5. Received: '
                       f'median_filtering={self.median_filtering}')
    if self.interpolation not in ('bicubic', 'bilinear'):
      raise ValueError('interpolation must be "bicubic" or "bilinear". Received: '
                       f'interpolation={self.interpolation!r}')
    if self.border not in ('constant', 'replicate'):
      raise ValueError(f'border must be "constant" or "replicate". Received: border={self.border!r}')
    return self


# A fixed iteration budget (no per-iteration convergence test) that matches the
# RubberWhale accuracy of OpenCV's early-stopped defaults (docs/flow.md): one
# median + 15 iterations per warping = 375 iterations per pair, against the
# ~600 OpenCV's epsilon criterion stops after there. Fast motion needs more: on
# a real clip OpenCV's criterion ran ~2,200 iterations per pair and this budget
# ended 1.0 px (mean) away from OpenCV's flow; it is for small motion and speed.
FAST_BUDGET = dict(early_stopping=False, outer_iterations=1, inner_iterations=15)


def opencv_defaults() -> dict:
  """Our defaults, keyed like the arguments of DualTVL1OpticalFlow_create."""
  p = TVL1Params()
  return dict(tau=p.tau, lambda_=p.lambda_, theta=p.theta, nscales=p.nscales, warps=p.warps,
              epsilon=p.epsilon, inner_iterations=p.inner_iterations,
              outer_iterations=p.outer_iterations, scale_step=p.scale_step, gamma=p.gamma,
              median_filtering=p.median_filtering, use_initial_flow=p.use_initial_flow)


def pyramid_sizes(height: int, width: int, nscales: int, scale_step: float):
  """Level sizes [(h, w), ...], finest first, as OpenCV builds them (round, stop < 16).

  Args:
    height: rows of the finest level, pixels.
    width: columns of the finest level, pixels.
    nscales: at most this many levels.
    scale_step: size ratio between consecutive levels, in (0, 1).

  Returns:
    Up to `nscales` sizes, each the previous one times `scale_step`, rounded; the first level with a side
    under 16 px ends the pyramid (it is not included).
  """
  sizes = [(height, width)]
  for _ in range(1, nscales):
    h, w = sizes[-1]
    # cv::resize with fx = fy = scale_step: dsize = round(size * scale_step).
    nh, nw = int(round(h * scale_step)), int(round(w * scale_step))
    if nh < _MIN_LEVEL_SIZE or nw < _MIN_LEVEL_SIZE:
      break
    sizes.append((nh, nw))
  return sizes


def _batcher_pairs(n):
  """Comparators (i, j), i < j, of Batcher's odd-even merge sort of n = 2^k wires."""
  pairs = []
  p = 1
  while p < n:
    k = p
    while k >= 1:
      for j in range(k % p, n - k, 2 * k):
        for i in range(min(k, n - j - k)):
          if (i + j) // (2 * p) == (i + j + k) // (2 * p):
            pairs.append((i + j, i + j + k))
      k //= 2
    p *= 2
  return pairs


def selection_network(m: int, rank: int):
  """A min/max network whose wire `rank` ends holding the rank-th smallest of m inputs.

  Batcher's sorting network on the next power of two, with the padding wires
  (+inf) folded away and every comparator output that does not reach wire
  `rank` pruned. For the 5x5 median (m = 25, rank = 12) that leaves 113
  comparators; each is (i, j, need_min, need_max).
  """
  n = 1
  while n < m:
    n *= 2
  # Wires >= m hold +inf: a comparator with an +inf input is the identity.
  ops = [(i, j) for i, j in _batcher_pairs(n) if j < m]
  need = {rank}
  out = []
  for i, j in reversed(ops):
    need_min, need_max = i in need, j in need
    if need_min or need_max:
      out.append((i, j, need_min, need_max))
      need |= {i, j}
  return list(reversed(out))


def make_params(**params) -> TVL1Params:
  """TVL1Params from keyword arguments, rejecting unknown names."""
  names = {f.name for f in dataclasses.fields(TVL1Params)}
  unknown = sorted(set(params) - names)
  if unknown:
    raise ValueError(f'Unknown TV-L1 parameters {unknown}; known: {sorted(names)}. '
                     f'Received: {params}')
  return TVL1Params(**params).validate()
