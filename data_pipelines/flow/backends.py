"""TV-L1 optical flow, truncation to [-20, 20] and 8-bit quantization (paper Sec. 2.5; official release).

Alignment: a video of N frames gives N - 1 flow fields; flow field i is the motion from frame i to
frame i + 1 (frame_i(x) ~ frame_{i+1}(x + flow_i(x))).  The last RGB frame has no flow field.

Quantization (the official release's 256 buckets, 128 ~ 0 px):
  q = round((clip(f, -20, 20) + 20) * 255 / 40)        uint8
  f = q * 40 / 255 - 20                                 dequantized, error <= 40 / 255 / 2 px in range
Model input: q / 127.5 - 1, within 1/255 of f / 20.

Backends are pluggable.  CONTRACT: a backend is a callable
  backend(gray_frames: np.ndarray uint8 [N, H, W]) -> np.ndarray float32 [N - 1, H, W, 2]  (u, v in px)
registered in FLOW_BACKENDS by name: 'tvl1' (OpenCV DualTVL1, default parameters), 'tvl1_tf' (our TV-L1 with
OpenCV's defaults and early stopping, imported lazily) and 'tvl1_tf_fast' (the same with
`data_pipelines.flow.FAST_BUDGET`, a fixed budget: OpenCV's accuracy on small motion, not on fast motion,
docs/flow.md).  Our TV-L1 has two engines, chosen by `tvl1_engine`: 'native' (the compiled CPU kernel,
`data_pipelines.flow.native`, the default on a machine without a GPU) and 'xla' (the TensorFlow program,
`data_pipelines.flow.tvl1_video`: GPUs, and CPUs where the kernel is not built); `--flow_params=engine=xla`
picks one.
'none' means no flow.  A 'package.module:function' name selects any importable backend (it also works in
the spawned worker processes, unlike a registration).
TV-L1 parameters (`--flow_params=gamma=0.3,...`) are read by `parse_flow_params`, validated by
`check_flow_params` and bound by `get_flow_backend(name, **params)`.
"""

import functools
import importlib
from typing import Callable, Dict, Optional, Tuple

import cv2
import numpy as np

from data_pipelines.constants import FLOW_BOUND, FLOW_LEVELS as NUM_LEVELS

FlowBackend = Callable[[np.ndarray], np.ndarray]


def quantize_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
  """Truncates flow to [-bound, bound] px and quantizes it to uint8: q = round((clip(f, -b, b) + b) * 255 / (2 b)).

  Args:
    flow: float flow in pixels, any shape.
    bound: truncation bound b in pixels (20, Sec. 2.5).

  Returns:
    uint8 of `flow`'s shape: 0 ~ -b, 255 ~ +b, 0 px -> 128.
  """
  f = np.clip(np.asarray(flow, np.float32), -bound, bound)
  return np.round((f + bound) * (255.0 / (2 * bound))).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
  """uint8 flow -> float32 flow in pixels, f = q * 2b / 255 - b (inverse of `quantize_flow` with the same
  `bound` b, within 20 / 255 px)."""
  return np.asarray(q, np.float32) * np.float32(2 * bound / 255.0) - np.float32(bound)


def to_gray(frames_rgb: np.ndarray) -> np.ndarray:
  """`frames_rgb` uint8 [N, H, W, 3] RGB -> uint8 [N, H, W] luma (OpenCV's RGB2GRAY weights); N >= 1."""
  return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames_rgb])


# `data_pipelines.flow.TVL1Params` names whose OpenCV setter is named differently.
_OPENCV_ALIASES = {'nscales': 'scales_number', 'warps': 'warpings_number'}
_OPENCV_TO_OURS = {**{v: k for k, v in _OPENCV_ALIASES.items()}, 'lambda': 'lambda_'}  # setLambda: our lambda_


def _opencv_setters(algo, params) -> Dict[str, str]:
  """{parameter name: DualTVL1 setter}; ValueError naming a parameter OpenCV has no setter for."""
  setters = {}
  for name in params:
    base = _OPENCV_ALIASES.get(name, name)
    setter = 'set' + ''.join(p.capitalize() for p in base.strip('_').split('_'))
    if not hasattr(algo, setter):
      raise ValueError(f'Unknown DualTVL1 parameter {name!r} (no {setter}). Received: {params}')
    setters[name] = setter
  return setters


def _opencv_tvl1(params) -> 'cv2.optflow.DualTVL1OpticalFlow':
  algo = cv2.optflow.DualTVL1OpticalFlow_create()
  for name, setter in _opencv_setters(algo, params).items():
    getattr(algo, setter)(params[name])
  return algo


def tvl1_opencv(gray_frames: np.ndarray, **params) -> np.ndarray:
  """OpenCV DualTVL1 between consecutive frames (the 'tvl1' backend); `params` name its setters, e.g. tau=0.25.

  Args:
    gray_frames: uint8 [N, H, W] grayscale frames.
    **params: DualTVL1 parameters (below); OpenCV's defaults otherwise.

  Returns:
    float32 [N - 1, H, W, 2] flow (u, v) in pixels, not truncated; field i is frame i -> i + 1.

  Raises:
    ValueError: `gray_frames` is not uint8 [N, H, W], or a parameter has no DualTVL1 setter.

  Setter names: tau, lambda_ (setLambda), theta, gamma, scales_number, warpings_number, epsilon,
  inner_iterations, outer_iterations, scale_step, median_filtering, use_initial_flow; `nscales` and
  `warps` (the `data_pipelines.flow` names) are accepted too, so one parameter set serves both backends.
  """
  gray_frames = _check_gray(gray_frames)
  algo = _opencv_tvl1(params)
  n, h, w = gray_frames.shape
  out = np.empty((max(n - 1, 0), h, w, 2), np.float32)
  for i in range(n - 1):
    out[i] = algo.calc(gray_frames[i], gray_frames[i + 1], None)
  return out


ENGINES = ('auto', 'native', 'xla')


def gpu_device_node() -> bool:
  """Whether this machine has an NVIDIA device node (/dev/nvidiactl).  Without one, choosing the TV-L1 engine
  (`tvl1_engine`) imports no TensorFlow (it cannot see a CUDA GPU), so a binary can start the native engine's
  work before TensorFlow has loaded."""
  import os  # pylint: disable=g-import-not-at-top
  return os.path.exists('/dev/nvidiactl')


@functools.lru_cache(maxsize=None)
def _gpu_present() -> bool:
  """Whether TensorFlow sees a GPU, without importing it on a machine with no NVIDIA device node.  Asked once
  per process: `tvl1_engine` runs for every flow chunk, and TensorFlow's devices do not change once known."""
  import sys  # pylint: disable=g-import-not-at-top
  if 'tensorflow' not in sys.modules and not gpu_device_node():
    return False
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return bool(tf.config.list_physical_devices('GPU'))


def tvl1_engine(engine: str = 'auto', jit_compile: Optional[bool] = None) -> str:
  """The engine our TV-L1 ('tvl1_tf', 'tvl1_tf_fast') runs on: 'native' or 'xla'.

  'auto' is 'native' (the compiled CPU kernel, 2.5-2.9x the XLA program's pairs per second on 2 CPU cores,
  docs/flow.md) when the kernel is built, TensorFlow sees no GPU and no `jit_compile` (an XLA option) is given;
  otherwise 'xla' (the TensorFlow program: batched on GPUs, compiled once per frame size).

  Args:
    engine: 'auto', 'native' or 'xla'.
    jit_compile: the XLA program's option, if a caller set it (None: not set).

  Returns:
    'native' or 'xla'.

  Raises:
    ValueError: an unknown engine; 'native' where the kernel is not built (the reason and the fix), or with
      jit_compile.
  """
  _check_engine(engine, jit_compile)
  from data_pipelines.flow import native  # pylint: disable=g-import-not-at-top
  if engine == 'native':
    return 'native'
  if engine == 'xla' or jit_compile is not None or _gpu_present():
    return 'xla'
  if not native.available():
    if not _FELL_BACK:  # said once: an install without a C compiler runs the slower engine, not silently
      _FELL_BACK.append(True)
      import sys  # pylint: disable=g-import-not-at-top
      print(f'tvl1_tf: the XLA engine, not the native one ({native.why_unavailable()})', file=sys.stderr, flush=True)
    return 'xla'
  return 'native'


_FELL_BACK = []


def _check_engine(engine, jit_compile=None) -> None:
  """Raises ValueError for an unknown engine, or 'native' where it cannot run (nothing is imported but the
  kernel's loader: no TensorFlow)."""
  if engine not in ENGINES:
    raise ValueError(f'engine must be one of {list(ENGINES)}. Received: engine={engine!r}')
  if engine == 'native':
    from data_pipelines.flow import native  # pylint: disable=g-import-not-at-top
    if jit_compile is not None:
      raise ValueError('jit_compile is an option of the XLA engine; leave it out with engine=native')
    if not native.available():
      raise ValueError(f'engine=native: {native.why_unavailable()}')


def flow_engine(backend: Optional[str], params=()) -> Optional[str]:
  """The engine backend `backend` with `params` (dict or pairs) runs here: 'native' or 'xla' for our TV-L1
  (`tvl1_engine`), None for the others.  Recorded with the outputs (not in their resume keys: both engines
  compute the same algorithm, docs/flow.md).

  Raises:
    ValueError: a bad engine (as `tvl1_engine`).
  """
  if backend not in ('tvl1_tf', 'tvl1_tf_fast'):
    return None
  params = dict(params)
  return tvl1_engine(params.get('engine', 'auto'), params.get('jit_compile'))


def without_engine(params) -> Tuple[Tuple[str, object], ...]:
  """`params` (pairs) without 'engine': what decides the flow, for resume keys."""
  return tuple((k, v) for k, v in params if k != 'engine')


def tvl1_tf(gray_frames: np.ndarray, batch_size: Optional[int] = None, engine: str = 'auto',
            **params) -> np.ndarray:
  """Our TV-L1 (the 'tvl1_tf' backend): the native CPU kernel or the TensorFlow program (`tvl1_engine`).

  Args:
    gray_frames: uint8 [N, H, W] grayscale frames.
    batch_size: frame pairs per call of the XLA program; None: `data_pipelines.flow.default_batch_size()` (1
      on CPU, 8 with a GPU).  The native engine solves one pair per call, `native.default_threads()` at once.
    engine: 'auto', 'native' or 'xla' (`tvl1_engine`).
    **params: TV-L1 parameters (`data_pipelines.flow.TVL1Params` names), passed through; `jit_compile` and
      `concurrent_calls` as `data_pipelines.flow.tvl1_video` takes them.

  Returns:
    float32 [N - 1, H, W, 2] flow (u, v) in pixels, not truncated.

  Raises:
    RuntimeError: the TensorFlow solver cannot be imported.
    ValueError: `gray_frames` is not uint8 [N, H, W]; a bad engine.
  """
  if tvl1_engine(engine, params.get('jit_compile')) == 'native':
    from data_pipelines.flow import native  # pylint: disable=g-import-not-at-top
    return native.tvl1_video(_check_gray(gray_frames), **params)
  try:
    from data_pipelines.flow import tf_tvl1 as tf_flow  # pylint: disable=g-import-not-at-top
    fn = tf_flow.tvl1_video
  except (ImportError, AttributeError) as e:
    raise RuntimeError('flow backend "tvl1_tf" needs data_pipelines.flow.tvl1_video(gray_frames, batch_size=...), '
                       f'which is not importable here: {e!r}. Use --flow=tvl1 (OpenCV).') from e
  gray_frames = _check_gray(gray_frames)
  return np.asarray(fn(gray_frames, batch_size=batch_size, **params), np.float32)


def tvl1_tf_fast(gray_frames: np.ndarray, batch_size: Optional[int] = None, engine: str = 'auto',
                 **params) -> np.ndarray:
  """'tvl1_tf' with `data_pipelines.flow.FAST_BUDGET` (375 iterations per pair, no convergence test: 3.1-3.7x
  OpenCV on this 2-core CPU, RubberWhale EPE 1.012x OpenCV's, but 1.0 px from OpenCV's flow on the fast
  motion of a real clip, docs/flow.md); `params` override the budget.

  Args:
    gray_frames: uint8 [N, H, W] grayscale frames.
    batch_size: frame pairs solved at once; None: `data_pipelines.flow.default_batch_size()`.
    engine: see `tvl1_tf`.
    **params: TV-L1 parameters (`data_pipelines.flow.TVL1Params` names).

  Returns:
    float32 [N - 1, H, W, 2] flow (u, v) in pixels, not truncated.

  Raises:
    ValueError: `gray_frames` is not uint8 [N, H, W]; a bad engine.
  """
  return tvl1_tf(gray_frames, batch_size, engine, **_tf_params('tvl1_tf_fast', params))


def _tf_params(backend: str, params) -> Dict:
  """The TV-L1 parameters TensorFlow backend `backend` solves with: `params`, over `FAST_BUDGET` for
  'tvl1_tf_fast'."""
  if backend != 'tvl1_tf_fast':
    return dict(params)
  from data_pipelines.flow.params import FAST_BUDGET  # pylint: disable=g-import-not-at-top
  return {**FAST_BUDGET, **dict(params)}


def _check_gray(gray_frames):
  gray_frames = np.asarray(gray_frames)
  if gray_frames.ndim != 3 or gray_frames.dtype != np.uint8:
    raise ValueError(f'gray_frames must be uint8 [N, H, W]. Received: {gray_frames.dtype} '
                     f'{gray_frames.shape}')
  return gray_frames


FLOW_BACKENDS: Dict[str, FlowBackend] = {'tvl1': tvl1_opencv, 'tvl1_tf': tvl1_tf, 'tvl1_tf_fast': tvl1_tf_fast}


def register_flow_backend(name: str, fn: FlowBackend):
  """Adds `fn` (the backend contract above) to FLOW_BACKENDS as `name`, in this process only.

  Spawned conversion workers do not see it: name the backend 'package.module:function' there.

  Raises:
    ValueError: `name` is already registered, or is 'none'.
  """
  if name in FLOW_BACKENDS or name == 'none':
    raise ValueError(f'Flow backend {name!r} is already registered.')
  FLOW_BACKENDS[name] = fn


def parse_flow_params(text: str) -> Tuple[Tuple[str, object], ...]:
  """Parses `--flow_params` `text`: 'gamma=0.3,warps=3,interpolation=bilinear' -> (('gamma', 0.3), ('warps', 3),
  ...); empty or None text gives ().

  Values become int, float or bool (true/false) where they parse as one, else stay strings. The
  names are the TV-L1 parameters of `data_pipelines.flow.TVL1Params` (OpenCV's setter names also work with
  'tvl1'); `check_flow_params` validates them against a backend.

  Raises:
    ValueError: an item that is not name=value, or a name given twice.
  """
  out = []
  for item in (text or '').split(','):
    item = item.strip()
    if not item:
      continue
    name, sep, value = item.partition('=')
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
      raise ValueError(f'Flow parameters must be name=value pairs separated by commas. Received: {text!r}')
    if value.lower() in ('true', 'false'):
      parsed = value.lower() == 'true'
    else:
      try:
        parsed = int(value)
      except ValueError:
        try:
          parsed = float(value)
        except ValueError:
          parsed = value
    out.append((name, parsed))
  names = [n for n, _ in out]
  if len(set(names)) != len(names):
    raise ValueError(f'A flow parameter is given twice. Received: {text!r}')
  return tuple(out)


def check_flow_params(backend: str, params) -> None:
  """Raises ValueError if `params` (dict or pairs) are not valid for the named backend.

  Cheap (no flow is computed), so batch jobs can fail before they start rather than in every worker.
  """
  params = dict(params)
  if backend in (None, 'none'):
    if params:
      raise ValueError(f'Flow parameters {params} given but the flow backend is "none".')
    return
  if backend == 'tvl1':
    if 'engine' in params:
      raise ValueError('engine chooses how our TV-L1 runs (--flow=tvl1_tf or tvl1_tf_fast: native or xla); '
                       'OpenCV\'s tvl1 has none')
    # The same types and ranges as tvl1_tf (OpenCV would take gamma=-1 or warps=0), then its setters.
    from data_pipelines.flow.params import make_params  # pylint: disable=g-import-not-at-top
    ours = {_OPENCV_TO_OURS.get(_OPENCV_ALIASES.get(k, k), k): v for k, v in params.items()}
    _opencv_setters(cv2.optflow.DualTVL1OpticalFlow_create(), params)  # names: OpenCV's setters
    try:
      make_params(**ours)  # types and ranges, named
      _opencv_tvl1(params)
    except TypeError as e:
      raise ValueError(f'a flow parameter of the wrong type ({e}). Received: {params}') from None
  elif backend in ('tvl1_tf', 'tvl1_tf_fast'):
    from data_pipelines.flow.params import make_params  # pylint: disable=g-import-not-at-top
    engine = params.pop('engine', 'auto')
    checked = make_params(**_tf_params(backend, params))  # unknown names first (jit_compile among them)
    _check_engine(engine, params.get('jit_compile'))
    if checked.use_initial_flow:
      raise ValueError('use_initial_flow needs an initial flow, which a video backend has none of (every pair '
                       'starts from zero, as OpenCV\'s default): leave it off')
  else:
    get_flow_backend(backend)  # unknown names raise; custom backends check their own parameters.


def get_flow_backend(name: str, **params) -> Optional[FlowBackend]:
  """Backend callable by name (None for 'none'); `params` are bound as keyword arguments."""
  if name in (None, 'none'):
    return None
  if name in FLOW_BACKENDS:
    fn = FLOW_BACKENDS[name]
  elif ':' in name:  # 'package.module:function', importable in worker processes too
    module, _, attr = name.partition(':')
    fn = getattr(importlib.import_module(module), attr)
  else:
    raise ValueError(f'Unknown flow backend {name!r}; known: {sorted(FLOW_BACKENDS) + ["none"]} or '
                     '"package.module:function"')
  return functools.partial(fn, **params) if params else fn


def prepare_flow_backend(name: str, height: int, width: int, **params) -> bool:
  """Starts getting backend `name` ready for frames of `height` x `width` before its first call (issue 15).

  Our TV-L1 ('tvl1_tf', 'tvl1_tf_fast') on the XLA engine traces its program now and compiles it, or loads it
  from XLA's persistent cache, in a background thread (`tf_tvl1.prepare_tvl1`; the first call of that size
  waits for it); the native engine and the other backends have nothing to prepare.

  Args:
    name: a backend name (`get_flow_backend`).
    height, width: the frame size the backend will be called with, in pixels.
    **params: the backend's TV-L1 parameters (as `get_flow_backend`).

  Returns:
    True for a backend that compiles (its preparation for this size started now or before), else False.

  Raises:
    ValueError: bad parameters, engine or sizes (as the backend's first call would).
  """
  if name not in ('tvl1_tf', 'tvl1_tf_fast'):
    return False
  params = dict(params)
  if tvl1_engine(params.pop('engine', 'auto'), params.get('jit_compile')) == 'native':
    return False
  from data_pipelines.flow.tf_tvl1 import prepare_tvl1  # pylint: disable=g-import-not-at-top
  prepare_tvl1(height, width, **_tf_params(name, params))
  return True


def centred_padding(height: int, width: int, multiple: int) -> Tuple[int, int, int, int]:
  """(top, bottom, left, right) pixels that bring height x width up to multiples of `multiple`, split evenly
  (the odd pixel at the bottom / right).

  Raises:
    ValueError: `multiple` < 1.
  """
  if not isinstance(multiple, (int, np.integer)) or multiple < 1:
    raise ValueError(f'the flow padding multiple must be an integer >= 1 (1: no padding). Received: {multiple!r}')
  extra_y, extra_x = -height % multiple, -width % multiple
  return extra_y // 2, extra_y - extra_y // 2, extra_x // 2, extra_x - extra_x // 2


def compute_flow(frames_rgb: np.ndarray, backend='tvl1', bound: float = FLOW_BOUND,
                 pad_to_multiple: int = 1) -> np.ndarray:
  """Quantized optical flow of a video (Sec. 2.5): TV-L1 on luma, truncated to [-bound, bound] px, uint8.

  Args:
    frames_rgb: uint8 [N, H, W, 3] RGB frames, N >= 1.
    backend: a backend name (`get_flow_backend`) or a callable with the backend contract.
    bound: truncation bound in pixels (20).
    pad_to_multiple: the frames are edge-replicated (centred, `centred_padding`) up to a multiple of this
      many pixels in height and width before the backend sees them, and the flow is cropped back to H x W:
      frame sizes that differ by a few pixels (Kinetics widths 340 / 341, 454 / 455 / 456 at a 256 short
      side) share one shape, so the TensorFlow backends compile once for them (issue 15).  1 (default): no
      padding, the flow of the frames as they are.  The flow changes a little, mostly near the borders
      (docs/flow.md states by how much).

  Returns:
    uint8 [N - 1, H, W, 2] (x, y) flow quantized by `quantize_flow`; field i is frame i -> i + 1.

  Raises:
    ValueError: frames that are not uint8 [N, H, W, 3]; `pad_to_multiple` < 1; a backend output of another
      shape, or with NaN or infinite values (never quantized to -20 px silently).
  """
  frames_rgb = np.asarray(frames_rgb)
  if frames_rgb.dtype != np.uint8 or frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3:
    raise ValueError(f'frames must be uint8 [N, H, W, 3] RGB levels; got {frames_rgb.dtype} '
                     f'{list(frames_rgb.shape)}')
  fn = get_flow_backend(backend) if isinstance(backend, str) or backend is None else backend
  if fn is None:
    raise ValueError('compute_flow needs a backend, got "none".')
  gray = to_gray(frames_rgb)
  top, bottom, left, right = centred_padding(gray.shape[1], gray.shape[2], pad_to_multiple)
  if top or bottom or left or right:
    gray = np.pad(gray, ((0, 0), (top, bottom), (left, right)), mode='edge')
  flow = np.asarray(fn(gray), np.float32)
  n, h, w = gray.shape
  if flow.shape != (max(n - 1, 0), h, w, 2):
    raise ValueError(f'flow backend broke the contract: expected {(n - 1, h, w, 2)}, got {flow.shape}')
  flow = flow[:, top:h - bottom, left:w - right]
  bad = np.size(flow) - np.count_nonzero(np.isfinite(flow))
  if bad:  # quantize_flow would turn NaN into -20 px without a word
    raise ValueError(f'the flow backend returned {bad} NaN or infinite values of {flow.size} (fields '
                     f'{sorted(set(np.argwhere(~np.isfinite(flow))[:, 0].tolist()))[:5]}): a failed solve; '
                     'try the OpenCV backend (--flow=tvl1) or other --flow_params')
  return quantize_flow(flow, bound)
