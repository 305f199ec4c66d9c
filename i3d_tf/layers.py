"""Shared building blocks: the conv-BN-ReLU unit, the Inception module and the head pooling.

Paper Sec. 2.5 ("we follow each convolutional layer by a batch normalization layer and a ReLU activation
function, except for the last convolutional layers which produce the class scores") and Fig. 3 (right:
the Inception submodule).  The same classes serve 2D (Inception-v1) and 3D (I3D) networks through `rank`.

Keras 3 forbids '/' in layer names, so a checkpoint scope `Mixed_4b/Branch_1/Conv3d_0b_3x3` is the layer
name `Mixed_4b.Branch_1.Conv3d_0b_3x3` (see `scope_to_layer_name`).  Inside a unit the sub-layers are
`conv_3d` (or `conv_2d`) and `batch_norm`, as in the official Sonnet module.
"""

from typing import Optional, Sequence, Tuple, Union

import keras
import tensorflow as tf

from i3d_tf import scoring

IntOrTuple = Union[int, Sequence[int]]

BN_EPSILON = 1e-3  # Official I3D (Sonnet BatchNorm) and slim Inception-v1.
BN_MOMENTUM = 0.999  # Sonnet's decay_rate 0.999 for the moving statistics.
SCOPE_SEP = '.'


def scope_to_layer_name(scope: str) -> str:
  """Checkpoint `scope` `Mixed_4b/Branch_1/Conv3d_0b_3x3` -> layer name `Mixed_4b.Branch_1.Conv3d_0b_3x3`
  (Keras-legal)."""
  return scope.replace('/', SCOPE_SEP)


def layer_name_to_scope(name: str) -> str:
  """Layer `name` `Mixed_4b.Branch_1.Conv3d_0b_3x3` -> scope `Mixed_4b/Branch_1/Conv3d_0b_3x3` (inverse of
  `scope_to_layer_name`)."""
  return name.replace(SCOPE_SEP, '/')


def as_tuple(value: IntOrTuple, rank: int, what: str = 'value') -> Tuple[int, ...]:
  """Expands an int `value` to a `rank`-tuple; converts a sequence to a tuple of ints of length `rank`.

  Raises:
    ValueError: a sequence whose length is not `rank` (the message names it `what`).
  """
  if isinstance(value, int):
    return (value,) * rank
  value = tuple(int(v) for v in value)
  if len(value) != rank:
    raise ValueError(f'{what} must be an int or a sequence of {rank} ints. Received: {what}={value}')
  return value


@keras.saving.register_keras_serializable(package='i3d_tf')
class Unit(keras.layers.Layer):
  """Conv (SAME padding, no bias) -> BatchNorm (no gamma) -> ReLU, the official `Unit3D` (and its 2D twin).

  Args:
    filters: output channels.
    kernel_size: int or `rank`-tuple.
    strides: int or `rank`-tuple.
    rank: 3 for I3D (`Unit3D`), 2 for Inception-v1.
    use_batch_norm: BN after the conv (center=True, scale=False, epsilon 1e-3, momentum 0.999).
    use_bias: conv bias (only the logits layer has one).
    activation: 'relu' or None.
    synchronized_bn: cross-replica BN statistics under tf.distribute.
  """

  def __init__(self, filters: int, kernel_size: IntOrTuple = 1, strides: IntOrTuple = 1, rank: int = 3,
               use_batch_norm: bool = True, use_bias: bool = False, activation: Optional[str] = 'relu',
               synchronized_bn: bool = False, kernel_initializer='glorot_uniform', **kwargs):
    super().__init__(**kwargs)
    if rank not in (2, 3):
      raise ValueError(f'rank must be 2 or 3. Received: rank={rank}')
    if activation not in ('relu', None):
      raise ValueError(f'activation must be "relu" or None. Received: activation={activation}')
    self.filters = int(filters)
    self.kernel_size = as_tuple(kernel_size, rank, 'kernel_size')
    self.strides = as_tuple(strides, rank, 'strides')
    self.rank = rank
    self.use_batch_norm = use_batch_norm
    self.use_bias = use_bias
    self.activation = activation
    self.synchronized_bn = synchronized_bn
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    conv_cls = keras.layers.Conv3D if rank == 3 else keras.layers.Conv2D
    self.conv = conv_cls(self.filters, self.kernel_size, strides=self.strides, padding='same',
                         use_bias=use_bias, kernel_initializer=self.kernel_initializer,
                         name=f'conv_{rank}d', dtype=self.dtype_policy)
    self.bn = None
    if use_batch_norm:
      self.bn = keras.layers.BatchNormalization(
          axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, center=True, scale=False,
          synchronized=synchronized_bn, name='batch_norm', dtype=self.dtype_policy)

  def build(self, input_shape):
    self.conv.build(input_shape)
    if self.bn is not None:
      self.bn.build(self.conv.compute_output_shape(input_shape))

  def call(self, inputs, training=None):
    x = self.conv(inputs)
    if self.bn is not None:
      x = self.bn(x, training=training)
    if self.activation == 'relu':
      x = keras.ops.relu(x)
    return x

  def compute_output_shape(self, input_shape):
    return self.conv.compute_output_shape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides, rank=self.rank,
                  use_batch_norm=self.use_batch_norm, use_bias=self.use_bias, activation=self.activation,
                  synchronized_bn=self.synchronized_bn,
                  kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
    return config


def max_pool(rank: int, pool_size: IntOrTuple, strides: IntOrTuple, name: str):
  """TF-SAME max pooling (the official `tf.nn.max_pool3d(..., padding='SAME')`).

  Args:
    rank: 3 (MaxPooling3D) or 2 (MaxPooling2D).
    pool_size: int or `rank`-tuple; I3D's first two pools are (1, 3, 3), no temporal pooling (Sec. 2.4).
    strides: int or `rank`-tuple.
    name: the layer name.

  Raises:
    ValueError: a tuple whose length is not `rank`.
  """
  cls = keras.layers.MaxPooling3D if rank == 3 else keras.layers.MaxPooling2D
  return cls(pool_size=as_tuple(pool_size, rank, 'pool_size'), strides=as_tuple(strides, rank, 'strides'),
             padding='same', name=name)


def inception_module(x, channels: Sequence[int], scope: str, rank: int = 3,
                     branch2_name: str = '0b', synchronized_bn: bool = False):
  """Fig. 3 (right): four branches concatenated on channels.

  Args:
    x: input tensor.
    channels: (b0_1x1, b1_1x1, b1_3x3, b2_1x1, b2_3x3, b3_1x1), the official table.
    scope: the module's name, e.g. 'Mixed_4b'.
    rank: 3 (I3D) or 2 (Inception-v1).
    branch2_name: '0b', or '0a' for the official Mixed_5b quirk (`Branch_2/Conv3d_0a_3x3`).
    synchronized_bn: cross-replica batch norm under tf.distribute.

  Returns:
    The concatenated output, channels[0] + channels[2] + channels[4] + channels[5] channels, same grid.

  Raises:
    ValueError: `channels` does not have 6 entries.
  """
  if len(channels) != 6:
    raise ValueError(f'channels must have 6 entries. Received: channels={channels}')
  conv = 'Conv3d' if rank == 3 else 'Conv2d'
  pool = 'MaxPool3d' if rank == 3 else 'MaxPool'

  def unit(t, filters, k, name):
    return Unit(filters, k, rank=rank, synchronized_bn=synchronized_bn,
                name=scope_to_layer_name(f'{scope}/{name}'))(t)

  b0 = unit(x, channels[0], 1, f'Branch_0/{conv}_0a_1x1')
  b1 = unit(x, channels[1], 1, f'Branch_1/{conv}_0a_1x1')
  b1 = unit(b1, channels[2], 3, f'Branch_1/{conv}_0b_3x3')
  b2 = unit(x, channels[3], 1, f'Branch_2/{conv}_0a_1x1')
  b2 = unit(b2, channels[4], 3, f'Branch_2/{conv}_{branch2_name}_3x3')
  b3 = max_pool(rank, 3, 1, scope_to_layer_name(f'{scope}/Branch_3/{pool}_0a_3x3'))(x)
  b3 = unit(b3, channels[5], 1, f'Branch_3/{conv}_0b_1x1')
  return keras.layers.Concatenate(axis=-1, name=scope)([b0, b1, b2, b3])


@keras.saving.register_keras_serializable(package='i3d_tf')
class HeadAveragePooling(keras.layers.Layer):
  """VALID average pooling of the head, with the window capped at the feature-map size.

  The official I3D head is `avg_pool3d(ksize=[1, 2, 7, 7, 1], strides=1, padding='VALID')`, which only
  works when the Mixed_5c map is at least 2x7x7 (64x224x224 inputs give 8x7x7 -> 7x1x1).  For smaller
  inputs (tests, 112-pixel crops, 8-frame clips) each window dimension is capped at the feature-map
  size, so the head averages what there is; for inputs at least as large as the window this is exactly
  the official VALID pool.  `mode='global'` averages over all of H and W (and keeps time), like slim's
  `global_pool`; both feed the per-time logits.
  """

  def __init__(self, pool_size: IntOrTuple, mode: str = 'official', **kwargs):
    super().__init__(**kwargs)
    if mode not in ('official', 'global'):
      raise ValueError(f'mode must be "official" or "global". Received: mode={mode}')
    self.mode = mode
    self.pool_size = tuple(int(p) for p in pool_size)

  def call(self, inputs):
    x = inputs
    spatial_axes = list(range(1, 1 + len(self.pool_size)))
    if self.mode == 'global':
      # Keep time (axis 1) for 3D inputs; average over the spatial axes.
      axes = spatial_axes[1:] if len(self.pool_size) == 3 else spatial_axes
      return keras.ops.mean(x, axis=axes, keepdims=True)
    static = [x.shape[a] for a in spatial_axes]
    if all(d is not None for d in static):
      # The official op, window capped at the map size (identical to it whenever the map is large enough).
      window = [min(w, d) for w, d in zip(self.pool_size, static)]
      return tf.nn.avg_pool(x, ksize=[1, *window, 1], strides=1, padding='VALID')
    for axis, window in zip(spatial_axes, self.pool_size):
      x = _dynamic_capped_valid_mean(x, axis, window)
    return x

  def get_config(self):
    config = super().get_config()
    config.update(pool_size=self.pool_size, mode=self.mode)
    return config


def _dynamic_capped_valid_mean(x, axis: int, window: int):
  """Sliding-window mean (stride 1, VALID) along `axis` of unknown size, window capped at that size."""
  # Dynamic size: window sum through a cumulative sum (float32 for accuracy), then cast back.
  size = tf.shape(x)[axis]
  k = tf.minimum(window, size)
  xf = tf.cast(x, tf.float32)
  cs = tf.cumsum(xf, axis=axis)
  pad = [[0, 0]] * len(x.shape)
  pad[axis] = [1, 0]
  cs = tf.pad(cs, pad)
  n_out = size - k + 1
  upper = tf.gather(cs, tf.range(k, k + n_out), axis=axis)
  lower = tf.gather(cs, tf.range(0, n_out), axis=axis)
  return tf.cast((upper - lower) / tf.cast(k, tf.float32), x.dtype)


@keras.saving.register_keras_serializable(package='i3d_tf')
class Mean(keras.layers.Layer):
  """Mean over fixed axes (logits: spatial squeeze, then the temporal average of Sec. 2.4)."""

  def __init__(self, axis: Sequence[int], **kwargs):
    super().__init__(**kwargs)
    self.axis = tuple(int(a) for a in (axis if isinstance(axis, (list, tuple)) else [axis]))

  def call(self, inputs):
    return keras.ops.mean(inputs, axis=self.axis)

  def compute_output_shape(self, input_shape):
    return tuple(d for i, d in enumerate(input_shape) if i not in self.axis)

  def get_config(self):
    config = super().get_config()
    config.update(axis=self.axis)
    return config




@keras.saving.register_keras_serializable(package='i3d_tf')
class StreamFusion(keras.layers.Layer):
  """Late fusion of per-stream class scores (Sec. 2.3, 2.4: streams averaged at test).

  'logits_sum' is the official kinetics-i3d `evaluate_sample.py` (rgb + flow logits, then softmax);
  'logits_mean' is the same up to a factor; 'softmax_mean' averages the streams' probabilities (the
  paper's "averaged their predictions") and returns log-probabilities, so every mode returns scores
  whose softmax is the fused prediction and training with `from_logits=True` works for all three.
  """

  def __init__(self, fusion: str = 'logits_sum', **kwargs):
    kwargs.setdefault('dtype', 'float32')  # fused scores stay float32 under mixed precision
    super().__init__(**kwargs)
    self.fusion = scoring.check_fusion(fusion)

  def call(self, inputs):
    return scoring.fuse_streams([keras.ops.cast(t, 'float32') for t in inputs], self.fusion)

  def compute_output_shape(self, input_shape):
    return input_shape[0]

  def get_config(self):
    config = super().get_config()
    config.update(fusion=self.fusion)
    return config
