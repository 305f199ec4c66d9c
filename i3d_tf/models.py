"""Registered I3D models: single streams and Two-Stream I3D (Sec. 2.4, Fig. 2e)."""

from typing import Optional

import keras

from i3d_tf import layers as L
from i3d_tf.inception import I3D, MODALITY_CHANNELS, MODALITY_SCOPE
from i3d_tf.registry import register_model


def TwoStreamI3D(num_classes: int = 400, fusion: str = 'logits_sum', rgb_model: Optional[keras.Model] = None,
                 flow_model: Optional[keras.Model] = None, name: str = 'two_stream_i3d',
                 **i3d_kwargs) -> keras.Model:
  """Two-Stream I3D: an RGB and a flow I3D, trained separately, fused at test (Sec. 2.4).

  Takes `{'rgb': [B, T, H, W, 3], 'flow': [B, T, H, W, 2]}` and returns fused class scores (see
  `layers.StreamFusion`; default: sum of logits as the official release).  The streams are nested
  models named 'RGB' and 'Flow' (the official checkpoint scopes); pass trained `rgb_model` /
  `flow_model` to combine two separately trained streams.

  Args:
    num_classes: classes of the streams built here (ignored for a given stream).
    fusion: a `scoring.FUSIONS` mode: 'logits_sum' (official), 'logits_mean' or 'softmax_mean'.
    rgb_model, flow_model: trained single-stream models (3 and 2 input channels) or None to build `I3D`s.
    name: model name.
    **i3d_kwargs: further `I3D` arguments for the streams built here.

  Returns:
    A `keras.Model` mapping the dict of inputs (values in [-1, 1]) to float32 fused scores [B, num_classes].

  Raises:
    ValueError: an unknown fusion, or a given stream with the wrong input channels.
  """
  streams = {}
  for modality, given in (('rgb', rgb_model), ('flow', flow_model)):
    if given is None:
      given = I3D(modality, num_classes, name=MODALITY_SCOPE[modality], **i3d_kwargs)
    elif given.name != MODALITY_SCOPE[modality]:
      # Rename with a copy-free wrapper so the nested scopes are always 'RGB' and 'Flow'; single tensor
      # in and out (`inputs`/`outputs` lists would nest the fused logits as [1, B, K]).
      given = keras.Model(given.input, given.output, name=MODALITY_SCOPE[modality])
    streams[modality] = given
  inputs = {m: keras.Input(shape=s.input_shape[1:], name=m) for m, s in streams.items()}
  for m, s in streams.items():
    if s.input_shape[-1] != MODALITY_CHANNELS[m]:
      raise ValueError(f'The {m} stream must take {MODALITY_CHANNELS[m]} channels. Received: {s.input_shape}')
  outputs = [streams[m](inputs[m]) for m in ('rgb', 'flow')]
  fused = L.StreamFusion(fusion, name='fusion')(outputs)
  return keras.Model(inputs, fused, name=name)


@register_model('i3d_rgb', fully_convolutional=True, init_2d='inflate')
def _i3d_rgb(num_classes, **kwargs):
  return I3D('rgb', num_classes, **kwargs)


@register_model('i3d_flow', fully_convolutional=True, init_2d='inflate')
def _i3d_flow(num_classes, **kwargs):
  return I3D('flow', num_classes, **kwargs)


@register_model('two_stream_i3d', fully_convolutional=True, init_2d='inflate', streams=('RGB', 'Flow'))
def _two_stream_i3d(num_classes, **kwargs):
  return TwoStreamI3D(num_classes, **kwargs)
