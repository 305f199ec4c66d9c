"""The cache folder ($I3D_TF_HOME) and XLA's persistent compilation cache that the binaries turn on."""

import glob
import os
import subprocess
import sys
from importlib import metadata

from i3d_tf import home

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cache_dir_follows_i3d_tf_home(tmp_path, monkeypatch):
  monkeypatch.setenv('I3D_TF_HOME', str(tmp_path / 'h'))
  assert home.cache_dir() == str(tmp_path / 'h')
  assert home.xla_cache_dir() == str(tmp_path / 'h' / 'xla' / f'tensorflow-{metadata.version("tensorflow")}' /
                                     f'cpu-{home.cpu_fingerprint()}')
  monkeypatch.delenv('I3D_TF_HOME')
  assert home.cache_dir() == os.path.expanduser(os.path.join('~', '.cache', 'i3d_tf'))


def test_cpu_fingerprint_separates_kinds_of_cpu(tmp_path):
  a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
  a.write_text('processor\t: 0\nmodel name\t: Xeon\nflags\t\t: avx2 avx512f amx_bf16\n'
               'processor\t: 1\nmodel name\t: Xeon\nflags\t\t: avx2 avx512f amx_bf16\n')
  b.write_text('processor\t: 0\nmodel name\t: Xeon\nflags\t\t: avx2\n')
  c.write_text('processor\t: 0\nmodel name\t: Xeon\nflags\t\t: avx2 avx512f amx_bf16\ncpu MHz\t: 2100\n')
  fa, fb = home.cpu_fingerprint(str(a)), home.cpu_fingerprint(str(b))
  assert len(fa) == 12 and fa != fb and fa == home.cpu_fingerprint(str(c))  # cores and clock do not count
  assert home.cpu_fingerprint(str(tmp_path / 'missing')) == 'unknown'


def test_an_unwritable_home_turns_the_cache_off_with_one_line(tmp_path, monkeypatch, capsys):
  """TensorFlow would fail every TV-L1 compilation (NotFoundError) with a cache folder it cannot write."""
  (tmp_path / 'file').write_text('not a folder')
  monkeypatch.setenv('I3D_TF_HOME', str(tmp_path / 'file' / 'home'))
  env = {'TF_XLA_FLAGS': '--tf_xla_auto_jit=2'}
  assert home.enable_xla_cache(env) is None and env == {'TF_XLA_FLAGS': '--tf_xla_auto_jit=2'}
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('i3d_tf: XLA compilation cache off: cannot write ')
  assert 'set I3D_TF_HOME to a writable folder' in err[0]


def test_enable_xla_cache_adds_the_flag_once_and_respects_the_user(tmp_path, monkeypatch):
  monkeypatch.setenv('I3D_TF_HOME', str(tmp_path))
  env = {}
  folder = home.enable_xla_cache(env)
  assert folder == home.xla_cache_dir() and env == {'TF_XLA_FLAGS': f'--tf_xla_persistent_cache_directory={folder}'}
  assert home.enable_xla_cache(env) == folder and env['TF_XLA_FLAGS'].count('persistent_cache') == 1
  env = {'TF_XLA_FLAGS': '--tf_xla_auto_jit=2'}  # the user's other flags are kept
  home.enable_xla_cache(env)
  assert env['TF_XLA_FLAGS'] == f'--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory={folder}'
  env = {'TF_XLA_FLAGS': '--tf_xla_persistent_cache_directory=/elsewhere'}  # the user's folder
  assert home.enable_xla_cache(env) == '/elsewhere' and env['TF_XLA_FLAGS'].endswith('=/elsewhere')
  env = {'TF_XLA_FLAGS': '--tf_xla_persistent_cache_directory='}  # off
  assert home.enable_xla_cache(env) is None and env['TF_XLA_FLAGS'] == '--tf_xla_persistent_cache_directory='


def test_a_binary_start_fills_the_cache_and_tvl1_tf_says_it_compiles(tmp_path):
  """cli.quiet_start turns the cache on; the TensorFlow TV-L1's first call of a size is announced, and its
  compiled program lands in <home>/xla/tensorflow-<version>/ for the next process."""
  script = ('import sys; from i3d_tf import cli; cli.quiet_start([sys.argv[0]]);\n'
            'import numpy as np; from data_pipelines.flow import tvl1_video\n'
            'frames = np.random.default_rng(0).integers(0, 255, (3, 32, 40)).astype(np.uint8)\n'
            'print(tvl1_video(frames, nscales=2, warps=1, outer_iterations=2).shape)\n')
  env = dict(os.environ, PYTHONPATH=ROOT, I3D_TF_HOME=str(tmp_path))
  env.pop('TF_XLA_FLAGS', None)
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == '(2, 32, 40, 2)'
  lines = [l for l in proc.stderr.splitlines() if l.startswith('tvl1_tf:')]
  assert len(lines) == 2 and 'compiling (XLA; or loading from its cache) TV-L1 for 1 pair(s) of 32x40' in lines[0], \
      proc.stderr[-2000:]
  assert lines[1].startswith('tvl1_tf: 32x40 ready in ')
  # XLA's start-up information lines (the service, its device, MLIR, "Compiled cluster") are not shown.
  assert not [l for l in proc.stderr.splitlines() if l.startswith('I0000')], proc.stderr[-2000:]
  version = metadata.version('tensorflow')
  assert glob.glob(str(tmp_path / 'xla' / f'tensorflow-{version}' / 'cpu-*' / 'xla_compile_cache__*XLA_CPU_JIT.pb'))
  # A second process loads the program from the cache; TensorFlow 2.21's warning that two tuning flags
  # (+prefer-no-scatter, +prefer-no-gather) differ from this machine's is not shown (cpu_aot_loader.cc).
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == 0 and proc.stdout.strip() == '(2, 32, 40, 2)', proc.stderr[-2000:]
  assert 'prefer-no-' not in proc.stderr and 'SIGILL' not in proc.stderr, proc.stderr[-3000:]
  assert 'XlaSerializedCacheEntry' not in proc.stderr, proc.stderr[-3000:]  # TF's text-then-binary read
  assert [l for l in proc.stderr.splitlines() if l.startswith('tvl1_tf:')][1].startswith('tvl1_tf: 32x40 ready')
