"""Initialisation and transfer: restoring trained models, 2D inflation, Fixed and Full-FT (Sec. 5, Table 4).

Sec. 5: "we freeze the network weights and use the network to produce features ... then train multi-way
soft-max classifiers" (Fixed) and "we fine-tune each network for the UCF-101/HMDB-51 classes" (Full-FT).
Both start from a trained checkpoint of a model with a different class count and put a fresh classifier
(the `Logits.*` unit, built with the new class count) on top of the copied backbone.

Sources a model can be initialised from (`--init`):
  * 'scratch': the builder's random initialisation.
  * 'inflate_2d:<path>': a 2D Inception-v1 `.weights.h5`, inflated with the boring-video method
    (Sec. 2.4, `i3d_tf.inflation.inflate`); single-stream I3D models only.
  * 'kinetics400': the trained Kinetics-400 RGB I3D (`i3d_tf.checkpoints.pretrained`; i3d_rgb only), e.g.
    `--init=kinetics400 --transfer=full` for the paper's Kinetics-pretrained rows of Tables 4-5.
  * a training `model_dir` (its latest checkpoint), a checkpoint prefix, or a `.weights.h5` file.
"""

import json
import os
from typing import Callable, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from i3d_tf import inflation
from i3d_tf import registry
from i3d_tf.io_utils import check_not_lfs_pointer

CLASSIFIER_PREFIX = 'Logits.'  # Layer-name prefix of the classifier unit (`Logits.Conv3d_0c_1x1`).
CONFIG_NAME = 'config.json'  # Resolved training configuration written into every model_dir.


def _variable_path(v) -> str:
  return v.path


def is_classifier_variable(path: str) -> bool:
  """True for the classifier's variables (`.../Logits.Conv3d_0c_1x1/conv_3d/kernel`, ...)."""
  return any(part.startswith(CLASSIFIER_PREFIX) for part in path.split('/'))


def resolve_checkpoint(path: str) -> str:
  """A model_dir (latest checkpoint), a checkpoint prefix or a `.weights.h5` file -> the file/prefix.

  Raises:
    FileNotFoundError: no checkpoint at `path`.
  """
  if path.endswith('.weights.h5'):
    if not os.path.isfile(path):
      raise FileNotFoundError(f'No weights file at {path}')
    check_not_lfs_pointer(path)
    return path
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      latest = tf.train.latest_checkpoint(os.path.join(path, 'checkpoints'))
    if latest is None:
      raise FileNotFoundError(f'No checkpoint in model_dir {path} (no "checkpoint" index file)')
    return latest
  if tf.io.gfile.exists(path + '.index'):
    return path
  raise FileNotFoundError(f'{path} is neither a model_dir, a checkpoint prefix nor a .weights.h5 file')


I3D_MODELS = ('i3d_rgb', 'i3d_flow', 'two_stream_i3d')  # fully convolutional: any T, H, W


def config_build_kwargs(config: Dict) -> Dict:
  """Registry builder kwargs of a training config (a TrainConfig as dict, or a model_dir's config.json).

  Dropout keep probability, synchronized BN, and for the fixed-shape single-stream baselines (convnet_lstm,
  c3d: Dense layers see the spatial size) the `input_shape` implied by a `crop_size` / `num_frames` override.
  I3D models take any input size and get no shape.
  """
  kwargs = {}
  if config.get('dropout_keep_prob') is not None:
    kwargs['dropout_keep_prob'] = config['dropout_keep_prob']
  if config.get('synchronized_bn'):
    kwargs['synchronized_bn'] = True
  name = config.get('model')
  crop, frames = config.get('crop_size'), config.get('num_frames')
  if name not in I3D_MODELS and (crop or frames):
    spec = registry.input_spec(name)
    if len(spec.modalities) == 1:
      t = frames or spec.train.num_frames
      kwargs['input_shape'] = (None if name == 'convnet_lstm' else t, crop or spec.crop_size,
                               crop or spec.crop_size, spec.channels(spec.modalities[0]))
  return kwargs


def config_next_to(checkpoint: str) -> Optional[Dict]:
  """The config.json of the model_dir holding `checkpoint` (checkpoints live in model_dir/checkpoints)."""
  d = os.path.dirname(os.path.abspath(checkpoint))
  for candidate in (d, os.path.dirname(d)):
    p = os.path.join(candidate, CONFIG_NAME)
    if os.path.isfile(p):
      with open(p) as f:
        return json.load(f)
  return None


def infer_num_classes(checkpoint: str) -> Optional[int]:
  """Class count of a checkpoint: its model_dir's config.json, else the shape of the [..., 1024, C] kernel."""
  config = config_next_to(checkpoint)
  if config and config.get('num_classes'):
    return int(config['num_classes'])
  shapes = []
  if checkpoint.endswith('.weights.h5'):
    import h5py  # pylint: disable=g-import-not-at-top
    with h5py.File(checkpoint, 'r') as f:
      f.visititems(lambda name, obj: shapes.append(tuple(obj.shape)) if hasattr(obj, 'shape') else None)
  else:
    shapes = [tuple(s) for _, s in tf.train.list_variables(checkpoint)]
  # The logits kernel is the only 1x1(x1) kernel reading the 1024 Mixed_5c channels.
  found = {s[-1] for s in shapes if len(s) >= 4 and all(d == 1 for d in s[:-2]) and s[-2] == 1024}
  return found.pop() if len(found) == 1 else None


def load_weights_into(model: keras.Model, checkpoint: str):
  """Loads a `.weights.h5` file or the `model` part of a training checkpoint into `model` (exact match).

  Raises:
    ValueError / AssertionError: the checkpoint does not match the model.
  """
  checkpoint = resolve_checkpoint(checkpoint)
  if checkpoint.endswith('.weights.h5'):
    model.load_weights(checkpoint)
    return
  status = tf.train.Checkpoint(model=model).read(checkpoint)
  status.expect_partial()  # Optimizer, step and data position are not needed here.
  status.assert_existing_objects_matched()


def restore_model(model_dir_or_checkpoint: str, model_name: Optional[str] = None,
                  num_classes: Optional[int] = None, **build_kwargs) -> keras.Model:
  """Builds a registered model and restores trained weights into it.

  Args:
    model_dir_or_checkpoint: a training model_dir (its latest checkpoint), a checkpoint prefix
      (`.../ckpt-120`) or a `.weights.h5` file.
    model_name: registry name; default: the `model` of the model_dir's config.json.
    num_classes: default: the model_dir's config.json, else inferred from the logits kernel shape.
    **build_kwargs: passed to `i3d_tf.registry.build_model` (e.g. `dropout_keep_prob=1.0`,
      `temporal_average=False`); they must not change variable shapes.

  Returns:
    The `keras.Model` with the checkpoint's weights (trainable state as built).

  Raises:
    FileNotFoundError, ValueError: no checkpoint, or not enough information to build the model.
  """
  checkpoint = resolve_checkpoint(model_dir_or_checkpoint)
  config = config_next_to(checkpoint) or {}
  model_name = model_name or config.get('model')
  if model_name is None:
    raise ValueError(f'model_name is required: no config.json next to {checkpoint}. '
                     f'Received: model_name={model_name}')
  if num_classes is None:
    num_classes = infer_num_classes(checkpoint)
    if num_classes is None:
      raise ValueError(f'num_classes is required: cannot infer it from {checkpoint}.')
  kwargs = {}
  if config.get('model') == model_name:  # the shape-relevant options the run was trained with
    kwargs = {k: v for k, v in config_build_kwargs(config).items() if k == 'input_shape'}
  kwargs.update(build_kwargs)
  model = registry.build_model(model_name, num_classes, **kwargs)
  load_weights_into(model, checkpoint)
  return model


def copy_backbone(source: keras.Model, target: keras.Model) -> List[str]:
  """Copies every non-classifier variable of `source` into `target` by variable path (exact shapes).

  Returns:
    The paths of the target's classifier variables that were left as initialised.

  Raises:
    ValueError: a backbone variable is missing on either side or has a different shape.
  """
  src = {_variable_path(v): v for v in source.variables if not is_classifier_variable(_variable_path(v))}
  dst = {_variable_path(v): v for v in target.variables if not is_classifier_variable(_variable_path(v))}
  src = {k: v for k, v in src.items() if 'seed_generator' not in k}
  dst = {k: v for k, v in dst.items() if 'seed_generator' not in k}
  problems = [f'missing in source: {k}' for k in sorted(set(dst) - set(src))]
  problems += [f'missing in target: {k}' for k in sorted(set(src) - set(dst))]
  problems += [f'{k}: {tuple(src[k].shape)} != {tuple(v.shape)}' for k, v in dst.items()
               if k in src and tuple(src[k].shape) != tuple(v.shape)]
  if problems:
    raise ValueError(f'Cannot copy the backbone of {source.name} into {target.name}:\n  ' + '\n  '.join(problems))
  for k, v in dst.items():
    v.assign(src[k])
  return [_variable_path(v) for v in target.variables if is_classifier_variable(_variable_path(v))]


def classifier_layers(model: keras.Model) -> List[keras.layers.Layer]:
  """The layers of the classifier (`Logits.*` units holding variables), nested models included."""
  found = [l for l in model._flatten_layers(include_self=False, recursive=True)  # pylint: disable=protected-access
           if l.name.startswith(CLASSIFIER_PREFIX) and l.weights]
  if not found:
    raise ValueError(f'{model.name} has no classifier layer named {CLASSIFIER_PREFIX}*')
  return found


def freeze_backbone(model: keras.Model) -> List[str]:
  """Fixed transfer: every layer but the classifier gets `trainable=False`.

  A non-trainable Keras 3 `BatchNormalization` runs in inference mode (moving statistics, no updates)
  even when the model is called with `training=True`, so the frozen backbone is exactly the pre-trained
  network; dropout before the classifier stays active.  Returns the names of the trainable layers.
  """
  keep = set()
  for layer in classifier_layers(model):
    sublayers = layer._flatten_layers(include_self=True, recursive=True)  # pylint: disable=protected-access
    keep.update(id(l) for l in sublayers)
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    if id(layer) in keep or isinstance(layer, keras.Model) or not layer.weights:
      continue
    if any(id(sub) in keep for sub in layer._flatten_layers(include_self=False)):  # pylint: disable=protected-access
      continue
    layer.trainable = False
  return [l.name for l in classifier_layers(model)]


def parse_init(init: str) -> Tuple[str, Optional[str]]:
  """'scratch' -> ('scratch', None); 'inflate_2d:<path>' -> ('inflate_2d', path); 'kinetics400' ->
  ('checkpoint', the cached converted weights, fetched when needed); else ('checkpoint', path)."""
  if init in ('', 'scratch', None):
    return 'scratch', None
  if init == 'kinetics400':
    from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
    return 'checkpoint', pretrained.weights_path('kinetics400')
  if init.startswith('inflate_2d:'):
    path = init[len('inflate_2d:'):]
    if not path:
      raise ValueError(f'inflate_2d needs a path. Received: init={init}')
    return 'inflate_2d', path
  return 'checkpoint', init


def initialize(model: keras.Model, init: str, model_name: str, transfer: str = 'none',
               build_fn: Optional[Callable[[int], keras.Model]] = None) -> Dict:
  """Applies `--init` (and the classifier swap of `--transfer`) to a freshly built `model`.

  With a checkpoint source: transfer 'none' requires the same class count and loads everything; 'fixed'
  and 'full' build the source model with its own class count, restore it and copy the backbone, keeping
  `model`'s new classifier (`build_fn(num_classes)` builds the source; default the registry's
  `model_name`).  Returns a small report dict.
  """
  kind, path = parse_init(init)
  if kind == 'scratch':
    if transfer != 'none':
      raise ValueError(f'transfer={transfer} needs a pre-trained --init. Received: init={init}')
    return {'init': 'scratch'}
  if kind == 'inflate_2d':
    return init_from_2d(model, model_name, path)
  checkpoint = resolve_checkpoint(path)
  if transfer == 'none':
    load_weights_into(model, checkpoint)
    return {'init': 'checkpoint', 'path': checkpoint}
  source_classes = infer_num_classes(checkpoint)
  if source_classes is None:
    raise ValueError(f'Cannot infer the class count of {checkpoint}')
  build_fn = build_fn or (lambda n: registry.build_model(model_name, n))
  source = build_fn(source_classes)
  load_weights_into(source, checkpoint)
  fresh = copy_backbone(source, model)
  return {'init': 'checkpoint', 'path': checkpoint, 'source_classes': source_classes,
          'new_classifier': fresh}


def init_from_2d(model: keras.Model, model_name: str, path: str) -> Dict:
  """`--init=inflate_2d:<InceptionV1 .weights.h5>`: ImageNet-style 2D weights into any model built on it.

  I3D streams (and both streams of Two-Stream I3D) are inflated by the boring-video method (Sec. 2.4);
  the 2D baselines (ConvNet+LSTM, Two-Stream, 3D-Fused) get the weights copied into their Inception-v1
  streams, the 20-channel flow conv by the mean rule (Sec. 2.3, 2.5).  C3D has no 2D twin: the paper
  trains it from scratch.
  """
  from i3d_tf.inception import InceptionV1  # pylint: disable=g-import-not-at-top
  if model_name == 'c3d':
    raise ValueError('C3D is trained from scratch (paper Sec. 2.5); it has no 2D Inception-v1 to initialise '
                     f'from. Received: init=inflate_2d:{path}')
  n2d = infer_num_classes(path)
  if n2d is None:
    raise ValueError(f'Cannot infer the class count of the 2D weights {path}')
  model_2d = InceptionV1(num_classes=n2d)
  model_2d.load_weights(path)
  if model_name in ('i3d_rgb', 'i3d_flow'):
    report = inflation.inflate(model_2d, model)
    return {'init': 'inflate_2d', 'path': path, 'inflated': len(report['inflated']),
            'skipped': report['skipped']}
  if model_name == 'two_stream_i3d':
    reports = {s: inflation.inflate(model_2d, model.get_layer(s)) for s in ('RGB', 'Flow')}
    return {'init': 'inflate_2d', 'path': path,
            'inflated': sum(len(r['inflated']) for r in reports.values()),
            'skipped': [n for r in reports.values() for n in r['skipped']]}
  from i3d_tf.baselines import init_from_inception_v1  # pylint: disable=g-import-not-at-top
  report = init_from_inception_v1(model, model_2d)
  return {'init': 'inception_v1_2d', 'path': path,
          'copied': sum(len(r['copied']) for r in report.values()),
          'skipped': [n for r in report.values() for n in r['skipped']]}


def weights_digest(model: keras.Model, include_classifier: bool = True) -> Dict[str, np.ndarray]:
  """{variable path: numpy value}, for comparisons in tests and tools."""
  return {_variable_path(v): keras.ops.convert_to_numpy(v) for v in model.variables
          if 'seed_generator' not in _variable_path(v)
          and (include_classifier or not is_classifier_variable(_variable_path(v)))}
