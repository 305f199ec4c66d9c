"""Bootstrapping 3D filters from 2D filters: the boring-video fixed point (Sec. 2.4).

"repeating the weights of the 2D filters N times along the time dimension, and rescaling them by
dividing by N" makes the response of a 3D conv on a video made of one repeated image equal to the 2D
conv's response on the image; BN, ReLU and pooling then commute with the repetition, so every endpoint
of the inflated network equals the 2D endpoint (away from the temporal borders, where SAME zero padding
sees fewer copies of the image).

Three forms of the one operation:
  * `inflate_kernel`: one kernel, numpy.
  * `InflatedInitializer`: the same as a Keras initializer, for a single new layer.
  * `inflate(model_2d, model_3d)`: the whole network, by the explicit 2D->3D name map
    (`Conv3d_*` <- `Conv2d_*`), a shape check per weight, and an error on any unmatched weight.
"""

from typing import Callable, Dict, List, Optional

import keras
import numpy as np

from i3d_tf.layers import Unit

CHANNEL_RULES = ('mean', 'tile')


def adapt_input_channels(kernel: np.ndarray, in_channels: int, rule: str = 'mean') -> np.ndarray:
  """Maps a kernel's input-channel axis (-2) to `in_channels` (RGB-trained kernel -> flow stream).

  'mean' (default; the TSN "cross-modality" initialisation, Wang et al. 2016): every new input channel
  gets the mean of the RGB kernels over colour, so a flow field of constant value v gives the response
  an RGB image of grey level v gives.  'tile': repeat the original channels cyclically, each copy divided by its number
  of copies, so a constant input keeps its response.  Same-size kernels are returned unchanged.

  Args:
    kernel: numpy kernel [..., cin, cout].
    in_channels: the new cin.
    rule: 'mean' or 'tile' (`CHANNEL_RULES`).

  Raises:
    ValueError: an unknown `rule` (when the channel counts differ).
  """
  old = kernel.shape[-2]
  if old == in_channels:
    return kernel
  if rule == 'mean':
    mean = kernel.mean(axis=-2, keepdims=True)
    return np.repeat(mean, in_channels, axis=-2).astype(kernel.dtype)
  if rule == 'tile':
    idx = np.arange(in_channels) % old
    copies = np.bincount(idx, minlength=old)[idx]  # each original channel is shared among its copies
    return (np.take(kernel, idx, axis=-2) / copies[:, None]).astype(kernel.dtype)
  raise ValueError(f'rule must be one of {CHANNEL_RULES}. Received: rule={rule}')


def inflate_kernel(kernel_2d: np.ndarray, time_size: int) -> np.ndarray:
  """Inflates a 2D kernel (Sec. 2.4): `kernel_2d` [kh, kw, cin, cout] -> [time_size, kh, kw, cin, cout],
  repeated over time and divided by time_size (same dtype).

  Raises:
    ValueError: `kernel_2d` is not 4-D, or time_size < 1.
  """
  kernel_2d = np.asarray(kernel_2d)
  if kernel_2d.ndim != 4:
    raise ValueError(f'kernel_2d must be [kh, kw, cin, cout]. Received shape {kernel_2d.shape}')
  if time_size < 1:
    raise ValueError(f'time_size must be >= 1. Received: time_size={time_size}')
  return (np.repeat(kernel_2d[None], time_size, axis=0) / time_size).astype(kernel_2d.dtype)


@keras.saving.register_keras_serializable(package='i3d_tf')
class InflatedInitializer(keras.initializers.Initializer):
  """Initializes a Conv3D kernel [t, kh, kw, cin, cout] from a 2D kernel by boring-video inflation."""

  def __init__(self, kernel_2d, channel_rule: str = 'mean'):
    self.kernel_2d = np.asarray(kernel_2d, dtype=np.float32)
    self.channel_rule = channel_rule

  def __call__(self, shape, dtype=None):
    t, kh, kw, cin, cout = shape
    k = adapt_input_channels(self.kernel_2d, cin, self.channel_rule)
    if k.shape != (kh, kw, cin, cout):
      raise ValueError(f'2D kernel {self.kernel_2d.shape} cannot be inflated to {tuple(shape)}')
    return keras.ops.convert_to_tensor(inflate_kernel(k, t), dtype=dtype or 'float32')

  def get_config(self):
    return {'kernel_2d': self.kernel_2d.tolist(), 'channel_rule': self.channel_rule}


def units(model: keras.Model) -> Dict[str, Unit]:
  """All `Unit` layers of a model by name (nested models included; their names must not collide)."""
  found = {}
  for layer in model._flatten_layers(include_self=False, recursive=True):
    if isinstance(layer, Unit):
      if layer.name in found:
        raise ValueError(f'Two units named {layer.name!r} in {model.name}; inflate each stream separately.')
      found[layer.name] = layer
  return found


def name_3d_to_2d(name: str) -> str:
  """Explicit name map: `Mixed_4b.Branch_1.Conv3d_0b_3x3` -> `Mixed_4b.Branch_1.Conv2d_0b_3x3`."""
  return name.replace('Conv3d_', 'Conv2d_')


def unit_assignments(src: Dict[str, Unit], dst: Dict[str, Unit], source_name: Callable[[str], str] = lambda n: n,
                     channel_rule: str = 'mean', include_logits: Optional[bool] = None, where: str = ''):
  """The one 2D -> 2D / 3D unit copy, checked in full before anything is written (Sec. 2.4).

  For each unit of `dst` (its classifier `Logits.*` units only with `include_logits`; default: when the
  class counts agree), the unit `src[source_name(name)]` must exist with the same BN / bias configuration.
  The kernel's input channels are adapted (`adapt_input_channels`: RGB -> flow) and, for a 3D unit,
  inflated over the unit's time size (`inflate_kernel`, the boring-video fixed point); the bias, BN offset
  and moving statistics are copied as they are.  Used by `inflate` (Inception-v1 -> I3D) and by
  `baselines.init_from_inception_v1` (Inception-v1 -> the 2D streams of the baselines).

  Args:
    src, dst: units by name (`units(model)`).
    source_name: the source name of a destination unit (`name_3d_to_2d` for I3D).
    channel_rule: see `adapt_input_channels`.
    include_logits: copy the classifier; None: only when the class counts agree.
    where: a prefix for the problem lines (a stream's name).

  Returns:
    (pairs [(variable, value)], copied [dst names], skipped [dst names], problems [lines]); nothing assigned.
  """
  logits = [n for n in dst if n.startswith('Logits.')]
  if include_logits is None:
    include_logits = all(source_name(n) in src and src[source_name(n)].filters == dst[n].filters for n in logits)
  skipped = [] if include_logits else logits
  pairs, copied, problems = [], [], []
  for name, unit in dst.items():
    if name in skipped:
      continue
    source = src.get(source_name(name))
    if source is None:
      problems.append(f'{where}{name}: no matching 2D unit {source_name(name)!r}')
      continue
    if (source.use_batch_norm, source.use_bias) != (unit.use_batch_norm, unit.use_bias):
      problems.append(f'{where}{name}: BN/bias configuration differs from {source.name}')
      continue
    target = tuple(unit.conv.kernel.shape)
    kernel = adapt_input_channels(keras.ops.convert_to_numpy(source.conv.kernel), target[-2], channel_rule)
    if len(target) == 5:  # a 3D unit: inflate over its time size
      if kernel.shape != target[1:]:
        problems.append(f'{where}{name}: 2D kernel {kernel.shape} does not inflate to {target}')
        continue
      kernel = inflate_kernel(kernel, target[0])
    unit_pairs = [(unit.conv.kernel, kernel)]
    if unit.use_bias:
      unit_pairs.append((unit.conv.bias, keras.ops.convert_to_numpy(source.conv.bias)))
    if unit.use_batch_norm:
      unit_pairs += [(getattr(unit.bn, a), keras.ops.convert_to_numpy(getattr(source.bn, a)))
                     for a in ('beta', 'moving_mean', 'moving_variance')]
    for var, value in unit_pairs:
      if tuple(var.shape) != value.shape:
        problems.append(f'{where}{var.path}: shape {tuple(var.shape)} != source {value.shape}')
    pairs += unit_pairs
    copied.append(name)
  return pairs, copied, skipped, problems


def inflate(model_2d: keras.Model, model_3d: keras.Model, *, include_logits: Optional[bool] = None,
            channel_rule: str = 'mean') -> Dict[str, List[str]]:
  """Copies every weight of a 2D Inception-v1 into its inflated twin (boring-video fixed point).

  Conv kernels are inflated with `inflate_kernel` (time size read from the 3D kernel), input channels
  adapted by `adapt_input_channels` (RGB -> flow); BN offsets and moving statistics and the logits bias
  are copied (`unit_assignments`).  Any 3D unit without a 2D twin, any 2D unit left over, or any shape
  mismatch raises before a single weight is written: nothing is half-loaded.

  Args:
    model_2d: an `InceptionV1` (or any model of 2D units with the slim names).
    model_3d: an `I3D` (or any model of 3D units with the official names).
    include_logits: copy the classifier too; default: only when the class counts agree (transfer to
      new classes keeps the 3D model's fresh classifier).
    channel_rule: see `adapt_input_channels`.

  Returns:
    {'inflated': [3D unit names], 'skipped': [names deliberately not copied]}.

  Raises:
    ValueError: listing every problem; the 3D model is untouched.
  """
  src, dst = units(model_2d), units(model_3d)
  pairs, copied, skipped, problems = unit_assignments(src, dst, name_3d_to_2d, channel_rule, include_logits)
  leftover = sorted(set(src) - {name_3d_to_2d(n) for n in dst})
  if leftover:
    problems.append(f'2D units with no 3D twin: {leftover}')
  if problems:
    raise ValueError(f'Cannot inflate {model_2d.name} into {model_3d.name}:\n  ' + '\n  '.join(problems))
  for var, value in pairs:
    var.assign(value)
  return {'inflated': copied, 'skipped': skipped}
