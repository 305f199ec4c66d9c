"""One model registry: the names every binary, config and input pipeline use (Table 1 rows).

A plain dict filled by the `register_model` decorator; registering a name twice raises.  Each entry is
paired with its Table 1 input interface in `data_pipelines.input_specs` and carries the facts that code
around a model needs (`ModelInfo`), so no other module switches on model names.
"""

import dataclasses
import importlib
from typing import Callable, Dict, Optional, Tuple

import keras

from data_pipelines.input_specs import InputSpec, get_input_spec

@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What the code around a registered model needs to know about it.

  fully_convolutional: takes any T, H, W (I3D): tested on whole videos, restored without an input shape.
  per_step_outputs: returns per-time-step logits [B, T, K] and takes any T (ConvNet+LSTM, Sec. 2.1).
  init_2d: how ImageNet Inception-v1 weights get in (`--init=inflate_2d:`): 'inflate' (Sec. 2.4), 'copy'
    (the 2D streams of the baselines, Sec. 2.1-2.3), or None (the 3D-ConvNet is trained from scratch, Sec. 2.2).
  streams: the nested single-stream models of a two-stream I3D, each initialised on its own.
  """
  name: str
  builder: Callable[..., keras.Model]
  fully_convolutional: bool = False
  per_step_outputs: bool = False
  init_2d: Optional[str] = None
  streams: Tuple[str, ...] = ()


_BUILDERS: Dict[str, ModelInfo] = {}
# Modules whose import registers models; imported on the first lookup.
_MODEL_MODULES = ('i3d_tf.models', 'i3d_tf.baselines')


def register_model(name: str, **facts):
  """Decorator: registers `builder(num_classes, **kwargs) -> keras.Model` under `name`, with its `ModelInfo`
  facts (`fully_convolutional=True`, `init_2d='inflate'`, ...)."""

  def decorator(builder):
    if name in _BUILDERS:
      raise ValueError(f'Model {name!r} is registered twice ({_BUILDERS[name].builder.__module__} and '
                       f'{builder.__module__}).')
    get_input_spec(name)  # Every registered model has a Table 1 interface.
    _BUILDERS[name] = ModelInfo(name, builder, **facts)
    return builder

  return decorator


def _import_model_modules():
  for module in _MODEL_MODULES:
    try:
      importlib.import_module(module)
    except ModuleNotFoundError as e:
      if e.name != module:  # A missing dependency inside the module is a real error.
        raise


def list_models():
  """Sorted names of the registered models (the model modules are imported first)."""
  _import_model_modules()
  return sorted(_BUILDERS)


def build_model(name: str, /, num_classes: int, **kwargs) -> keras.Model:
  """Builds the registered model `name` with `num_classes` outputs; kwargs (a Keras `name=` too) go to its builder."""
  _import_model_modules()
  if name not in _BUILDERS:
    raise ValueError(f'Unknown model {name!r}. Registered: {sorted(_BUILDERS)} (modules {_MODEL_MODULES}). '
                     f'Received: name={name}')
  return _BUILDERS[name].builder(num_classes=num_classes, **kwargs)


def model_info(name: str) -> ModelInfo:
  """The `ModelInfo` of the registered model `name`; ValueError for an unknown name."""
  _import_model_modules()
  if name not in _BUILDERS:
    raise ValueError(f'Unknown model {name!r}. Registered: {sorted(_BUILDERS)}. Received: name={name}')
  return _BUILDERS[name]


def input_spec(name: str) -> InputSpec:
  """The Table 1 input interface of the registered model `name`."""
  return get_input_spec(name)
