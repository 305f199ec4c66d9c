"""Process-level defaults applied before TensorFlow is imported (entry points import this first)."""

import os


def apply_cpu_defaults():
  """oneDNN is about 2x faster on Conv3D on CPU here; respect a user's explicit choice."""
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


apply_cpu_defaults()
