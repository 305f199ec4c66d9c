"""One model registry: the names every binary, config and input pipeline use (Table 1 rows).

A plain dict filled by the `register_model` decorator; registering a name twice raises.  Each entry is
paired with its Table 1 input interface in `data_pipelines.input_specs`.
"""

import importlib
from typing import Callable, Dict

import keras

from data_pipelines.input_specs import InputSpec, get_input_spec

_BUILDERS: Dict[str, Callable[..., keras.Model]] = {}
# Modules whose import registers models; imported on the first lookup.
_MODEL_MODULES = ('i3d_tf.models', 'i3d_tf.baselines')


def register_model(name: str):
  """Decorator: registers `builder(num_classes, **kwargs) -> keras.Model` under `name`."""

  def decorator(builder):
    if name in _BUILDERS:
      raise ValueError(f'Model {name!r} is registered twice ({_BUILDERS[name].__module__} and '
                       f'{builder.__module__}).')
    get_input_spec(name)  # Every registered model has a Table 1 interface.
    _BUILDERS[name] = builder
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
  _import_model_modules()
  return sorted(_BUILDERS)


def build_model(name: str, /, num_classes: int, **kwargs) -> keras.Model:
  """Builds the registered model `name` with `num_classes` outputs; kwargs (a Keras `name=` too) go to its builder."""
  _import_model_modules()
  if name not in _BUILDERS:
    raise ValueError(f'Unknown model {name!r}. Registered: {sorted(_BUILDERS)} (modules {_MODEL_MODULES}). '
                     f'Received: name={name}')
  return _BUILDERS[name](num_classes=num_classes, **kwargs)


def input_spec(name: str) -> InputSpec:
  """The Table 1 input interface of the registered model `name`."""
  return get_input_spec(name)
