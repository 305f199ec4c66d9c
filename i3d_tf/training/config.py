"""Training configuration: one typed dataclass, validated, written as JSON into every model_dir.

Defaults follow the paper (Sec. 2.5: SGD, momentum 0.9, synchronous replicas, LR divided by 10 when the
validation loss plateaus) and the official release (weight decay 1e-7, dropout keep 0.5, RGB piecewise
schedule 0.1 -> 0.01 at 97k -> 0.001 at 108k of 110k steps).
"""

import dataclasses
import json
import os
from typing import Optional, Tuple

from data_pipelines.io_utils import atomic_write

LR_SCHEDULES = ('piecewise', 'plateau', 'constant')
STRATEGIES = ('default', 'mirrored', 'multi_worker')
MIXED_PRECISION = ('none', 'bfloat16', 'float16')
TRANSFERS = ('none', 'fixed', 'full')
INPUT_DTYPES = ('uint8', 'float32')


# What a resumed run may change: how long and how often, where the data and the devices are.  Anything
# else (model, classes, schedule, input, initialisation...) decides the checkpoints' meaning.
RESUME_MAY_CHANGE = ('train_steps', 'checkpoint_every', 'max_checkpoints', 'eval_every', 'eval_steps', 'log_every',
                     'train_data', 'eval_data', 'model_dir', 'strategy', 'num_logical_devices', 'jit_compile',
                     'deterministic', 'progress_bar')


def _f(default, help_text: str, choices: Optional[Tuple[str, ...]] = None):
  """A field with its help text (and choices): the flag of `experiments/train.py` is generated from it."""
  return dataclasses.field(default=default, metadata={'help': help_text, 'choices': choices})


@dataclasses.dataclass
class TrainConfig:
  """Everything a training run needs.  `experiments/train.py` has one flag per field (same name, this default,
  this help: `cli.define_dataclass_flags`) and `--config=FILE.json` (a run's config.json works) under them."""
  model: str = _f('i3d_rgb', 'Registry name (i3d_tf.registry.list_models()).')
  num_classes: int = _f(400, 'Classes of the (new) classifier.')
  train_data: Optional[str] = _f(None, 'Training TFRecord glob (or "synthetic[:N]" for smoke runs).')
  eval_data: Optional[str] = _f(None, 'Validation TFRecord glob (plateau schedule, evaluation during training).')
  model_dir: Optional[str] = _f(None, 'Checkpoints, config.json, summaries, curves.')
  batch_size: int = _f(8, 'Global batch, split evenly over replicas.')
  train_steps: int = _f(110_000, 'Total steps (the official RGB schedule: 110k on Kinetics).')
  learning_rate: float = _f(0.1, 'Base learning rate (piecewise: the value before the first boundary).')
  lr_schedule: str = _f('piecewise', 'piecewise: x lr_decay at lr_boundaries; plateau: x lr_decay when the '
                        'validation loss stalls (Sec. 2.5); constant.', LR_SCHEDULES)
  lr_boundaries: Tuple[int, ...] = _f((97_000, 108_000), 'Piecewise: steps where the LR is multiplied.')
  lr_decay: float = _f(0.1, 'LR multiplier at each boundary / plateau.')
  plateau_patience: int = _f(3, 'Evaluations without improvement before the LR is multiplied by lr_decay.')
  plateau_min_delta: float = _f(0.0, 'A smaller improvement of the validation loss does not count.')
  momentum: float = _f(0.9, 'SGD momentum (Sec. 2.5).')
  weight_decay: float = _f(1e-7, 'L2 on conv kernels: loss += weight_decay * sum(w**2) / 2 (slim convention).')
  dropout_keep_prob: float = _f(0.5, 'Keep probability before the logits.')
  bn_momentum: Optional[float] = _f(None, "Override the BN moving-statistics momentum (model's: 0.999, "
                                    'official); runs of a few hundred steps want ~0.9.')
  strategy: str = _f('default', 'tf.distribute strategy (multi_worker reads TF_CONFIG).', STRATEGIES)
  num_logical_devices: int = _f(0, 'mirrored on CPU: split the CPU into this many logical devices (0: no).')
  synchronized_bn: bool = _f(False, 'Batch-norm statistics across replicas.')
  mixed_precision: str = _f('none', 'Compute dtype; float16 uses dynamic loss scaling.', MIXED_PRECISION)
  input_dtype: str = _f('uint8', 'uint8: the pipeline ships raw levels (4x fewer bytes) and the step maps them '
                        'to [-1, 1] on the device; float32: the pipeline scales on the CPU. Same numbers.',
                        INPUT_DTYPES)
  init: str = _f('scratch', 'scratch | inflate_2d:<2D InceptionV1 .weights.h5> | kinetics400 | <checkpoint or '
                 'model_dir>.')
  transfer: str = _f('none', 'fixed: frozen backbone + new classifier; full: fine-tune all + new classifier '
                     '(Sec. 5).', TRANSFERS)
  seed: int = _f(0, 'Random seed.')
  deterministic: bool = _f(False, 'Deterministic ops and input order.')
  num_frames: Optional[int] = _f(None, 'Override the Table 1 training clip length.')
  crop_size: Optional[int] = _f(None, 'Override the Table 1 crop size.')
  checkpoint_every: int = _f(1000, 'Steps between checkpoints.')
  max_checkpoints: int = _f(3, 'Checkpoints kept.')
  eval_every: int = _f(1000, 'Steps between evaluations.')
  eval_steps: Optional[int] = _f(None, 'Batches per evaluation (default: the whole eval set).')
  log_every: int = _f(10, 'Steps between TensorBoard scalars.')
  jit_compile: bool = _f(False, 'XLA-compile the train step (2-4x slower on CPU here; try it on GPU).')
  progress_bar: bool = _f(True, 'A progress bar over steps.')

  def validate(self) -> 'TrainConfig':
    """Returns self when every field is in range and the fields agree (a transfer starts from a trained I3D,
    init=kinetics400 is i3d_rgb with 400 classes unless transferred, plateau needs eval_data).

    Raises:
      ValueError: naming the first field that fails and its value.
    """
    def check(ok, what):
      if not ok:
        field = what.split()[0]
        raise ValueError(f'Invalid training config: {what}. Received: {field}={getattr(self, field)!r}')
    check(self.lr_schedule in LR_SCHEDULES, f'lr_schedule must be one of {LR_SCHEDULES}')
    check(self.strategy in STRATEGIES, f'strategy must be one of {STRATEGIES}')
    check(self.mixed_precision in MIXED_PRECISION, f'mixed_precision must be one of {MIXED_PRECISION}')
    check(self.transfer in TRANSFERS, f'transfer must be one of {TRANSFERS}')
    check(self.input_dtype in INPUT_DTYPES, f'input_dtype must be one of {INPUT_DTYPES}')
    check(self.num_classes >= 1, 'num_classes must be >= 1')
    check(self.batch_size >= 1, 'batch_size must be >= 1')
    check(self.train_steps >= 0, 'train_steps must be >= 0')
    check(self.learning_rate > 0, 'learning_rate must be > 0')
    check(0.0 < self.dropout_keep_prob <= 1.0, 'dropout_keep_prob must be in (0, 1]')
    check(self.weight_decay >= 0, 'weight_decay must be >= 0')
    check(self.bn_momentum is None or 0.0 <= self.bn_momentum < 1.0, 'bn_momentum must be in [0, 1)')
    check(self.checkpoint_every >= 1, 'checkpoint_every must be >= 1')
    check(self.eval_every >= 1, 'eval_every must be >= 1')
    check(self.log_every >= 1, 'log_every must be >= 1')
    check(self.plateau_patience >= 1, 'plateau_patience must be >= 1')
    check(list(self.lr_boundaries) == sorted(self.lr_boundaries), 'lr_boundaries must be increasing')
    if self.transfer != 'none' and self.init in ('scratch', '') or (
        self.transfer != 'none' and self.init.startswith('inflate_2d:')):
      raise ValueError(f'transfer={self.transfer} starts from a trained I3D checkpoint or model_dir. '
                       f'Received: init={self.init}')
    if self.init == 'kinetics400' and self.model != 'i3d_rgb':
      raise ValueError(f'init=kinetics400 is the trained RGB I3D: it initialises model=i3d_rgb only (flow streams: '
                       f'a converted official flow checkpoint). Received: model={self.model}')
    if self.init == 'kinetics400' and self.transfer == 'none' and self.num_classes != 400:
      raise ValueError(f'init=kinetics400 has 400 classes: for num_classes={self.num_classes} add --transfer=full '
                       '(fine-tune all) or --transfer=fixed (frozen backbone), new classifier.')
    if self.lr_schedule == 'plateau' and not self.eval_data:
      raise ValueError('lr_schedule=plateau needs eval data (the validation loss). Received: eval_data=None')
    return self

  def to_json(self) -> str:
    """Every field as indented JSON with sorted keys (what config.json holds)."""
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d) -> 'TrainConfig':
    """A TrainConfig from `d`, a dict such as a parsed config.json (lr_boundaries become ints); not validated.

    Raises:
      ValueError: a key that is not a field.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
      raise ValueError(f'Unknown training config keys {sorted(unknown)}')
    d = dict(d)
    if 'lr_boundaries' in d:
      d['lr_boundaries'] = tuple(int(b) for b in d['lr_boundaries'])
    return cls(**d)

  def check_resume(self, model_dir: Optional[str] = None, name: str = 'config.json') -> None:
    """Refuses to resume a model_dir whose config.json differs in anything but RESUME_MAY_CHANGE.

    Called before anything is written: a rerun with another model, class count, schedule or input into an
    existing run would otherwise rewrite its config.json and then fail (or worse, continue) on its
    checkpoints.  A model_dir without config.json is a new run.

    Args:
      model_dir: the run's folder; default `self.model_dir` (nothing is checked when both are unset).
      name: the config file's name in it.

    Raises:
      ValueError: one line naming the first differences, and what to do.
    """
    path = os.path.join(model_dir or self.model_dir or '', name)
    if not (model_dir or self.model_dir) or not os.path.isfile(path):
      return
    with open(path, encoding='utf-8') as f:
      previous = json.load(f)
    current = json.loads(self.to_json())
    differences = [f'{k} {previous.get(k)!r} -> {current.get(k)!r}' for k in sorted(set(previous) | set(current))
                   if k not in RESUME_MAY_CHANGE and previous.get(k) != current.get(k)]
    if differences:
      raise ValueError(f'{path} is a run with another configuration ({"; ".join(differences[:4])}'
                       f'{"; ..." if len(differences) > 4 else ""}): resuming it would mix the two. Use another '
                       '--model_dir, or the same flags to resume it')

  def write(self, model_dir: str, name: str = 'config.json'):
    """Writes the resolved config as JSON atomically to `model_dir`/`name`; returns the path."""
    return atomic_write(os.path.join(model_dir, name), self.to_json())
