"""i3d_tf: Two-Stream Inflated 3D ConvNets (Quo Vadis, Action Recognition?) in TensorFlow 2 / Keras 3."""

import setuptools

# Exact pins: the versions measured together on the reference machine (2026-11).  tensorflow-io is not
# a dependency: 0.37.1 loads no op on TF 2.21 and its FFmpeg decode fails on Debian 12 (see README).
INSTALL_REQUIRES = [
    'tensorflow==2.21.0',
    'keras==3.15.0',
    'numpy==2.4.6',
    'absl-py==2.5.1',
    'opencv-contrib-python-headless==5.0.0.93',  # cv2.optflow (TV-L1); never with opencv-python
    'tensorflow-datasets==4.9.10',
    'importlib_resources==7.1.0',  # needed by tensorflow-datasets 4.9.10
    'tqdm==4.70.1',
    'tensorboard==2.21.0',  # to view the training summaries
    'matplotlib==3.11.2',
    'pillow==12.3.0',  # the newest apache-beam 2.77 accepts
    'protobuf==6.33.6',
]

EXTRAS = {
    'dev': ['pytest==9.2.0', 'av==14.0.0'],  # av (PyAV): tests write variable-frame-rate videos with it
    'beam': ['apache-beam==2.77.0'],
    'torch': ['torch==2.9.1'],
}

# `i3d-tf-classify` etc.: the same code as `python experiments/classify.py` (experiments/*.py `console_main`).
CONSOLE_SCRIPTS = ['classify', 'prepare_data', 'train', 'evaluate', 'export', 'extract_features',
                   'convert_checkpoint', 'evaluate_sample', 'average_splits', 'model_table', 'visualize_filters']

# TV-L1's CPU kernel (data_pipelines/flow/native.py): optional, so an install without a C compiler still
# succeeds (the 'tvl1_tf' backends then run the XLA program, and say so once).  On x86-64 it carries AVX-512,
# AVX2 and baseline code, chosen when it loads (target_clones), so no flag ties it to the building CPU; no
# fused multiply-adds (-ffp-contract=off), so every clone computes the same flow.
NATIVE_TVL1 = setuptools.Extension('data_pipelines.flow._tvl1_native', ['data_pipelines/flow/_tvl1_native.c'],
                                   extra_compile_args=['-O3', '-fno-math-errno', '-ffp-contract=off',
                                                       '-fopenmp-simd'], optional=True)

setuptools.setup(
    name='i3d_tf',
    version='0.1.0',
    description='Two-Stream Inflated 3D ConvNets (Carreira & Zisserman, CVPR 2017) in TensorFlow 2 / Keras 3',
    long_description=open('README.md', encoding='utf-8').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['i3d_tf', 'i3d_tf.*', 'data_pipelines', 'data_pipelines.*'])
    + ['i3d_tf.experiments'],
    package_dir={'i3d_tf.experiments': 'experiments'},  # the binaries, importable once installed
    entry_points={'console_scripts': [f'i3d-tf-{name.replace("_", "-")} = i3d_tf.experiments.{name}:console_main'
                                      for name in CONSOLE_SCRIPTS]},
    package_data={'data_pipelines': ['label_maps/*.txt']},  # Kinetics-400/600 class names
    ext_modules=[NATIVE_TVL1],
    python_requires='>=3.10',
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license='Apache-2.0',
)
