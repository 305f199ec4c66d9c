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

from typing import Callable, Dict, List, Optional, Tuple

import keras
import numpy as np

from i3d_tf import inflation
from i3d_tf import registry
from i3d_tf.checkpoints.restore import infer_num_classes, load_weights_into, resolve_checkpoint

CLASSIFIER_PREFIX = 'Logits.'  # Layer-name prefix of the classifier unit (`Logits.Conv3d_0c_1x1`).


def _variable_path(v) -> str:
  return v.path


def is_classifier_variable(path: str) -> bool:
  """True when the variable `path` is the classifier's (a component starts with 'Logits.', e.g.
  `.../Logits.Conv3d_0c_1x1/conv_3d/kernel`)."""
  return any(part.startswith(CLASSIFIER_PREFIX) for part in path.split('/'))




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
  """The layers of `model`'s classifier (`Logits.*` layers holding variables), nested models included.

  Raises:
    ValueError: `model` has none.
  """
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
  """Parses `--init` `init`: '' / 'scratch' / None -> ('scratch', None); 'inflate_2d:<path>' ->
  ('inflate_2d', path); 'kinetics400' -> ('checkpoint', the cached converted weights, fetched when needed);
  else ('checkpoint', init).

  Raises:
    ValueError: 'inflate_2d:' without a path.
    WeightsUnavailableError: 'kinetics400' neither cached nor fetchable.
  """
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

  Args:
    model: the freshly built model; modified in place.
    model_name: its registry name (decides inflation or copy, and the streams).
    path: Keras weights of an `InceptionV1` (class count inferred from the file).

  Returns:
    A report: {'init', 'path', 'inflated' or 'copied' (unit count), 'skipped' (unit names)}.

  Raises:
    ValueError: a model without a 2D twin (C3D), an unreadable class count, or weights that do not fit.
  """
  from i3d_tf.inception import InceptionV1  # pylint: disable=g-import-not-at-top
  info = registry.model_info(model_name)
  if info.init_2d is None:
    raise ValueError(f'{model_name} is trained from scratch (paper Sec. 2.5: "all models but the C3D-like 3D '
                     f'ConvNet use ImageNet-pretrained Inception-V1"); it has no 2D Inception-v1 to initialise from. '
                     f'Received: init=inflate_2d:{path}')
  n2d = infer_num_classes(path)
  if n2d is None:
    raise ValueError(f'Cannot infer the class count of the 2D weights {path}')
  model_2d = InceptionV1(num_classes=n2d)
  model_2d.load_weights(path)
  if info.init_2d == 'inflate':  # every stream on its own (one stream: the model itself)
    reports = {s: inflation.inflate(model_2d, model.get_layer(s) if s else model) for s in info.streams or ('',)}
    return {'init': 'inflate_2d', 'path': path,
            'inflated': sum(len(r['inflated']) for r in reports.values()),
            'skipped': [n for r in reports.values() for n in r['skipped']]}
  from i3d_tf.baselines import init_from_inception_v1  # pylint: disable=g-import-not-at-top
  report = init_from_inception_v1(model, model_2d)
  return {'init': 'inception_v1_2d', 'path': path,
          'copied': sum(len(r['copied']) for r in report.values()),
          'skipped': [n for r in report.values() for n in r['skipped']]}


def weights_digest(model: keras.Model, include_classifier: bool = True) -> Dict[str, np.ndarray]:
  """{variable path: numpy value} of `model`, for comparisons in tests and tools; seed generators left
  out, and the classifier's variables unless `include_classifier`."""
  return {_variable_path(v): keras.ops.convert_to_numpy(v) for v in model.variables
          if 'seed_generator' not in _variable_path(v)
          and (include_classifier or not is_classifier_variable(_variable_path(v)))}
