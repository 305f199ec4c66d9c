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


def test_verbosity_keeps_the_traceback(tmp_path):
  proc = run('evaluate', '--model=i3d_rgb', f'--checkpoint={tmp_path / "missing.weights.h5"}',
             f'--eval_data={tmp_path}/x-*', f'--output_dir={tmp_path / "eval"}', '--verbosity=1')
  assert proc.returncode != 0 and 'Traceback' in proc.stderr and 'FileNotFoundError' in proc.stderr
