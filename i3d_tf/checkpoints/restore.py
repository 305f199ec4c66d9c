"""Restoring trained models: the one home for "a checkpoint argument -> a built, loaded model".

Every consumer (train's `--init` and resume, evaluate, export, extract_features, classify, visualize_filters,
the demo) goes through here:

  * `resolve_checkpoint` (in `loading`): a model_dir, a folder with one checkpoint, a prefix or a
    `.weights.h5` -> the prefix or file;
  * `infer_num_classes`: the class count of a checkpoint (its model_dir's config.json, else the shape of
    the logits kernel), so no `None` reaches a builder;
  * `restore_model`: build the registered model (name and shape options from the run's config.json) and
    load the checkpoint, exactly;
  * `load_model`: the binaries' front: also 'kinetics400' (the trained RGB I3D) and, for demos and tests
    only, random weights; `restore_stream_models` adds Two-Stream I3D from two checkpoints.
"""

import ast
import json
import os
import re
from typing import Dict, Optional

import keras
import tensorflow as tf

from i3d_tf import registry
from i3d_tf.checkpoints.loading import resolve_checkpoint

CONFIG_NAME = 'config.json'  # the resolved training configuration written into every model_dir


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
  info = registry.model_info(name) if name else None
  if info is not None and not info.fully_convolutional and (crop or frames):
    spec = registry.input_spec(name)
    if len(spec.modalities) == 1:
      t = frames or spec.train.num_frames
      kwargs['input_shape'] = (None if info.per_step_outputs else t, crop or spec.crop_size,
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


def checkpoint_num_classes(reference: str) -> int:
  """The class count of a checkpoint argument: 400 for 'kinetics400' (the trained weights), else
  `infer_num_classes` of the checkpoint it resolves to.

  Raises:
    FileNotFoundError: nothing loadable at `reference`.
    ValueError: a class count that cannot be read (the message says to pass --num_classes).
  """
  if reference == 'kinetics400' and not os.path.exists(reference):
    return 400
  found = infer_num_classes(resolve_checkpoint(reference))
  if found is None:
    raise ValueError(f'Cannot read the class count of {reference}: pass num_classes (--num_classes)')
  return found


def _mismatch(message: str) -> str:
  """The gist of Keras' weight-loading error: the variable and both shapes, or its first 300 characters."""
  shapes = re.search(r'variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))', message)
  if not shapes:
    return ' '.join(message.split())[:300]
  path = re.search(r'<Variable path=([^,>]+)', message)
  where = f'{path.group(1)} is' if path else 'a variable is'
  hint = ''
  ours, theirs = (ast.literal_eval(g) for g in shapes.groups())
  if path and 'Conv3d_1a' in path.group(1) and len(ours) == len(theirs) == 5 and ours[3] != theirs[3]:
    hint = (f' (input channels: {theirs[3]} in the file; 3 for an RGB stream, 2 for a flow stream: pass the '
            'checkpoint of this stream)')
  return f'{where} {shapes.group(1)} in the model but {shapes.group(2)} in the file{hint}'


def load_weights_into(model: keras.Model, checkpoint: str):
  """Loads a `.weights.h5` file or the `model` part of a training checkpoint into `model` (exact match).

  Raises:
    ValueError / AssertionError: the checkpoint does not match the model; for a `.weights.h5` file one line
      naming the file, the first variable that does not fit and both shapes (Keras' own message puts them
      after a line break and a page of values).
  """
  checkpoint = resolve_checkpoint(checkpoint)
  if checkpoint.endswith('.weights.h5'):
    try:
      model.load_weights(checkpoint)
    except ValueError as e:
      raise ValueError(f'{checkpoint} does not fit {model.name}: {_mismatch(str(e))}') from e
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
    FileNotFoundError, ValueError: no checkpoint, or not enough information to build the model; ValueError
      also for a file that is not a readable checkpoint (a damaged or foreign `.weights.h5`, a truncated
      TF checkpoint), naming it.
  """
  try:
    return _restore_model(model_dir_or_checkpoint, model_name, num_classes, **build_kwargs)
  except FileNotFoundError:
    raise
  except (OSError, tf.errors.OpError) as e:  # h5py's "file signature not found", DataLossError, ...
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ValueError(f'{model_dir_or_checkpoint} cannot be read as a checkpoint ({type(e).__name__}: '
                     f'{reason})') from e


def _restore_model(model_dir_or_checkpoint, model_name, num_classes, **build_kwargs):
  checkpoint = resolve_checkpoint(model_dir_or_checkpoint)
  config = config_next_to(checkpoint) or {}
  if model_name and config.get('model') and config['model'] != model_name:  # else pages of restore warnings
    raise ValueError(f'{model_dir_or_checkpoint} is a run of {config["model"]} (its {CONFIG_NAME}), not of '
                     f'{model_name}: pass --model={config["model"]}')
  model_name = model_name or config.get('model')
  if model_name is None:
    raise ValueError(f'model_name is required: no config.json next to {checkpoint}. '
                     f'Received: model_name={model_name}')
  if num_classes is None:
    num_classes = checkpoint_num_classes(checkpoint)
  kwargs = {}
  if config.get('model') == model_name:  # the shape-relevant options the run was trained with
    kwargs = {k: v for k, v in config_build_kwargs(config).items() if k == 'input_shape'}
  kwargs.update(build_kwargs)
  model = registry.build_model(model_name, num_classes, **kwargs)
  load_weights_into(model, checkpoint)
  return model


RANDOM_WEIGHTS_SEED = 0  # load_model's random weights (allow_random_weights): one network, run after run


def _seeded_build(model_name: str, num_classes: int, **model_kwargs) -> keras.Model:
  """`registry.build_model` with weights drawn from `RANDOM_WEIGHTS_SEED` and the model's name (the RGB and
  flow streams are not the same network).  Keras 3 draws an unseeded initializer's seed from Python's
  `random` (`keras.random.make_default_seed`), so only that generator is seeded, and its state is put back
  afterwards: TensorFlow's and NumPy's global generators are not touched."""
  import random  # pylint: disable=g-import-not-at-top
  state = random.getstate()
  random.seed(f'{RANDOM_WEIGHTS_SEED}/{model_name}')
  try:
    return registry.build_model(model_name, num_classes, **model_kwargs)
  finally:
    random.setstate(state)


def load_model(model_name: str, num_classes: Optional[int], checkpoint: Optional[str],
               allow_random_weights: bool = False, **model_kwargs):
  """Builds `model_name` and restores `checkpoint`.

  `checkpoint` may be a Keras weights file (`*.weights.h5`, e.g. converted official weights), a training
  `model_dir` or a TF checkpoint prefix (`restore_model`), or 'kinetics400' (the trained RGB I3D).  `None` gives random
  weights only with `allow_random_weights`, the same ones in every run (`RANDOM_WEIGHTS_SEED`: features or
  predictions of a rerun, or of a resumed run, are not those of another network; no global generator is
  left changed).  `num_classes=None` reads the class count from the checkpoint
  (its model_dir's config.json, else the logits kernel's shape).

  Raises:
    ValueError: no checkpoint without `allow_random_weights`, or a class count that cannot be read;
    FileNotFoundError: a missing path.
  """
  if checkpoint is None or checkpoint == '':
    if not allow_random_weights:
      raise ValueError(f'No checkpoint given for {model_name}; pass one, or allow random weights explicitly '
                       '(demos and tests only).')
    if num_classes is None:
      raise ValueError(f'num_classes is needed to build {model_name} with random weights')
    return _seeded_build(model_name, num_classes, **model_kwargs)
  if checkpoint == 'kinetics400' and not os.path.exists(checkpoint):  # the trained RGB I3D, not a folder
    if model_name != 'i3d_rgb':
      raise ValueError(f"'kinetics400' weights are the RGB I3D (i3d_rgb), not {model_name}")
    return registry.build_model(model_name, 400 if num_classes is None else num_classes, weights='kinetics400',
                                **model_kwargs)
  return restore_model(checkpoint, model_name, num_classes, **model_kwargs)


def restore_stream_models(model_name: str, num_classes: int, checkpoint: Optional[str] = None,
                          rgb_checkpoint: Optional[str] = None, flow_checkpoint: Optional[str] = None,
                          fusion: str = 'logits_sum', allow_random_weights: bool = False,
                          precision: str = 'float32'):
  """The model to evaluate or export: one stream from `checkpoint`, or Two-Stream I3D from two checkpoints.

  Args:
    model_name: a registered model.
    num_classes: the checkpoints' class count.
    checkpoint: the model's checkpoint (`load_model`); for two_stream_i3d, a jointly saved one.
    rgb_checkpoint, flow_checkpoint: two_stream_i3d without `checkpoint`: each stream's own (trained on
      its own, as in the paper Sec. 2.4); the RGB one may be 'kinetics400'.
    fusion: two_stream_i3d's fusion (`i3d_tf.scoring.FUSIONS`).
    allow_random_weights: build a model without a checkpoint (tests, demos).
    precision: 'float32', 'bfloat16' or 'auto': the compute precision the model is built in
      (`i3d_tf.precision`; variables and logits stay float32).

  Returns:
    The built, restored Keras model.

  Raises:
    ValueError, FileNotFoundError: as `load_model`; ValueError for an unknown precision.
  """
  from i3d_tf.precision import precision_scope  # pylint: disable=g-import-not-at-top
  two_streams = bool(registry.model_info(model_name).streams)  # two_stream_i3d: streams trained on their own
  with precision_scope(precision):
    if two_streams and not checkpoint:
      rgb = load_model('i3d_rgb', num_classes, rgb_checkpoint, allow_random_weights)
      flow = load_model('i3d_flow', num_classes, flow_checkpoint, allow_random_weights)
      return registry.build_model(model_name, num_classes, fusion=fusion, rgb_model=rgb, flow_model=flow)
    kwargs = {'fusion': fusion} if two_streams else {}
    return load_model(model_name, num_classes, checkpoint, allow_random_weights, **kwargs)
