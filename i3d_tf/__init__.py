"""i3d_tf: Two-Stream Inflated 3D ConvNets (Carreira & Zisserman, CVPR 2017) in TensorFlow 2 / Keras 3.

The public names load on first use (`i3d_tf.I3D` imports Keras and TensorFlow; `import i3d_tf` alone does
not), so binaries can set TensorFlow's environment first (`i3d_tf.cli`) and light tools start fast.
"""

import importlib


__version__ = '0.1.0'

_PUBLIC = {
    'i3d_tf.inception': ('I3D', 'InceptionV1'),
    'i3d_tf.endpoints': ('VALID_ENDPOINTS', 'VALID_ENDPOINTS_2D'),
    'i3d_tf.inflation': ('inflate', 'inflate_kernel', 'InflatedInitializer'),
    'data_pipelines.input_specs': ('ClipSpec', 'InputSpec', 'get_input_spec'),
    'i3d_tf.layers': ('Unit', 'inception_module', 'StreamFusion'),
    'i3d_tf.models': ('TwoStreamI3D',),
    'i3d_tf.receptive_field': ('receptive_field', 'receptive_field_table'),
    'i3d_tf.registry': ('build_model', 'list_models', 'register_model'),
    'i3d_tf.baselines': ('C3D', 'ConvNetLSTM', 'Fused3D', 'TwoStream', 'init_from_inception_v1'),
    'i3d_tf.classification': ('decode_predictions',),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
  if name in _WHERE:
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
  try:  # a submodule: i3d_tf.checkpoints, i3d_tf.training, ...
    return importlib.import_module(f'{__name__}.{name}')
  except ModuleNotFoundError as e:
    if e.name != f'{__name__}.{name}':
      raise
  raise AttributeError(f'module "i3d_tf" has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_WHERE))
