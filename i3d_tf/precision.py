"""Inference precision: float32, or bfloat16 compute where the hardware runs it natively.

Not in the paper (2017: float32 on GPUs).  Measured on the reference machine (2 cores of an Intel Xeon with
AMX-BF16; `experiments/benchmark_classify.py`, `benchmarks/classify_cpu.json`): `classify` with the trained
Kinetics-400 RGB I3D runs about 2x faster (1.96-2.16x) under Keras's `mixed_bfloat16` policy than in float32,
with the same top-5 classes on the three shared real clips and class probabilities within 0.003.  The policy keeps the variables (so every checkpoint loads as
it is) and the logits in float32; only the convolutions, batch norm and pooling compute in bfloat16
(8 bits of mantissa: logits move by about 1e-2 relative).

  precision   what runs
  float32     float32 everywhere (bit-comparable with the official checkpoints' reference outputs)
  bfloat16    Keras `mixed_bfloat16` (works everywhere; fast only with native bfloat16 units)
  auto        bfloat16 on a CPU with AMX-BF16 or AVX512-BF16 (Linux /proc/cpuinfo flags `amx_bf16`,
              `avx512_bf16`; oneDNN then uses them) or a GPU of compute capability >= 8.0 (Ampere and
              newer); float32 on anything else, where bfloat16 is emulated and slower

Training has its own `TrainConfig.mixed_precision` (float16 needs loss scaling, which inference does not).
"""

import contextlib
import functools
from typing import Iterator

PRECISIONS = ('auto', 'float32', 'bfloat16')
CPU_BFLOAT16_FLAGS = ('amx_bf16', 'avx512_bf16')  # /proc/cpuinfo names of the native bfloat16 units


def check_precision(precision: str) -> str:
  """Returns `precision` if it is one of `PRECISIONS`.

  Raises:
    ValueError: any other value, naming the valid ones.
  """
  if precision not in PRECISIONS:
    raise ValueError(f'precision must be one of {PRECISIONS}. Received: precision={precision!r}')
  return precision


def cpu_bfloat16_flags(cpuinfo: str = '/proc/cpuinfo') -> tuple:
  """The CPU's native bfloat16 feature flags (a subset of `CPU_BFLOAT16_FLAGS`); () where unknown (not Linux).

  Args:
    cpuinfo: the file to read the `flags` line of (Linux's /proc/cpuinfo).
  """
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith('flags'):
          flags = set(line.split(':', 1)[1].split())
          return tuple(flag for flag in CPU_BFLOAT16_FLAGS if flag in flags)
  except OSError:
    pass
  return ()


def gpu_bfloat16() -> bool:
  """True when TensorFlow sees a GPU of compute capability >= 8.0 (native bfloat16 tensor cores)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for gpu in tf.config.list_physical_devices('GPU'):
    capability = tf.config.experimental.get_device_details(gpu).get('compute_capability') or (0, 0)
    if tuple(capability) >= (8, 0):
      return True
  return False


@functools.lru_cache(maxsize=None)
def _auto() -> str:
  return 'bfloat16' if cpu_bfloat16_flags() or gpu_bfloat16() else 'float32'


def resolve_precision(precision: str = 'auto') -> str:
  """'float32' or 'bfloat16': `precision`, with 'auto' decided by the hardware (module docstring).

  Raises:
    ValueError: `precision` not in `PRECISIONS`.
  """
  check_precision(precision)
  return _auto() if precision == 'auto' else precision


def policy_name(precision: str) -> str:
  """The Keras dtype policy of a resolved or 'auto' precision: 'float32' or 'mixed_bfloat16'."""
  return 'mixed_bfloat16' if resolve_precision(precision) == 'bfloat16' else 'float32'


@contextlib.contextmanager
def precision_scope(precision: str = 'float32') -> Iterator[str]:
  """Models built inside compute in `precision` (Keras's global dtype policy, restored on exit).

  Yields:
    The resolved precision, 'float32' or 'bfloat16'.

  Raises:
    ValueError: `precision` not in `PRECISIONS`.
  """
  import keras  # pylint: disable=g-import-not-at-top
  resolved = resolve_precision(precision)
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy_name(resolved))
  try:
    yield resolved
  finally:
    keras.mixed_precision.set_global_policy(previous)


def model_precision(model) -> str:
  """'bfloat16' or 'float32': the compute dtype of a built Keras model's first layer with weights."""
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if layer.weights:
      return 'bfloat16' if 'bfloat16' in str(layer.compute_dtype) else 'float32'
  return 'float32'


BFLOAT16_MIN_FRAMES = 2  # clips of 1 frame: oneDNN's bfloat16 Conv3D returns garbage (below)


def check_clip_frames(num_frames: int, precision: str) -> None:
  """Raises ValueError for a clip the network cannot compute correctly in `precision`.

  With `mixed_bfloat16` on the CPU (oneDNN, TensorFlow 2.21), a clip of a single frame gives garbage from the
  first Conv3D (7 frames of kernel over 1 frame and 6 of padding): values up to 1e36 or another input's
  features, different at every call (a newcomer trial found it; tests/test_precision.py).  2 frames and more
  are exact to bfloat16 rounding, and float32 is right at any length.  So such clips are refused, not
  computed.

  Args:
    num_frames: frames (time steps) of the clip or window the network is given.
    precision: 'float32' or 'bfloat16' (the models' precision, `model_precision`).

  Raises:
    ValueError: fewer than `BFLOAT16_MIN_FRAMES` frames in bfloat16 (the message gives the fix).
  """
  if precision == 'bfloat16' and num_frames < BFLOAT16_MIN_FRAMES:
    raise ValueError(f'a clip of {num_frames} frame(s): in bfloat16 the network returns garbage for fewer than '
                     f'{BFLOAT16_MIN_FRAMES} frames on the CPU (oneDNN); pass --precision=float32 for such clips, '
                     'or give more frames')
