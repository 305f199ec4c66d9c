"""TV-L1 on the CPU as a compiled C kernel: the native engine of the 'tvl1_tf' backends (issue 15).

`_tvl1_native.c` computes `tf_tvl1.tvl1_graph`'s algorithm (OpenCV's DualTVL1 choices, the same parameters,
`params.TVL1Params`) for one pair per call, each inner iteration as one sweep over the level's rows where XLA
runs 16 kernels.  Pairs run in parallel threads (ctypes releases the GIL).  On the 2-core Intel Xeon it
solves 2.5-2.9x the pairs per second of the XLA program (docs/flow.md); its flow is within a few thousandths
of a pixel of the XLA program's on real clips (tests/test_tvl1_native.py states the bounds), not bitwise.

setup.py builds the kernel as an optional extension: without a C compiler the install still succeeds and
`available()` says why the kernel is missing; `engine='auto'` then uses the XLA program.  No TensorFlow here.

  flow = native.tvl1(frame_a, frame_b)            # float32 [H, W] x 2 -> [H, W, 2]
  flows = native.tvl1_video(gray)                  # [N, H, W] -> [N - 1, H, W, 2]
"""

import ctypes
from concurrent import futures
import importlib.util
import numbers
import os
from typing import Optional

import numpy as np

from data_pipelines.flow.params import TVL1Params, make_params, pyramid_sizes

_MODULE = 'data_pipelines.flow._tvl1_native'
_ABI_VERSION = 2  # _tvl1_native.c's ABI_VERSION: the argument list below
_LIB = {}  # 'fn': the loaded entry point, or 'error': why there is none


def _load():
  if not _LIB:
    try:
      spec = importlib.util.find_spec(_MODULE)
      if spec is None or not spec.origin:
        raise OSError('the C kernel data_pipelines/flow/_tvl1_native.c was not built (no C compiler when the '
                      'package was installed?): install a C compiler and reinstall (make install, or pip install '
                      '-e .), or use engine=xla')
      lib = ctypes.CDLL(spec.origin)
      abi = lib.i3d_tvl1_abi() if hasattr(lib, 'i3d_tvl1_abi') else 1
      if abi != _ABI_VERSION:
        raise OSError(f'the C kernel at {spec.origin} was built from another version of _tvl1_native.c (ABI {abi}, '
                      f'this code needs {_ABI_VERSION}): rebuild it (make install, or pip install -e .), or use '
                      'engine=xla')
      fn = lib.i3d_tvl1_pair
      f, i = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int)
      c_f, c_i = ctypes.c_float, ctypes.c_int
      fn.argtypes = [f, f, c_i, c_i, i, c_i, c_f, c_f, c_f, c_f, c_f, c_f, c_f, c_i, c_i, c_i, c_i, c_i, c_i, c_i,
                     f, f, ctypes.POINTER(ctypes.c_double)]
      fn.restype = ctypes.c_int
      _LIB['fn'] = fn
    except (OSError, AttributeError, ImportError) as e:
      _LIB['error'] = str(e)
  return _LIB.get('fn')


def available() -> bool:
  """Whether the compiled kernel loads in this process (`why_unavailable()` says why not)."""
  return _load() is not None


def why_unavailable() -> Optional[str]:
  """None when the kernel loads, else one line: why not and what to do."""
  _load()
  return _LIB.get('error')


def _pointer(array, kind):
  return array.ctypes.data_as(ctypes.POINTER(kind))


def _solve(fn, a, b, p: TVL1Params, init, sizes, out=None):
  """One pair: float32 C-contiguous [H, W] frames -> (float32 [H, W, 2] flow, written into `out` if given,
  iterations)."""
  h, w = a.shape
  out = np.empty((h, w, 2), np.float32) if out is None else out
  iterations = ctypes.c_double()
  f = ctypes.c_float
  status = fn(_pointer(a, ctypes.c_float), _pointer(b, ctypes.c_float), h, w, _pointer(sizes, ctypes.c_int), len(sizes),
              f(p.lambda_ * p.theta), f(p.tau / p.theta), f(p.theta), f(p.epsilon * p.epsilon), f(p.gamma),
              f(1.0 / p.scale_step), f(p.scale_step), p.warps, p.inner_iterations, p.outer_iterations,
              int(p.early_stopping), int(p.interpolation == 'bicubic'), int(p.border == 'constant'),
              p.median_filtering if p.median_filtering > 1 else 0,
              None if init is None else _pointer(init, ctypes.c_float), _pointer(out, ctypes.c_float),
              ctypes.byref(iterations))
  if status == 1:
    raise MemoryError(f'tvl1 (native): no memory for the pyramid of a {h}x{w} pair')
  if status:
    raise ValueError(f'tvl1 (native): the kernel refused its arguments (status {status}) for a {h}x{w} pair')
  return out, iterations.value


def _kernel():
  fn = _load()
  if fn is None:
    raise RuntimeError(f'TV-L1 native engine unavailable: {why_unavailable()}')
  return fn


def _frames(x):
  return np.ascontiguousarray(np.asarray(x), np.float32)


def tvl1(frame_a, frame_b, initial_flow=None, return_iterations: bool = False, **params):
  """TV-L1 optical flow from `frame_a` to `frame_b`, one pair, in the calling thread.

  Args:
    frame_a, frame_b: [H, W] grayscale frames on the 0..255 scale (uint8 or float; at least 3x3).
    initial_flow: float [H, W, 2] starting flow, used with use_initial_flow=True.
    return_iterations: also return the iterations run (over levels and warpings).
    **params: `data_pipelines.flow.TVL1Params` fields, as for `tf_tvl1.tvl1`.

  Returns:
    float32 [H, W, 2] flow (u, v) = (dx, dy) in pixels, frame_a(x) ~ frame_b(x + flow(x)); with
    return_iterations, (flow, iterations).

  Raises:
    ValueError: frames that are not two [H, W] arrays of one shape at least 3x3; bad parameters; an initial
      flow missing or of another shape.
    RuntimeError: the kernel is not built (`why_unavailable()`).
  """
  p = make_params(**params)
  a, b = _frames(frame_a), _frames(frame_b)
  if a.ndim != 2 or a.shape != b.shape or min(a.shape) < 3:
    raise ValueError('frame_a and frame_b must be [H, W] of one shape, at least 3x3. Received: '
                     f'{a.shape} and {b.shape}')
  init = None
  if p.use_initial_flow:
    if initial_flow is None:
      raise ValueError('use_initial_flow=True needs initial_flow.')
    init = np.ascontiguousarray(initial_flow, np.float32)
    if init.shape != a.shape + (2,):
      raise ValueError(f'initial_flow must be [H, W, 2] = {a.shape + (2,)}. Received: {init.shape}')
  sizes = np.asarray(pyramid_sizes(a.shape[0], a.shape[1], p.nscales, p.scale_step), np.int32)
  flow, count = _solve(_kernel(), a, b, p, init, sizes)
  return (flow, count) if return_iterations else flow


_THREADS = []  # set_num_threads' value, if any


def set_num_threads(threads: Optional[int]) -> None:
  """Sets `default_threads()` for this process (None: back to the CPU count), like `cv2.setNumThreads`.

  Conversion workers (`prepare_data --workers`, one process per core) set 1.

  Raises:
    ValueError: `threads` < 1.
  """
  if threads is not None and (not _is_int(threads) or threads < 1):
    raise ValueError(f'threads must be an integer >= 1 (or None). Received: threads={threads!r}')
  _THREADS[:] = [] if threads is None else [int(threads)]


def _is_int(x) -> bool:
  return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def default_threads() -> int:
  """Pairs solved at once by `tvl1_video`: `set_num_threads`' value, else the CPUs this process may run on
  (`os.sched_getaffinity`)."""
  if _THREADS:
    return _THREADS[0]
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not on Linux
    return max(1, os.cpu_count() or 1)


def tvl1_video(gray_frames, concurrent_calls: Optional[int] = None, **params) -> np.ndarray:
  """Flow between consecutive frames i -> i + 1 of a grayscale video, pairs solved in parallel threads.

  The native engine of the 'tvl1_tf' backends (`data_pipelines.flow.backends`); the result does not depend
  on `concurrent_calls`.  Memory: the frames, the flow and, per thread, one pair's pyramid and work arrays
  (about 30 floats per pixel).

  Args:
    gray_frames: uint8 or float [N, H, W] on the 0..255 scale, H and W at least 3.
    concurrent_calls: pairs solved at once (None: `default_threads()`).
    **params: `data_pipelines.flow.TVL1Params` fields (use_initial_flow must stay off: a video has no
      initial flow).

  Returns:
    float32 np.ndarray [N - 1, H, W, 2].

  Raises:
    ValueError: a bad shape, parameters or `concurrent_calls`.
    RuntimeError: the kernel is not built (`why_unavailable()`).
  """
  p = make_params(**params)
  if p.use_initial_flow:
    raise ValueError('use_initial_flow needs an initial flow, which tvl1_video has none of: leave it off')
  frames = np.asarray(gray_frames)
  if frames.ndim != 3 or min(frames.shape[1:]) < 3:
    raise ValueError(f'gray_frames must be [N, H, W] with H, W >= 3. Received: shape={frames.shape}')
  threads = default_threads() if concurrent_calls is None else concurrent_calls
  if not _is_int(threads) or threads < 1:
    raise ValueError(f'concurrent_calls must be an integer >= 1. Received: concurrent_calls={concurrent_calls!r}')
  threads = int(threads)
  fn = _kernel()
  n, h, w = frames.shape
  out = np.empty((max(n - 1, 0), h, w, 2), np.float32)
  if n < 2:
    return out
  frames = np.ascontiguousarray(frames, np.float32)
  sizes = np.asarray(pyramid_sizes(h, w, p.nscales, p.scale_step), np.int32)

  def solve(i):
    _solve(fn, frames[i], frames[i + 1], p, None, sizes, out[i])

  if threads == 1 or n == 2:
    for i in range(n - 1):
      solve(i)
  else:
    pool = futures.ThreadPoolExecutor(min(threads, n - 1), thread_name_prefix='tvl1 native')
    try:
      for done in pool.map(solve, range(n - 1)):  # re-raises a failed pair's error
        del done
    finally:  # an error or Ctrl-C: the pairs not started yet are dropped, not waited for
      pool.shutdown(wait=True, cancel_futures=True)
  return out
