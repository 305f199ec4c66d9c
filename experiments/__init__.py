"""The binaries: thin absl programs that parse flags and call the library (see docs/architecture.md).

Run from a checkout as `python experiments/NAME.py`; after `pip install .` the same modules are
`i3d_tf.experiments.NAME` and the console scripts `i3d-tf-NAME` (setup.py `console_scripts`).
"""
