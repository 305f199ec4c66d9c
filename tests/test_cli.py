"""The binaries' shared behaviour (i3d_tf.cli): user errors are one line with status 2, not tracebacks;
flags outside their domain are refused before any work; TensorFlow's start-up lines stay off stderr."""

import os
import subprocess
import sys

import pytest

import i3d_tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, *args, env_extra=None, keep_log_level=True):
  env = dict(os.environ, PYTHONPATH=ROOT)
  if not keep_log_level:
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)
  env.update(env_extra or {})
  return subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', f'{binary}.py')] + list(args),
                        capture_output=True, text=True, env=env, cwd=ROOT)


def one_line(proc, binary):
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  assert len(lines) == 1 and lines[0].startswith(f'{binary}: '), lines
  return lines[0]


@pytest.mark.slow
def test_user_errors_are_one_line_without_the_tensorflow_banner(tmp_path):
  """The issue's three: a glob matching nothing, a missing checkpoint, an existing export directory; run without
  TF_CPP_MIN_LOG_LEVEL, so the line is all stderr holds."""
  line = one_line(run('train', '--model=i3d_rgb', '--num_classes=3', f'--train_data={tmp_path}/none-*',
                      f'--model_dir={tmp_path / "run"}', '--train_steps=1', keep_log_level=False), 'train')
  assert 'none-*' in line and 'Traceback' not in line
  line = one_line(run('evaluate', '--model=i3d_rgb', f'--checkpoint={tmp_path / "missing.weights.h5"}',
                      f'--eval_data={tmp_path}/x-*', f'--output_dir={tmp_path / "eval"}', keep_log_level=False),
                  'evaluate')
  assert 'missing.weights.h5' in line
  ckpt = str(tmp_path / 'rgb.weights.h5')
  i3d_tf.build_model('i3d_rgb', 3).save_weights(ckpt)
  (tmp_path / 'export').mkdir()
  line = one_line(run('export', '--model=i3d_rgb', f'--checkpoint={ckpt}', f'--output_dir={tmp_path / "export"}',
                      keep_log_level=False), 'export')
  assert 'exists: pass --overwrite' in line


def test_flags_outside_their_domain_are_refused_before_any_work(tmp_path):
  out = tmp_path / 'features'
  line = one_line(run('extract_features', f'--videos={tmp_path}', f'--output_dir={out}', '--fps=0',
                      '--allow_random_weights'), 'extract_features')
  assert line == 'extract_features: --fps=0.0 is not valid: expected a frame rate > 0 (the paper: 25)'
  assert not out.exists()
  line = one_line(run('prepare_data', '--dataset=folder', f'--video_dir={tmp_path}', f'--output_dir={out}',
                      '--num_shards=0'), 'prepare_data')
  assert line == 'prepare_data: --num_shards=0 is not valid: expected >= 1'
  line = one_line(run('prepare_data', '--dataset=folder', f'--video_dir={tmp_path}', f'--output_dir={out}',
                      '--flow_pad_multiple=abc'), 'prepare_data')
  assert line == "prepare_data: flag --flow_pad_multiple=abc: 'abc' is not an integer (--helpfull lists the flags)"
  line = one_line(run('prepare_data', '--dataset=folder', f'--video_dir={tmp_path}', f'--output_dir={out}',
                      '--flow=none', '--flow_pad_multiple=32'), 'prepare_data')
  assert line == ('prepare_data: --flow_pad_multiple=32 with --flow=none: there is no flow to pad; drop '
                  '--flow_pad_multiple or choose a flow backend')
  line = one_line(run('prepare_data', '--dataset=folder', f'--video_dir={tmp_path}', f'--output_dir={out}',
                      '--max_frames=1'), 'prepare_data')  # every video would fail: 2 frames make one flow field
  assert line == 'prepare_data: flag --max_frames=1: 1 is not integer >= 2 (--helpfull lists the flags)'
  line = one_line(run('classify', f'--videos={tmp_path}', '--model=i3d_rgb', '--flow_backend=tvl1_tf'), 'classify')
  assert line == ('classify: --flow_backend=tvl1_tf given but --model=i3d_rgb computes no flow: drop --flow_backend or '
                  'classify with a flow model (i3d_flow, two_stream_i3d)')
  assert not out.exists()


def test_verbosity_keeps_the_traceback(tmp_path):
  proc = run('evaluate', '--model=i3d_rgb', f'--checkpoint={tmp_path / "missing.weights.h5"}',
             f'--eval_data={tmp_path}/x-*', f'--output_dir={tmp_path / "eval"}', '--verbosity=1')
  assert proc.returncode != 0 and 'Traceback' in proc.stderr and 'FileNotFoundError' in proc.stderr


def test_every_console_script_is_a_binary_and_runs_installed():
  """setup.py's console scripts (`i3d-tf-NAME`) are experiments/NAME.py's `console_main`; one runs from the
  venv's bin folder (`make install` is an editable install) and shows the binary's usage and flags."""
  import ast  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  setup = ast.parse(open(os.path.join(root, 'setup.py'), encoding='utf-8').read())
  names = next(ast.literal_eval(node.value) for node in setup.body if isinstance(node, ast.Assign)
               and getattr(node.targets[0], 'id', '') == 'CONSOLE_SCRIPTS')
  assert {'classify', 'train', 'prepare_data', 'evaluate', 'export', 'extract_features'} <= set(names)
  for name in names:
    tree = ast.parse(open(os.path.join(root, 'experiments', f'{name}.py'), encoding='utf-8').read())
    assert 'console_main' in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, name
  script = os.path.join(os.path.dirname(sys.executable), 'i3d-tf-train')
  if not os.path.exists(script):
    pytest.skip(f'{script} not installed (run `make install`)')
  proc = subprocess.run([script, '--help'], capture_output=True, text=True, cwd=str(root))
  assert 'Trains a registered model' in proc.stdout and '--train_steps' in proc.stdout, proc.stderr[-1000:]


def test_shared_flag_groups_come_from_one_place():
  """The flow flags' choices are the backend table's; the model-source group is the same in every binary."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from data_pipelines import flow  # pylint: disable=g-import-not-at-top
  from i3d_tf import cli  # pylint: disable=g-import-not-at-top
  from i3d_tf.scoring import FUSIONS  # pylint: disable=g-import-not-at-top
  fv = flags.FlagValues()
  cli.define_flow_flags('flow', allow_none=True, flag_values=fv)
  assert fv['flow'].parser.enum_values == sorted(flow.FLOW_BACKENDS) + ['none'] and fv['flow'].value == 'tvl1'
  assert fv['flow_params'].value == ''
  fv = flags.FlagValues()
  holders = cli.define_model_source_flags(flag_values=fv)
  assert set(holders) == set(fv) == {'checkpoint', 'rgb_checkpoint', 'flow_checkpoint', 'num_classes', 'fusion'}
  assert fv['fusion'].parser.enum_values == list(FUSIONS) and fv['fusion'].value == 'logits_sum'
  for binary in ('classify', 'evaluate', 'export'):
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments',
                           f'{binary}.py'), encoding='utf-8') as f:
      assert 'cli.define_model_source_flags()' in f.read(), binary


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
  """classify wrote its results only at the end: an --output under a file lost every prediction."""
  from i3d_tf import cli  # pylint: disable=g-import-not-at-top
  blocker = tmp_path / 'notes.txt'
  blocker.write_text('a file, not a folder')
  with pytest.raises(cli.UsageError, match=r'--output=x: cannot write into .*notes.txt/sub \(a part of that path is a '
                                           r'file, not a folder\)'):
    cli.check_writable_folder(str(blocker / 'sub'), '--output=x')
  cli.check_writable_folder(str(tmp_path / 'new' / 'folder'), '--output=x')  # created, and nothing left in it
  assert os.listdir(tmp_path / 'new' / 'folder') == []
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  clip = os.path.join(root, '..', 'shared', 'data', 'videos', 'v_ApplyEyeMakeup_g01_c01.avi')
  proc = subprocess.run([sys.executable, os.path.join(root, 'experiments', 'classify.py'), f'--videos={clip}',
                         f'--output={blocker}/x.csv'], capture_output=True, text=True, cwd=root)
  assert proc.returncode == 2 and 'cannot write into' in proc.stderr.strip().splitlines()[-1], proc.stderr[-1500:]
  assert 'classified' not in proc.stdout



def _as_from_a_terminal():
  """Ctrl-C not ignored in the child: a test run in the background (CI, nohup) inherits SIGINT ignored, and a
  binary started so ignores it too (rightly: quiet_start never overrides a handler it did not set)."""
  import signal
  signal.signal(signal.SIGINT, signal.SIG_DFL)


# Ctrl-C where no handler of the binary's can catch it: while its modules load (before cli.run; here a
# "tensorflow" that takes its time, loaded by the real quiet_start with file descriptor 2 at /dev/null), and
# once main's work is done (cli.finished while main frees its networks, or the interpreter's teardown); and
# inside main, where its own loop catches it.
INTERRUPTED = r'''
import atexit, sys, time
from i3d_tf import cli
cli.quiet_start(['x'] if sys.argv[1] == 'loading' else ['x', '--verbosity=1'])

def main(argv):
  if argv[1] == 'teardown':
    atexit.register(time.sleep, 60)  # a slow teardown
    print('done', flush=True)
    return 1
  if argv[1] == 'finished':
    status = cli.finished(1)
    print('done', flush=True)
    time.sleep(60)  # freeing the networks
    return status
  try:
    print('working', flush=True)
    time.sleep(60)
  except KeyboardInterrupt:
    print('main caught it', flush=True)
    return 3

cli.run(main)
'''


@pytest.mark.parametrize('when, status, stdout, last_line', [('loading', 130, 'loading\n', '-c: interrupted'),
                                                              ('teardown', 1, 'done\n', None),
                                                              ('finished', 1, 'done\n', None),
                                                              ('working', 3, 'working\nmain caught it\n', None)])
def test_ctrl_c_while_loading_or_ending_is_one_line_and_keeps_a_finished_status(tmp_path, when, status, stdout,
                                                                                last_line):
  import signal
  import time
  (tmp_path / 'tensorflow').mkdir()
  (tmp_path / 'tensorflow' / '__init__.py').write_text("import time\nprint('loading', flush=True)\ntime.sleep(60)\n")
  proc = subprocess.Popen([sys.executable, '-c', INTERRUPTED, when], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=dict(os.environ, PYTHONPATH=f'{tmp_path}{os.pathsep}{ROOT}'), cwd=ROOT,
                          preexec_fn=_as_from_a_terminal)
  first = proc.stdout.readline()  # the process is where the case says
  time.sleep(0.3)
  start = time.perf_counter()
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=30)
  assert time.perf_counter() - start < 10  # at once, not after the 60 s sleep
  assert (proc.returncode, first + out) == (status, stdout), err[-2000:]
  assert 'Traceback' not in err, err[-2000:]
  lines = [l for l in err.splitlines() if l.strip()]
  assert (lines[-1] if lines else None) == last_line, err[-2000:]


POOL = r'''
import multiprocessing, sys, time
from concurrent.futures import ProcessPoolExecutor
from i3d_tf import cli
cli.quiet_start(['x', '--verbosity=1'])
if sys.argv[1] == 'importing':
  time.sleep(3)  # the workers are still importing this module when the interrupt comes

def main(argv):
  from data_pipelines import conversion
  pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('spawn'), initializer=conversion._worker_init)
  try:
    futures = [pool.submit(time.sleep, 60) for _ in range(2)]
    if argv[1] == 'working':
      time.sleep(3)  # the workers are in their tasks
    print('ready', flush=True)
    futures[0].result()
  finally:
    pool.shutdown(wait=False, cancel_futures=True)

if __name__ == '__main__':
  cli.run(main)
'''


@pytest.mark.parametrize('when', ['importing', 'working'])
def test_ctrl_c_to_a_binary_with_worker_processes_is_one_line(tmp_path, when):
  """prepare_data --workers: the terminal's Ctrl-C reaches every process of the group; the workers (spawned:
  they import the binary again, cli.quiet_start included) end without a word, the binary says it once."""
  import signal
  import time
  script = tmp_path / 'binary.py'
  script.write_text(POOL)
  proc = subprocess.Popen([sys.executable, str(script), when], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT, start_new_session=True,
                          preexec_fn=_as_from_a_terminal)
  assert proc.stdout.readline() == 'ready\n'
  time.sleep(0.5)
  start = time.perf_counter()
  os.killpg(proc.pid, signal.SIGINT)  # what a terminal does
  out, err = proc.communicate(timeout=60)
  assert time.perf_counter() - start < 20  # not after the workers' 60 s tasks
  lines = [l for l in err.splitlines() if l.strip()]
  assert (proc.returncode, lines) == (130, ['binary: interrupted']), err[-3000:]


def test_tensorflow_loads_quietly_with_its_objects_frozen_and_extract_features_defers_it():
  """`quiet_start` imports TensorFlow with the garbage collector off and freezes what the import made (full
  collections had walked those ~320,000 objects again, issue 15); `extract_features` imports its module and
  starts main without TensorFlow, which `load_tensorflow` then loads, so its first videos are read meanwhile."""
  code = r'''
import gc, sys
from i3d_tf import cli
sys.argv = ['experiments/extract_features.py']
import experiments.extract_features  # its module: flags and imports, not main
print('tf after the binary imports:', 'tensorflow' in sys.modules)
cli.load_tensorflow(['x'])
print('tf after load_tensorflow:', 'tensorflow' in sys.modules, 'gc enabled:', gc.isenabled(),
      'frozen:', gc.get_freeze_count() > 100000)
'''
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                        env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.splitlines() == ['tf after the binary imports: False',
                                      'tf after load_tensorflow: True gc enabled: True frozen: True'], proc.stdout
  assert 'oneDNN' not in proc.stderr and 'cuInit' not in proc.stderr, proc.stderr[-2000:]
