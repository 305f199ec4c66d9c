"""Process-level defaults applied before TensorFlow is imported (`import i3d_tf` runs this first).

Only TF_ENABLE_ONEDNN_OPTS (read when the first op runs): oneDNN is about 2x faster on Conv3D on CPU here,
and a user's explicit choice is kept.  TensorFlow's log level cannot be set from here: its C++ start-up
lines read TF_CPP_MIN_LOG_LEVEL from the environment the process started with (`i3d_tf.cli.quiet_start`).
"""

import os


def apply_cpu_defaults():
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')


apply_cpu_defaults()
