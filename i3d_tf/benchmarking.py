"""What benchmark result files and the demo say about the machine they ran on, and how the benchmarks time a binary."""

import platform


def cpu_name() -> str:
  """The CPU model ('Intel(R) Xeon(R) Processor @ 2.80GHz') from /proc/cpuinfo, else what platform knows."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def timed_process(cmd, env=None, cwd=None) -> dict:
  """Runs `cmd` in a fresh process and measures it as a user would see it: start-up, compilation and all.

  Args:
    cmd: the argument list (e.g. [sys.executable, 'experiments/extract_features.py', ...]).
    env: its environment (None: this process's).
    cwd: its working folder (None: this process's).

  Returns:
    {'wall_seconds', 'cpu_seconds' (user + system of the child and its children), 'cpu_utilisation' (CPU
    seconds / wall seconds / cores), 'returncode', 'stdout', 'stderr', 'compile_lines' (the `tvl1_tf: ...
    ready in` lines: one per TV-L1 program prepared)}.
  """
  import os  # pylint: disable=g-import-not-at-top
  import resource  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return {'wall_seconds': wall, 'cpu_seconds': cpu, 'cpu_utilisation': cpu / wall / (os.cpu_count() or 1),
          'returncode': proc.returncode, 'stdout': proc.stdout, 'stderr': proc.stderr,
          'compile_lines': [l for l in proc.stderr.splitlines() if l.startswith('tvl1_tf:') and 'ready in' in l]}
