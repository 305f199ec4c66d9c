"""The four other architectures of the paper as registered models: Sec. 2.1-2.3, Fig. 2 (a)-(d), Table 1.

  * `convnet_lstm` (Sec. 2.1): Inception-v1 per frame -> features after the last average pool -> LSTM
    with recurrent batch normalization (Cooijmans et al. 2016), 512 units -> fully connected classifier.
  * `c3d` (Sec. 2.2): C3D (8 convs, 5 pools, 2 FC) with BN after every conv and FC layer and temporal
    stride 2 in the first pooling layer; trained from scratch.
  * `two_stream` (Sec. 2.3): an RGB Inception-v1 on one frame and a flow Inception-v1 on 10 stacked flow
    fields (20 channels), predictions averaged (`StreamFusion`).
  * `fused_3d` (Sec. 2.3): the two Inception-v1 streams on 5 frames, Mixed_5c grids concatenated and fused
    by a 3x3x3 conv (512) + 3x3x3 max pool + fully connected layer.

Every 2D network is the one Inception-v1 of `i3d_tf.inception` (slim names), nested as a `keras.Model` and
applied per frame by `PerFrame`, so ImageNet-style 2D weights load into it (`init_from_inception_v1`).

Output contract (for the trainer and the evaluator; see `training.per_example_loss`, `scoring.last_step`):
  * every model returns class scores to be used with `from_logits=True`;
  * `convnet_lstm` returns per-time-step logits (B, T, C): the training loss is the cross-entropy averaged
    over all time steps, evaluation uses the last step only (Sec. 2.1): `scoring.last_step(outputs)`, or the same
    weights built with `output_steps='last'`, which returns (B, C);
  * the others return (B, C).  Test views ([B, V, T, H, W, C], Table 1) are folded into the batch by the
    evaluator, which averages the V predictions.
"""

from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from i3d_tf import layers as L
from i3d_tf import scoring
from i3d_tf.inception import InceptionV1
from i3d_tf.inflation import unit_assignments, units
from data_pipelines.input_specs import get_input_spec
from i3d_tf.registry import register_model

LSTM_UNITS = 512  # Sec. 2.1.
FLOW_FRAMES = 10  # Sec. 2.3: a stack of 10 flow frames, 2 channels each.
FUSED_CHANNELS = 512  # Sec. 2.3: 3x3x3 fusion conv with 512 output channels.
GAUSSIAN_STDDEV = 0.01  # Sec. 2.3: "new layers initialized with Gaussian noise"; std is ours.
RECURRENT_BN_GAMMA = 0.1  # Cooijmans et al. 2016 initialise the BN gammas to 0.1.
STREAM_NAMES = {'rgb': 'RGB', 'flow': 'Flow'}  # Nested stream model names (checkpoint scopes).


def _gaussian(seed=None):
  return keras.initializers.RandomNormal(stddev=GAUSSIAN_STDDEV, seed=seed)


def _bn(name, center=True, scale=False, gamma=1.0, synchronized=False):
  return keras.layers.BatchNormalization(momentum=L.BN_MOMENTUM, epsilon=L.BN_EPSILON, center=center,
                                         scale=scale, gamma_initializer=keras.initializers.Constant(gamma),
                                         synchronized=synchronized, name=name)


def _check_shape(what: str, shape, rank: int, channels: int):
  shape = tuple(shape)
  if len(shape) != rank or shape[-1] != channels or any(d is not None and d < 1 for d in shape[:-1]):
    raise ValueError(f'{what} must be {rank} entries ending in {channels} channels. Received: {what}={shape}')
  return shape


def _check_common(num_classes: int, dropout_keep_prob: float):
  if num_classes < 1:
    raise ValueError(f'num_classes must be >= 1. Received: num_classes={num_classes}')
  if not 0.0 < dropout_keep_prob <= 1.0:
    raise ValueError(f'dropout_keep_prob must be in (0, 1]. Received: dropout_keep_prob={dropout_keep_prob}')


# ----------------------------------------------------------------------------------------------------------
# Per-frame application of a 2D network.


@keras.saving.register_keras_serializable(package='i3d_tf')
class PerFrame(keras.layers.Layer):
  """Applies a 2D model to every time step: [B, T, H, W, C] -> [B, T, ...out].

  Time is folded into the batch (one call of the nested model on B*T images), so batch norm sees all
  frames of the batch together, as one network replicated over frames would.  The nested model keeps its
  own layer names (slim `Conv2d_1a_7x7`, `Mixed_4b...`), so 2D weights copy into it by name.
  """

  def __init__(self, frame_model: keras.Model, **kwargs):
    super().__init__(**kwargs)
    if isinstance(frame_model, dict):
      frame_model = keras.saving.deserialize_keras_object(frame_model)
    self.frame_model = frame_model

  def build(self, input_shape):
    self.built = True

  def call(self, inputs, training=None):
    shape = tf.shape(inputs)
    frames = tf.reshape(inputs, tf.concat([[-1], shape[2:]], 0))
    frames.set_shape((None,) + tuple(inputs.shape[2:]))
    out = self.frame_model(frames, training=training)
    out_shape = tf.shape(out)
    result = tf.reshape(out, tf.concat([shape[:2], out_shape[1:]], 0))
    result.set_shape(tuple(inputs.shape[:2]) + tuple(out.shape[1:]))
    return result

  def compute_output_shape(self, input_shape):
    out = self.frame_model.compute_output_shape((None,) + tuple(input_shape[2:]))
    return tuple(input_shape[:2]) + tuple(out[1:])

  def get_config(self):
    config = super().get_config()
    config.update(frame_model=keras.saving.serialize_keras_object(self.frame_model))
    return config


def frame_models(model: keras.Model) -> Dict[str, keras.Model]:
  """The nested 2D Inception-v1 models (inside `PerFrame` layers) of a baseline `model`, by name
  ('InceptionV1', or 'RGB' and 'Flow'); {} for a model without one (C3D, I3D)."""
  return {layer.frame_model.name: layer.frame_model
          for layer in model._flatten_layers(include_self=False, recursive=True) if isinstance(layer, PerFrame)}


# ----------------------------------------------------------------------------------------------------------
# ConvNet+LSTM (Sec. 2.1).


@keras.saving.register_keras_serializable(package='i3d_tf')
class BatchNormLSTMCell(keras.layers.Layer):
  """LSTM cell with recurrent batch normalization (Cooijmans et al. 2016, Eq. 6-8).

  The cell receives the already normalised input projection BN(W_x x_t) (computed for all steps at
  once outside the recurrence) and adds BN(W_h h_{t-1}) + b; the cell state is normalised before the
  output tanh: h_t = sigmoid(o) * tanh(BN(c_t)).  The projection BNs have no offset (b plays that role)
  and gamma initialised to 0.1; the forget-gate bias starts at 1.

  Statistics: at training every step is normalised with its own minibatch statistics (the only ones
  available inside the recurrence); the population statistics used at inference are one set shared by
  all time steps (not Cooijmans' per-step sets), so the 50-step test sequences need no extrapolation
  from the 25-step training ones (Table 1).
  """

  def __init__(self, units: int, synchronized_bn: bool = False, **kwargs):
    super().__init__(**kwargs)
    if units < 1:
      raise ValueError(f'units must be >= 1. Received: units={units}')
    self.units = int(units)
    self.state_size = [self.units, self.units]
    self.output_size = self.units
    self.synchronized_bn = synchronized_bn
    self.bn_hidden = _bn('bn_hidden', center=False, scale=True, gamma=RECURRENT_BN_GAMMA,
                         synchronized=synchronized_bn)
    self.bn_cell = _bn('bn_cell', center=True, scale=True, gamma=RECURRENT_BN_GAMMA, synchronized=synchronized_bn)

  def build(self, input_shape):
    u = self.units
    if input_shape[-1] != 4 * u:
      raise ValueError(f'The cell takes the 4*units input projection. Received: input_shape={input_shape}')
    self.recurrent_kernel = self.add_weight(shape=(u, 4 * u), initializer='orthogonal', name='recurrent_kernel')
    self.bias = self.add_weight(
        shape=(4 * u,), name='bias',
        initializer=keras.initializers.Constant(np.concatenate([np.zeros(u), np.ones(u), np.zeros(2 * u)])))
    self.bn_hidden.build((None, 4 * u))
    self.bn_cell.build((None, u))

  def call(self, inputs, states, training=None):
    h, c = states
    z = inputs + self.bn_hidden(keras.ops.matmul(h, self.recurrent_kernel), training=training) + self.bias
    i, f, g, o = keras.ops.split(z, 4, axis=-1)  # gate order i, f, g, o (forget bias at [u:2u]).
    c = keras.ops.sigmoid(f) * c + keras.ops.sigmoid(i) * keras.ops.tanh(g)
    h = keras.ops.sigmoid(o) * keras.ops.tanh(self.bn_cell(c, training=training))
    return h, [h, c]

  def get_config(self):
    config = super().get_config()
    config.update(units=self.units, synchronized_bn=self.synchronized_bn)
    return config


@keras.saving.register_keras_serializable(package='i3d_tf')
class LastTimeStep(keras.layers.Layer):
  """[B, T, C] -> [B, C]: the output on the last frame (Sec. 2.1: "during testing we consider only the
  output on the last frame")."""

  def call(self, inputs):
    return inputs[:, -1]

  def compute_output_shape(self, input_shape):
    return (input_shape[0],) + tuple(input_shape[2:])


def ConvNetLSTM(num_classes: int = 400, input_shape: Optional[Sequence] = None, lstm_units: int = LSTM_UNITS,
                dropout_keep_prob: float = 0.5, output_steps: str = 'all', synchronized_bn: bool = False,
                name: str = 'convnet_lstm') -> keras.Model:
  """ConvNet+LSTM (Sec. 2.1, Fig. 2a): Inception-v1 per frame -> avg pool -> BN-LSTM(512) -> FC.

  Args:
    num_classes: classifier size (Kinetics: 400).
    input_shape: (T, H, W, 3); default (None, 224, 224, 3): 25 frames at train, 50 at test (Table 1),
      frames 1 in 5 of a 25 fps stream (the input pipeline's job).
    lstm_units: LSTM hidden units (paper: 512).
    dropout_keep_prob: keep probability before the classifier.
    synchronized_bn: cross-replica batch norm under tf.distribute (every BN, LSTM ones included).
    output_steps: 'all' (training: per-step logits) or 'last' (evaluation: the last step's logits only,
      same weights, so an 'all' checkpoint loads into it).
    name: model name.

  Returns:
    A model mapping [B, T, H, W, 3] to per-time-step logits [B, T, num_classes] ('all'; train on all
    steps with `training.per_example_loss`, evaluate `scoring.last_step(outputs)`) or [B, num_classes] ('last').
  """
  _check_common(num_classes, dropout_keep_prob)
  if output_steps not in ('all', 'last'):
    raise ValueError(f'output_steps must be "all" or "last". Received: output_steps={output_steps}')
  if input_shape is None:
    _, h, w, c = get_input_spec('convnet_lstm').input_shape('rgb')
    input_shape = (None, h, w, c)
  input_shape = _check_shape('input_shape', input_shape, 4, 3)
  inputs = keras.Input(shape=input_shape, name='rgb')
  trunk = InceptionV1(final_endpoint='Mixed_5c', input_shape=input_shape[1:], synchronized_bn=synchronized_bn,
                      name='InceptionV1')
  x = PerFrame(trunk, name='InceptionV1.PerFrame')(inputs)  # [B, T, 7, 7, 1024] at 224.
  # The last average pool of Inception-v1: 7x7 at 224 (the whole map), global at other sizes.
  x = L.Mean((2, 3), name='AvgPool')(x)  # [B, T, 1024]
  x = keras.layers.Dense(4 * lstm_units, use_bias=False, name='LSTM.input_kernel')(x)
  x = _bn('LSTM.input_bn', center=False, scale=True, gamma=RECURRENT_BN_GAMMA,
          synchronized=synchronized_bn)(x)  # BN(W_x x_t)
  cell = BatchNormLSTMCell(lstm_units, synchronized_bn=synchronized_bn, name='cell')
  x = keras.layers.RNN(cell, return_sequences=True, name='LSTM')(x)
  x = keras.layers.Dropout(1.0 - dropout_keep_prob, name='Logits.Dropout')(x)
  x = keras.layers.Dense(num_classes, dtype='float32', name='Logits.fc')(x)  # [B, T, C], float32 logits
  if output_steps == 'last':
    x = LastTimeStep(name='Logits.LastStep')(x)  # [B, C]
  return keras.Model(inputs, x, name=name)


# ----------------------------------------------------------------------------------------------------------
# C3D (Sec. 2.2).

# (name, filters) per conv, None = pool.  Original C3D (Tran et al. 2015); all convs 3x3x3.
C3D_LAYERS = (('conv1a', 64), ('pool1', None), ('conv2a', 128), ('pool2', None),
              ('conv3a', 256), ('conv3b', 256), ('pool3', None), ('conv4a', 512), ('conv4b', 512),
              ('pool4', None), ('conv5a', 512), ('conv5b', 512), ('pool5', None))
C3D_FC_UNITS = 4096


def C3D(num_classes: int = 400, input_shape: Optional[Sequence] = None, fc_units: int = C3D_FC_UNITS,
        dropout_keep_prob: float = 0.5, synchronized_bn: bool = False, name: str = 'c3d') -> keras.Model:
  """The C3D-like 3D ConvNet of Sec. 2.2 (Fig. 2b), trained from scratch.

  8 convs (3x3x3, each conv + BN + ReLU as `layers.Unit`), 5 max pools (2x2x2, stride 2, TF-SAME: the
  paper's temporal stride 2 in pool1 where C3D has 1x2x2; pool5 pads 7x7 -> 4x4 as C3D's), then fc6 and
  fc7 (4096, BN + ReLU + dropout) and the linear classifier fc8.

  Args:
    num_classes: classifier size.
    input_shape: (T, H, W, 3) with static T, H, W (fc6 flattens); default (16, 112, 112, 3).
    fc_units: width of fc6 and fc7 (paper: 4096).
    dropout_keep_prob: keep probability after fc6 and fc7.
    synchronized_bn: cross-replica batch norm under tf.distribute.
    name: model name.

  Returns:
    A model mapping [B, T, H, W, 3] to logits [B, num_classes].

  Raises:
    ValueError: invalid sizes, or an input shape that is not static.
  """
  _check_common(num_classes, dropout_keep_prob)
  if fc_units < 1:
    raise ValueError(f'fc_units must be >= 1. Received: fc_units={fc_units}')
  if input_shape is None:
    input_shape = get_input_spec('c3d').input_shape('rgb')
  input_shape = _check_shape('input_shape', input_shape, 4, 3)
  if any(d is None for d in input_shape):
    raise ValueError(f'C3D flattens before fc6 and needs a static input shape. Received: input_shape={input_shape}')
  inputs = keras.Input(shape=input_shape, name='rgb')
  x = inputs
  for layer_name, filters in C3D_LAYERS:
    if filters is None:
      x = L.max_pool(3, 2, 2, name=layer_name)(x)
    else:
      x = L.Unit(filters, 3, rank=3, synchronized_bn=synchronized_bn, name=layer_name)(x)
  x = keras.layers.Flatten(name='flatten')(x)  # 1x4x4x512 = 8192 at 16x112x112.
  for fc in ('fc6', 'fc7'):
    # A fully connected Unit: matmul (no bias) -> BN (offset, no scale) -> ReLU, as the conv units.
    x = keras.layers.Dense(fc_units, use_bias=False, name=fc)(x)
    x = _bn(f'{fc}.batch_norm', synchronized=synchronized_bn)(x)
    x = keras.layers.ReLU(name=f'{fc}.relu')(x)
    x = keras.layers.Dropout(1.0 - dropout_keep_prob, name=f'{fc}.dropout')(x)
  # 'Logits.' marks the classifier (transfer); float32 logits under mixed precision.
  x = keras.layers.Dense(num_classes, dtype='float32', name='Logits.fc8')(x)
  return keras.Model(inputs, x, name=name)


# ----------------------------------------------------------------------------------------------------------
# Two-stream networks (Sec. 2.3).


def _stream_shapes(model_name: str, input_shapes: Optional[Dict[str, Sequence]], flow_frames: int,
                   free_time: bool):
  spec = get_input_spec(model_name)
  if input_shapes is None:
    input_shapes = {m: spec.input_shape(m) for m in ('rgb', 'flow')}
    if free_time:
      input_shapes = {m: (None,) + tuple(s[1:]) for m, s in input_shapes.items()}
  if set(input_shapes) != {'rgb', 'flow'}:
    raise ValueError(f'input_shapes must have keys "rgb" and "flow". Received: input_shapes={input_shapes}')
  return {'rgb': _check_shape('input_shapes["rgb"]', input_shapes['rgb'], 4, 3),
          'flow': _check_shape('input_shapes["flow"]', input_shapes['flow'], 4, 2 * flow_frames)}


def TwoStream(num_classes: int = 400, fusion: str = 'softmax_mean', input_shapes: Optional[Dict] = None,
              flow_frames: int = FLOW_FRAMES, dropout_keep_prob: float = 0.8, synchronized_bn: bool = False,
              name: str = 'two_stream') -> keras.Model:
  """Two-Stream network (Simonyan & Zisserman; Sec. 2.3, Fig. 2c) with Inception-v1 streams.

  An RGB Inception-v1 on a frame and a flow Inception-v1 on `flow_frames` stacked flow fields
  (2 * flow_frames input channels, (x0, y0, x1, y1, ...)); per-frame logits are averaged over the time
  axis, then the streams' predictions are averaged (`StreamFusion`, default 'softmax_mean': "averaging
  the predictions"; it returns log-probabilities, so training end to end through the average works
  with `from_logits=True`).

  Args:
    num_classes: classifier size of each stream.
    fusion: a `scoring.FUSIONS` mode.
    input_shapes: {'rgb': (T, H, W, 3), 'flow': (T, H, W, 2 * flow_frames)}; default T=None and 224
      crops.  Training feeds T=1 (Table 1); T>1 averages the snapshots' logits.  Test snapshots (25) come
      as views the evaluator folds into the batch.
    flow_frames: flow fields per stack (paper: 10).
    dropout_keep_prob: keep probability of each Inception-v1 head (slim default 0.8).
    synchronized_bn: cross-replica batch norm under tf.distribute.
    name: model name.

  Returns:
    A model mapping {'rgb': [B, T, H, W, 3], 'flow': [B, T, H, W, 20]} to fused scores [B, C].
  """
  _check_common(num_classes, dropout_keep_prob)
  if flow_frames < 1:
    raise ValueError(f'flow_frames must be >= 1. Received: flow_frames={flow_frames}')
  scoring.check_fusion(fusion)
  shapes = _stream_shapes('two_stream', input_shapes, flow_frames, free_time=True)
  inputs = {m: keras.Input(shape=shapes[m], name=m) for m in ('rgb', 'flow')}
  logits = []
  for m in ('rgb', 'flow'):
    net = InceptionV1(num_classes, input_shape=shapes[m][1:], channels=shapes[m][-1],
                      dropout_keep_prob=dropout_keep_prob, synchronized_bn=synchronized_bn, name=STREAM_NAMES[m])
    x = PerFrame(net, name=f'{STREAM_NAMES[m]}.PerFrame')(inputs[m])  # [B, T, C]
    logits.append(L.Mean(1, name=f'{STREAM_NAMES[m]}.TemporalAverage')(x))
  fused = L.StreamFusion(fusion, name='fusion')(logits)
  return keras.Model(inputs, fused, name=name)


def Fused3D(num_classes: int = 400, input_shapes: Optional[Dict] = None, flow_frames: int = FLOW_FRAMES,
            fusion_channels: int = FUSED_CHANNELS, dropout_keep_prob: float = 0.5,
            seed: Optional[int] = None, synchronized_bn: bool = False, name: str = 'fused_3d') -> keras.Model:
  """3D-Fused two-stream network (Feichtenhofer et al. 2016 as Sec. 2.3 implements it, Fig. 2d).

  Both Inception-v1 streams run per frame up to Mixed_5c (the grids "before the last average pooling
  layer", 5x7x7 at 5 frames of 224); the RGB and flow grids are concatenated on channels (1024 + 1024)
  and fused by a 3x3x3 conv with 512 outputs (+ BN + ReLU, Sec. 2.5), a 3x3x3 max pool (stride 2,
  TF-SAME), an average over the remaining grid, dropout and a fully connected classifier.  The average
  before the FC is our choice: it is what Table 1's 39M implies (an FC on the flattened 3x4x4x512 grid
  would add 9.6M: 49.4M).  New layers start from Gaussian noise (std `GAUSSIAN_STDDEV`).

  Args:
    num_classes: classifier size.
    input_shapes: {'rgb': (5, 224, 224, 3), 'flow': (5, 224, 224, 20)} by default (Table 1).
    flow_frames: flow fields per time step (paper: 10).
    fusion_channels: outputs of the fusion conv (paper: 512).
    dropout_keep_prob: keep probability before the classifier.
    seed: seed of the Gaussian initialisers.
    synchronized_bn: cross-replica batch norm under tf.distribute.
    name: model name.

  Returns:
    A model mapping {'rgb': [B, 5, H, W, 3], 'flow': [B, 5, H, W, 20]} to logits [B, num_classes].

  Raises:
    ValueError: invalid sizes, or RGB and flow grids that differ in T, H or W.
  """
  _check_common(num_classes, dropout_keep_prob)
  if flow_frames < 1 or fusion_channels < 1:
    raise ValueError(f'flow_frames and fusion_channels must be >= 1. '
                     f'Received: flow_frames={flow_frames}, fusion_channels={fusion_channels}')
  shapes = _stream_shapes('fused_3d', input_shapes, flow_frames, free_time=False)
  if shapes['rgb'][:-1] != shapes['flow'][:-1]:
    raise ValueError(f'RGB and flow grids must align (same T, H, W). Received: input_shapes={shapes}')
  inputs = {m: keras.Input(shape=shapes[m], name=m) for m in ('rgb', 'flow')}
  grids = []
  for m in ('rgb', 'flow'):
    trunk = InceptionV1(final_endpoint='Mixed_5c', input_shape=shapes[m][1:], channels=shapes[m][-1],
                        synchronized_bn=synchronized_bn, name=STREAM_NAMES[m])
    grids.append(PerFrame(trunk, name=f'{STREAM_NAMES[m]}.PerFrame')(inputs[m]))  # [B, T, 7, 7, 1024]
  x = keras.layers.Concatenate(axis=-1, name='Fusion.Concat')(grids)
  x = L.Unit(fusion_channels, 3, rank=3, kernel_initializer=_gaussian(seed), synchronized_bn=synchronized_bn,
             name='Fusion.Conv3d_3x3x3')(x)
  x = L.max_pool(3, 3, 2, name='Fusion.MaxPool3d_3x3x3')(x)
  x = L.Mean((1, 2, 3), name='Fusion.AvgPool')(x)
  x = keras.layers.Dropout(1.0 - dropout_keep_prob, name='Logits.Dropout')(x)
  x = keras.layers.Dense(num_classes, kernel_initializer=_gaussian(None if seed is None else seed + 1),
                         dtype='float32', name='Logits.fc')(x)
  return keras.Model(inputs, x, name=name)


# ----------------------------------------------------------------------------------------------------------
# The frame-averaging straw man of Sec. 1 (the demo's reference row).


def FrameAveragingCNN(num_classes: int, filters: Sequence[int] = (32, 64, 128),
                      name: str = 'frame_averaging_2d') -> keras.Model:
  """A small per-frame 2D CNN whose logits are averaged over time: it cannot tell a video from its reversal.

  Sec. 1: a model that "looks at frames independently and averages its predictions" cannot tell "opening a
  door" from "closing a door".  Every conv is 1 x k x k (no temporal mixing), so the logits of [B, T, H, W, 3]
  (values in [-1, 1]) are the mean over t of a function of frame t alone: exactly invariant to time order.
  Not a Table 1 model (not registered); `experiments/demo.py` scores it on the order-only synthetic classes.

  Args:
    num_classes: classifier size.
    filters: output channels of each 1x3x3 conv (+ BN + ReLU + 1x2x2 max pool) block.
    name: model name.

  Returns:
    A model mapping [B, T, H, W, 3] to logits [B, num_classes].
  """
  x = inputs = keras.Input((None, None, None, 3), name='inputs')
  for i, n in enumerate(filters):
    x = keras.layers.Conv3D(n, (1, 3, 3), padding='same', use_bias=False, name=f'conv{i}')(x)
    x = keras.layers.BatchNormalization(name=f'bn{i}')(x)
    x = keras.layers.ReLU(name=f'relu{i}')(x)
    x = keras.layers.MaxPooling3D((1, 2, 2), name=f'pool{i}')(x)
  x = L.Mean((2, 3), name='spatial_mean')(x)  # [B, T, C]: per-frame features
  x = keras.layers.Dense(num_classes, name='per_frame_logits')(x)  # [B, T, K]
  x = L.Mean(1, name='time_average')(x)  # logits averaged over time
  return keras.Model(inputs, x, name=name)


# ----------------------------------------------------------------------------------------------------------
# ImageNet-style initialisation (Sec. 2, 2.5: "all models but C3D use ImageNet-pretrained Inception-v1").


def init_from_inception_v1(model: keras.Model, inception_v1: keras.Model, channel_rule: str = 'mean',
                           include_logits: Optional[bool] = None) -> Dict[str, Dict[str, list]]:
  """Copies a 2D `InceptionV1`'s weights into every nested 2D stream / trunk of a baseline.

  Units are matched by their slim names.  The first conv of a stream with other input channels (the
  20-channel flow stream) gets `adapt_input_channels(kernel, 20, channel_rule)`: by default ('mean', the
  cross-modality rule of TSN) every flow channel gets the RGB kernel averaged over colour.  BN offsets and
  moving statistics and the logits bias are copied; a stream's classifier is copied only when the class
  counts agree (default), ImageNet's 1000-way one is otherwise left fresh.  All shapes are checked before
  anything is written; any destination unit without a source raises.

  Args:
    model: a baseline with 2D streams (convnet_lstm, two_stream, fused_3d); modified in place.
    inception_v1: the source 2D `InceptionV1` (e.g. ImageNet-trained).
    channel_rule: 'mean' or 'tile' (`inflation.adapt_input_channels`), for streams with other input channels.
    include_logits: copy the classifier; None: only where the class counts agree.

  Returns:
    {stream name: {'copied': [unit names], 'skipped': [unit names]}}.

  Raises:
    ValueError: for a model without 2D streams (C3D) or any mismatch.
  """
  streams = frame_models(model)
  if not streams:
    raise ValueError(f'{model.name} has no 2D Inception-v1 stream to initialise (C3D is trained from '
                     f'scratch, Sec. 2.2). Received: model={model.name}')
  src = units(inception_v1)
  report, assignments, problems = {}, [], []
  for stream_name, stream in streams.items():
    pairs, copied, skipped, found = unit_assignments(src, units(stream), channel_rule=channel_rule,
                                                     include_logits=include_logits, where=f'{stream_name}/')
    assignments += pairs
    problems += found
    report[stream_name] = {'copied': copied, 'skipped': skipped}
  if problems:
    raise ValueError(f'Cannot initialise {model.name} from {inception_v1.name}:\n  ' + '\n  '.join(problems))
  for var, value in assignments:
    var.assign(value)
  return report


# ----------------------------------------------------------------------------------------------------------
# Registry.


@register_model('convnet_lstm', per_step_outputs=True, init_2d='copy')
def _convnet_lstm(num_classes, **kwargs):
  return ConvNetLSTM(num_classes, **kwargs)


@register_model('c3d')
def _c3d(num_classes, **kwargs):
  return C3D(num_classes, **kwargs)


@register_model('two_stream', init_2d='copy')
def _two_stream(num_classes, **kwargs):
  return TwoStream(num_classes, **kwargs)


@register_model('fused_3d', init_2d='copy')
def _fused_3d(num_classes, **kwargs):
  return Fused3D(num_classes, **kwargs)
