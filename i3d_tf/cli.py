"""What every binary in experiments/ shares: a quiet start, one-line errors, and the flags' domains.

    from i3d_tf import cli
    cli.quiet_start()              # first, before anything imports TensorFlow
    ...
    if __name__ == '__main__':
      cli.run(main)                # instead of absl.app.run

* `quiet_start()`: TensorFlow 2.21 prints start-up lines from C++ (absl's "All log messages before
  absl::InitializeLog()", oneDNN and CUDA notes, "failed call to cuInit" on a CPU-only machine) that
  TF_CPP_MIN_LOG_LEVEL set from Python does not silence; the binary loads TensorFlow first with stderr
  pointed at /dev/null (`load_tensorflow`; `quiet_start(tensorflow=False)` leaves that to main, which can
  start work that needs no TensorFlow first).  `--verbosity=N` / `-v N` (absl's flag) keeps everything as
  TensorFlow prints it.
* `run(main)`: `absl.app.run` whose user errors are one line on stderr, `<binary>: <message>`, with exit
  status 2 and no traceback: `UsageError`, a flag outside its domain (`DOMAINS`), a missing or existing
  file, a file that is not what it should be (ValueError from our checks, unreadable checkpoints).  A
  traceback still comes with `--verbosity=1` (for a bug report).  Ctrl-C exits 130 with one line, also while
  the modules load (from `quiet_start` on); once main's work is done (`finished`, or main returning) it ends
  the process at once with the run's own status.
* `DOMAINS`: the valid values of the numeric flags the binaries share, checked by `run` before `main`
  (e.g. `--fps=0` is refused at once, not after a partial output file).
"""

import math
import os
import sys
from typing import Callable, Dict, Sequence, Tuple

class UsageError(Exception):
  """Arguments that cannot work: `run` prints the message on one line and exits with status 2."""


def _verbose(argv) -> bool:
  for i, arg in enumerate(argv):
    if arg.startswith(('--verbosity=', '-v=')) or arg in ('--verbosity', '-v'):
      value = arg.split('=', 1)[1] if '=' in arg else (argv[i + 1] if i + 1 < len(argv) else '0')
      try:
        return int(value) > 0
      except ValueError:
        return True
  return False


def quiet_start(argv=None, tensorflow: bool = True) -> None:
  """Loads TensorFlow with its start-up lines discarded (`load_tensorflow`), unless the user asked for --verbosity.

  Also sets the binaries' TensorFlow defaults, before it loads: oneDNN on, and XLA's persistent compilation
  cache (`home.enable_xla_cache`), each unless the environment already says otherwise; and FFmpeg's own
  lines ("moov atom not found") off for files our decoder then reports with their reason.  Until `run` starts
  the binary's main, Ctrl-C ends the process at once with one line, '<binary>: interrupted', and status 130
  (not a traceback through whatever was being imported); silently in a multiprocessing worker importing the
  binary again (the parent reports), not at all in an interactive session.  A script that calls it keeps that
  handler until `run` starts its main (a worker's initializer restores Python's own,
  `signal.default_int_handler`).

  Args:
    argv: the command line to look for --verbosity / -v in (default sys.argv).
    tensorflow: load TensorFlow now; False leaves it to the binary's main (`load_tensorflow`), which can then
      start work that needs no TensorFlow first (`extract_features` reads its first video meanwhile).
  """
  argv = sys.argv if argv is None else argv
  if _spawned_worker():  # it re-imports the binary: an interrupt meanwhile ends it silently, the parent reports
    _exit_on_interrupt(130)
  elif not (hasattr(sys, 'ps1') or sys.flags.interactive):  # (Ctrl-C must not end a REPL)
    _exit_on_interrupt(130, 'interrupted')  # Ctrl-C while the modules load: one line, not their traceback
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # about 2x faster Conv3D on CPU (README)
  from i3d_tf import home  # pylint: disable=g-import-not-at-top
  home.enable_xla_cache()  # TV-L1's XLA programs compiled once per frame size, kept across processes and runs
  if not _verbose(argv[1:]):
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')
  if tensorflow:
    load_tensorflow(argv)


def load_tensorflow(argv=None) -> None:
  """Imports TensorFlow with its start-up lines discarded, unless the user asked for --verbosity or it is loaded.

  The lines come from C++ (absl) while TensorFlow loads and finds its devices, whatever
  TF_CPP_MIN_LOG_LEVEL says once another library has started absl logging (OpenCV does), so stderr (file
  descriptor 2) is pointed at /dev/null for exactly that time: the import and
  `tf.config.list_physical_devices()`.  What another thread writes to stderr meanwhile is discarded too (the
  reader thread `extract_features` starts first writes nothing; its errors are raised in the main thread).  A
  failing import still raises, and its traceback shows (stderr is back by then).  Python's garbage collector is
  off during the import, and what the import made is frozen out of its sight afterwards (`_import_tensorflow`).
  `quiet_start` calls it unless told not to.

  Args:
    argv: the command line to look for --verbosity / -v in (default sys.argv).
  """
  argv = sys.argv if argv is None else argv
  if _verbose(argv[1:]) or 'tensorflow' in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  _STDERR[:] = [saved]  # a Ctrl-C meanwhile still says so (`_exit_on_interrupt`)
  os.dup2(devnull, 2)
  try:
    _import_tensorflow()
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    _STDERR[:] = []
    os.close(saved)
    os.close(devnull)


def _import_tensorflow() -> None:
  """Imports TensorFlow and lists its devices with Python's garbage collector off, then freezes what exists.

  The import leaves about 320,000 objects that live as long as the process; every full collection walked them
  again (0.1 s each, several during the import, more while the networks are built and traced: 5% of
  `extract_features`' CPU time at 33 frames a video).  `gc.freeze` moves them out of the collector's sight;
  later garbage is collected as usual (issue 15)."""
  import gc  # pylint: disable=g-import-not-at-top
  gc.disable()
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_physical_devices()
  finally:
    gc.enable()
  gc.freeze()


# ------------------------------------------------------------------------------------------- domains


def _positive(value) -> bool:
  return value > 0 and math.isfinite(value)


def _at_least(n) -> Callable:
  return lambda value: value >= n


DOMAINS: Dict[str, Tuple[Callable, str]] = {
    'fps': (_positive, 'a frame rate > 0 (the paper: 25)'),
    'resize_short_side': (_at_least(1), 'a size in pixels >= 1 (the paper: 256)'),
    'crop_size': (_at_least(1), 'a size in pixels >= 1 (the paper: 224)'),
    'stack_size': (_at_least(1), 'frames per window >= 1'),
    'step_size': (_at_least(1), 'frames between windows >= 1'),
    'batch_size': (_at_least(1), '>= 1'),
    'max_frames': (_at_least(1), '>= 1 frames (omit it for the whole video)'),
    'max_videos': (_at_least(1), '>= 1 (omit it for all videos)'),
    'num_classes': (_at_least(1), '>= 1'),
    'num_frames': (_at_least(1), '>= 1'),
    'num_shards': (_at_least(1), '>= 1'),
    'workers': (_at_least(1), '>= 1'),
    'top_k': (_at_least(1), '>= 1'),
    'train_steps': (_at_least(0), '>= 0'),
    'learning_rate': (_positive, '> 0'),
    'weight_decay': (_at_least(0), '>= 0'),
}


def check_domains(flag_values) -> None:
  """Raises UsageError for the first defined flag (of DOMAINS) whose value is set and outside its domain.

  Args:
    flag_values: the parsed absl FlagValues (flags.FLAGS in the binaries).
  """
  for name, (valid, what) in DOMAINS.items():
    if name not in flag_values:
      continue
    value = flag_values[name].value
    if value is None or isinstance(value, bool):
      continue
    try:
      ok = valid(value)
    except TypeError:
      ok = False
    if not ok:
      raise UsageError(f'--{name}={value} is not valid: expected {what}')


def check_writable_folder(folder: str, flag: str) -> None:
  """Creates `folder` if needed and proves a file can be written there, before any work (a run that could not
  write its results at the end would lose them).

  Raises:
    UsageError: one line naming the flag, the folder and the reason.
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  try:
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix='.write-test-'):
      pass
  except OSError as e:
    reason = e.strerror or type(e).__name__
    if isinstance(e, (FileExistsError, NotADirectoryError)):
      reason = 'a part of that path is a file, not a folder'
    raise UsageError(f'{flag}: cannot write into {folder} ({reason}): choose a folder you can write to') from None


# ------------------------------------------------------------------------------------ flag groups


def _where(flag_values) -> Dict:
  """The DEFINE_* keyword arguments of a flag group: `flag_values` (default flags.FLAGS; an empty FlagValues is
  falsy, hence `is None`) and the module absl files the flags under, the binary that called the group's
  `define_*` (so its --help lists them)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  name = sys._getframe(2).f_globals.get('__name__')  # pylint: disable=protected-access
  return {'module_name': sys.argv[0] if name == '__main__' else name,
          'flag_values': flags.FLAGS if flag_values is None else flag_values}


def define_flow_flags(name: str = 'flow_backend', allow_none: bool = False, flag_values=None):
  """The flow backend flag (choices: the backend table, `data_pipelines.flow.FLOW_BACKENDS`) and --flow_params.

  Args:
    name: 'flow_backend' (classify, extract_features) or 'flow' (prepare_data, where 'none' stores no flow).
    allow_none: add the choice 'none'.
    flag_values: the absl FlagValues to define them in (default flags.FLAGS; tests pass their own).

  Returns:
    (backend flag holder, flow_params flag holder).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from data_pipelines import flow  # pylint: disable=g-import-not-at-top
  where = _where(flag_values)
  choices = sorted(flow.FLOW_BACKENDS) + (['none'] if allow_none else [])
  backend = flags.DEFINE_enum(name, 'tvl1', choices, 'TV-L1 optical flow backend: tvl1 (OpenCV DualTVL1), tvl1_tf '
                              '(ours, OpenCV\'s defaults: a compiled C kernel on a CPU, the TensorFlow program with a '
                              'GPU), tvl1_tf_fast (a fixed iteration budget; docs/flow.md)'
                              + (', none (no flow)' if allow_none else '') + '.', **where)
  params = flags.DEFINE_string('flow_params', '', 'TV-L1 parameters, e.g. "gamma=0.3,warps=3" '
                               '(data_pipelines.flow.TVL1Params names; default: OpenCV\'s); with tvl1_tf and '
                               'tvl1_tf_fast also engine=auto|native|xla.', **where)
  return backend, params


def refuse_unused_flags(names: Sequence[str], context: str, unused: str, fix: str, flag_values=None) -> None:
  """Refuses flags given on a command line that does not use them: one line, the first such flag named.

  Args:
    names: the flags' names, without dashes.
    context: what makes them unused, e.g. '--streams=rgb'.
    unused: what that command line does not compute, e.g. 'flow' or 'RGB features'.
    fix: the alternative to dropping the flag, e.g. 'add the flow stream'.
    flag_values: the parsed absl FlagValues (default flags.FLAGS).

  Raises:
    UsageError: '--<name>=<value> given but <context> computes no <unused>: drop --<name> or <fix>'.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  values = flags.FLAGS if flag_values is None else flag_values
  for name in names:
    if name in values and values[name].present:
      raise UsageError(f'--{name}={values[name].value} given but {context} computes no {unused}: drop --{name} '
                       f'or {fix}')


def refuse_unused_flow_flags(context: str, fix: str, flag_values=None) -> None:
  """Refuses --flow_backend, --flow_params and --flow_margin given on a command line that computes no flow.

  Args:
    context: what computes no flow, e.g. '--streams=rgb' or '--model=i3d_rgb'.
    fix: the alternative to dropping the flag, e.g. 'add the flow stream'.
    flag_values: the parsed absl FlagValues (default flags.FLAGS).

  Raises:
    UsageError: one line naming the first such flag given, its value and the fix.
  """
  refuse_unused_flags(('flow_backend', 'flow_params', 'flow_margin'), context, 'flow', fix, flag_values)


def define_flow_margin_flag(flag_values=None):
  """--flow_margin (classify, extract_features): test-time flow on the center crop plus this many pixels each side.

  Default `data_pipelines.constants.FLOW_MARGIN` (64: <= 0.05 px from whole-frame flow inside the crop on the
  shared clips, docs/flow.md); -1: the whole frame, as the training records when they were converted unpadded
  (OpenCV's tvl1, or prepare_data --flow_pad_multiple=1).

  Args:
    flag_values: the absl FlagValues to define it in (default flags.FLAGS; tests pass their own).

  Returns:
    The flag holder.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from data_pipelines import constants  # pylint: disable=g-import-not-at-top
  return flags.DEFINE_integer(
      'flow_margin', constants.FLOW_MARGIN, 'Flow is computed on the center crop plus this many pixels each side, '
      'clipped to the frame and edge-padded to a multiple of 32 (the default 64: one 256x352 window for most '
      'videos, less work on wide ones, <= 0.05 px from whole-frame flow inside the crop, docs/flow.md); -1: on '
      'the whole frame, unpadded, bit for bit the training records\' flow when they were converted unpadded '
      '(prepare_data with OpenCV\'s tvl1, or --flow_pad_multiple=1).',
      lower_bound=-1, **_where(flag_values))


def define_model_source_flags(flag_values=None):
  """Where a model's weights come from, for the binaries that run a trained model (classify, evaluate, export).

  --checkpoint (a single-stream model), --rgb_checkpoint / --flow_checkpoint (the streams of two_stream_i3d,
  trained on their own), --num_classes (default: read from the checkpoint), --fusion (two_stream_i3d).

  Args:
    flag_values: the absl FlagValues to define them in (default flags.FLAGS; tests pass their own).

  Returns:
    {flag name: holder}.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from i3d_tf.scoring import FUSIONS  # pylint: disable=g-import-not-at-top
  where = _where(flag_values)
  source = 'a training model_dir, a checkpoint prefix or a .weights.h5 file'
  return {
      'checkpoint': flags.DEFINE_string('checkpoint', None, f'A single-stream model: {source}.', **where),
      'rgb_checkpoint': flags.DEFINE_string('rgb_checkpoint', None, f'two_stream_i3d, the RGB stream: {source}, or '
                                            'kinetics400 (the trained weights).', **where),
      'flow_checkpoint': flags.DEFINE_string('flow_checkpoint', None, f'two_stream_i3d, the flow stream: {source}.',
                                             **where),
      'num_classes': flags.DEFINE_integer('num_classes', None, 'Class count of the checkpoints (default: read from '
                                          "them: the run's config.json or the logits kernel).", **where),
      'fusion': flags.DEFINE_enum('fusion', 'logits_sum', list(FUSIONS), 'two_stream_i3d fusion: logits_sum (the '
                                  'official release), logits_mean, softmax_mean (the mean of the streams\' softmax).',
                                  **where),
  }


def define_precision_flag(default: str = 'auto', flag_values=None):
  """--precision: the inference compute precision (`i3d_tf.precision`: auto, float32, bfloat16).

  Args:
    default: 'auto' (classify, extract_features, evaluate: bfloat16 where the hardware has it) or 'float32'
      (export: a SavedModel that runs fast on any machine).
    flag_values: the absl FlagValues to define them in (default flags.FLAGS; tests pass their own).

  Returns:
    The flag holder.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from i3d_tf.precision import PRECISIONS  # pylint: disable=g-import-not-at-top
  return flags.DEFINE_enum('precision', default, list(PRECISIONS), 'Inference compute precision: auto (bfloat16 on '
                           'a CPU with AMX-BF16/AVX512-BF16 or a GPU of compute capability >= 8.0, else float32), '
                           'float32, bfloat16 (weights and logits stay float32; i3d_tf/precision.py).',
                           **_where(flag_values))


# ------------------------------------------------------------------------------- dataclass flags


def _flag_type(annotation):
  """(base type, is_tuple) of a field annotation: int, float, str, bool, Optional[...] or Tuple[int, ...]."""
  import typing  # pylint: disable=g-import-not-at-top
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  if typing.get_origin(annotation) is typing.Union and len(args) == 1:
    return _flag_type(args[0])
  if typing.get_origin(annotation) is tuple:
    return args[0], True
  return annotation, False


def define_dataclass_flags(cls, flag_values=None) -> None:
  """One absl flag per field of the dataclass `cls`: the field's name, default, help and choices.

  Fields carry their help as `metadata={'help': ..., 'choices': ...}` (`training.config.TrainConfig`); the
  binary restates nothing, so a new field is a new flag.  A tuple field is a comma-separated list flag.

  Args:
    cls: a dataclass whose fields are int, float, str, bool, Optional[...] or Tuple[int, ...].
    flag_values: the absl FlagValues to define them in (default flags.FLAGS; tests pass their own).
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  where = _where(flag_values)
  for field in dataclasses.fields(cls):
    kind, is_tuple = _flag_type(field.type)
    help_text = field.metadata.get('help', field.name)
    default = field.default
    if is_tuple:
      flags.DEFINE_list(field.name, [str(v) for v in default], help_text, **where)
    elif field.metadata.get('choices'):
      flags.DEFINE_enum(field.name, default, list(field.metadata['choices']), help_text, **where)
    elif kind is bool:
      flags.DEFINE_boolean(field.name, default, help_text, **where)
    elif kind is int:
      flags.DEFINE_integer(field.name, default, help_text, **where)
    elif kind is float:
      flags.DEFINE_float(field.name, default, help_text, **where)
    else:
      flags.DEFINE_string(field.name, default, help_text, **where)


def _expand(value, config_file):
  """`${WORK}/runs/x` -> the environment's value; an unset variable is a usage error naming it."""
  if not isinstance(value, str) or '$' not in value:
    return value
  expanded = os.path.expandvars(value)
  if '$' in expanded:
    raise UsageError(f'--config={config_file}: {value!r} needs an environment variable that is not set (e.g. '
                     'export WORK=<your workspace root>, WORKSPACE.md)')
  return expanded


def dataclass_from_flags(cls, flag_values=None, config_file: str = None, required: Tuple[str, ...] = ()):
  """`cls` from a JSON file (optional) overridden by every flag given on the command line.

  Args:
    cls: a dataclass with a `from_dict` classmethod (unknown keys refused there).
    flag_values: absl FlagValues holding `define_dataclass_flags(cls)`'s flags (default flags.FLAGS).
    config_file: a JSON object of field values (a run's config.json works), or an experiments/configs/ paper
      row (its "train" object); `${VAR}` in string values is expanded from the environment.  None: flags only.
    required: fields that must come from the file or the command line (a default is not enough).

  Raises:
    UsageError: an unreadable config file, or a required field given nowhere.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flags.FLAGS if flag_values is None else flag_values  # an empty FlagValues is falsy
  values = {}
  if config_file:
    try:
      with open(config_file, encoding='utf-8') as f:
        values = json.load(f)
    except (OSError, ValueError) as e:
      raise UsageError(f'--config={config_file}: cannot read a JSON object ({type(e).__name__}: {e})') from None
    if isinstance(values, dict) and 'train' in values and 'paper' in values:  # experiments/configs/ (a paper row)
      if values['train'] is None:
        raise UsageError(f'--config={config_file} is an evaluation of other runs (train: null): see its "evaluate"')
      values = values['train']
    if not isinstance(values, dict):
      raise UsageError(f'--config={config_file}: expected a JSON object of {cls.__name__} fields')
    values = {k: _expand(v, config_file) for k, v in values.items()}
  for field in dataclasses.fields(cls):
    if fv[field.name].present:
      value = fv[field.name].value
      values[field.name] = tuple(int(v) for v in value) if _flag_type(field.type)[1] else value
  missing = [name for name in required if values.get(name) is None]
  if missing:
    raise UsageError(f'{", ".join("--" + m for m in missing)} must be given (as flags or in --config)')
  try:
    return cls.from_dict(values)
  except ValueError as e:
    raise UsageError(f'--config={config_file}: {e}') from None


# ---------------------------------------------------------------------------------------------- run

USER_ERRORS = (UsageError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, ValueError)


def _user_errors():
  """The error types reported on one line: ours, plus the weights / video / checkpoint readers'."""
  errors = list(USER_ERRORS)
  for module, name in (('i3d_tf.checkpoints.pretrained', 'WeightsUnavailableError'),
                       ('data_pipelines.video', 'VideoDecodeError')):
    loaded = sys.modules.get(module)
    if loaded is not None:
      errors.append(getattr(loaded, name))
  tf = sys.modules.get('tensorflow')
  if tf is not None:  # an unreadable checkpoint or record file
    errors += [tf.errors.NotFoundError, tf.errors.DataLossError, tf.errors.InvalidArgumentError]
  return tuple(errors)


def _one_line(error: BaseException) -> str:
  text = str(error).strip()
  first = text.splitlines()[0] if text else type(error).__name__
  kind = '' if isinstance(error, UsageError) else f'{type(error).__name__}: '
  return kind + first


def _plain_flag_error(message: str) -> str:
  """absl's flag error with Python's conversion messages in words: "invalid literal for int() with base 10:
  'abc'" -> "'abc' is not an integer"; "could not convert string to float: 'x'" -> "'x' is not a number"."""
  import re  # pylint: disable=g-import-not-at-top
  message = re.sub(r"invalid literal for int\(\) with base \d+: ('.*')", r'\1 is not an integer', message)
  return re.sub(r"could not convert string to float: ('.*')", r'\1 is not a number', message)


def _prog() -> str:
  """The binary's name, as its one-line messages start: `classify` for experiments/classify.py."""
  return os.path.splitext(os.path.basename(sys.argv[0] or 'python'))[0]


_OURS = []  # the SIGINT handler `_exit_on_interrupt` installed last
_INTERRUPTED = []  # True once Ctrl-C reached main (`_interrupt`)


def _interrupt(signum, frame):  # pylint: disable=unused-argument
  """main's SIGINT handler: Python's own (KeyboardInterrupt), remembering that it came."""
  _INTERRUPTED[:] = [True]
  raise KeyboardInterrupt
_STDERR = []  # the terminal's stderr while `quiet_start` points file descriptor 2 at /dev/null


def _exit_on_interrupt(status: int, line: str = '') -> None:
  """From now on Ctrl-C (SIGINT) ends the process at once with `status` (`os._exit`, after flushing and after
  `line` on stderr) instead of raising KeyboardInterrupt.  For the stretches where no handler of ours could catch
  one: the imports before `run` starts `main` (a traceback through TensorFlow's import otherwise), and the end
  after `main` has its status (the interpreter's teardown, about 0.7 s with TensorFlow, would otherwise turn a
  finished run into status 130).  Only from the main thread, and never over a handler someone else set."""
  import signal  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  if threading.current_thread() is not threading.main_thread():
    return
  if signal.getsignal(signal.SIGINT) not in [signal.default_int_handler, _interrupt] + _OURS:
    return
  prog = _prog()

  def handler(signum, frame):  # pylint: disable=unused-argument
    try:  # nothing here may keep the process from ending (a closed pipe, a print this signal interrupted)
      for stream in (sys.stdout, sys.stderr):
        try:
          stream.flush()
        except BaseException:  # pylint: disable=broad-except
          pass
      if line:
        os.write(_STDERR[0] if _STDERR else 2, f'\n{prog}: {line}\n'.encode())
    except BaseException:  # pylint: disable=broad-except
      pass
    finally:
      os._exit(status)  # pylint: disable=protected-access

  _OURS[:] = [handler]
  signal.signal(signal.SIGINT, handler)


def _spawned_worker() -> bool:
  """A multiprocessing worker: a spawned one imports the binary again as a module `__mp_main__` that is not
  `__main__` (elsewhere multiprocessing makes the two names one module; it sets `parent_process()` only after
  that import)."""
  import multiprocessing  # pylint: disable=g-import-not-at-top
  return (sys.modules.get('__mp_main__') not in (None, sys.modules.get('__main__'))
          or multiprocessing.parent_process() is not None)


_RUNNING = []  # True while `run` runs a binary's main


def finished(status: int) -> int:
  """A binary's work is done and its summary about to be printed: from now on Ctrl-C ends the process at once
  with `status` (0, or 1 when some inputs failed) rather than 130.  `run` does the same when main returns, but
  freeing main's networks on its way out takes a moment in which an interrupt would still turn a finished run
  into 'interrupted' (a newcomer trial hit it: the summary printed, then status 130).  Nothing happens outside
  `run` (a library user's own Ctrl-C handling stays as it is).

  Args:
    status: the exit status main is about to return.

  Returns:
    `status`, for `return cli.finished(...)`.
  """
  if _RUNNING:
    _exit_on_interrupt(status)
  return status


def _end_now(status: int) -> int:
  """`status`; but a process that ends (an error, Ctrl-C, or its main returning, e.g. after a loop that caught
  Ctrl-C itself or found no video of the prepared size) while TV-L1 still compiles in the background
  (`data_pipelines.flow.prepare_tvl1`) ends at once with it (`os._exit`, after flushing), instead of waiting
  up to 20 s for a compilation nobody will use (Python would join its thread); so does one whose video readers
  (`i3d_tf.features.reading`) are still in a step: Python's teardown stops such a thread inside OpenCV's C++
  code, which aborts the process (status 134, a newcomer trial's Ctrl-C during extract_features).  From here on a Ctrl-C ends the
  process at once with this status (`_exit_on_interrupt`)."""
  _exit_on_interrupt(status)
  tvl1 = sys.modules.get('data_pipelines.flow.tf_tvl1')
  features = sys.modules.get('i3d_tf.features')
  if (tvl1 is not None and tvl1.abandon_preparations()) or (features is not None and features.reading()):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # pylint: disable=protected-access
  return status


def run(main: Callable) -> None:
  """`absl.app.run(main)` with one-line user errors (status 2; bad flag values too) and Ctrl-C (status 130), at
  once even while TV-L1 compiles in the background (`_end_now`).  Inside main Ctrl-C raises KeyboardInterrupt
  as usual (a loop may catch it); after main has its status (`finished`, or main returning) it ends the process
  at once with that status.

  Args:
    main: the binary's main(argv) -> exit status.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  prog = _prog()
  module = sys.modules.get(getattr(main, '__module__', ''))
  if module is not None and module is not sys.modules.get('__main__') and module.__doc__:
    sys.modules['__main__'].__doc__ = module.__doc__  # a console script: --help shows the binary's usage

  def checked_main(argv):
    import signal  # pylint: disable=g-import-not-at-top
    if signal.getsignal(signal.SIGINT) in _OURS:
      signal.signal(signal.SIGINT, _interrupt)  # main's loops catch KeyboardInterrupt again
    _RUNNING[:] = [True]
    try:
      check_domains(flags.FLAGS)
      status = main(argv)
    except KeyboardInterrupt:
      print(f'\n{prog}: interrupted', file=sys.stderr)
      return _end_now(130)
    except Exception as e:  # pylint: disable=broad-except
      if _INTERRUPTED:  # an error Ctrl-C caused inside a C extension (a newcomer trial saw a SystemError)
        print(f'\n{prog}: interrupted', file=sys.stderr)
        return _end_now(130)
      if isinstance(e, app.UsageError):  # a binary's own argument check: the same one line
        print(f'{prog}: {e}', file=sys.stderr)
        return _end_now(2)
      if not isinstance(e, _user_errors()) or _verbose(sys.argv[1:]):
        raise
      hint = '' if isinstance(e, UsageError) else ' (--verbosity=1 shows the traceback)'
      print(f'{prog}: {_one_line(e)}{hint}', file=sys.stderr)
      return _end_now(2)
    return _end_now(0 if status is None else status)

  def parse(argv):  # a bad flag value: one line and status 2 like every usage error (absl: 'FATAL ...', 1)
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f'{prog}: {_plain_flag_error(str(e))} (--helpfull lists the flags)', file=sys.stderr)
      _exit_on_interrupt(2)
      sys.exit(2)

  app.run(checked_main, flags_parser=parse)
