"""What benchmark result files and the demo say about the machine they ran on."""

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
