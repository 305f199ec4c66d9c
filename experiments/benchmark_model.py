r"""Benchmark (not a test): I3D forward and train-step speed on this machine, with references.

Each configuration runs in its own process (TF_ENABLE_ONEDNN_OPTS is read when TensorFlow loads):
oneDNN on/off x XLA jit on/off.  Reports clips/s and frames/s and the ratio to the plain reference
(oneDNN off, no jit) measured in the same run; writes benchmarks/model_<device>.json atomically.

  python experiments/benchmark_model.py --frames=64 --size=224 --batch=1 --repeats=3
"""

import json
import os
import platform
import subprocess
import sys

from absl import app
from absl import flags

from data_pipelines.io_utils import atomic_write_json

_FRAMES = flags.DEFINE_integer('frames', 64, 'Clip length (Sec. 2.4 trains on 64 frames).')
_SIZE = flags.DEFINE_integer('size', 224, 'Crop size.')
_BATCH = flags.DEFINE_integer('batch', 1, 'Clips per step.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed repeats after one warm-up.')
_MODES = flags.DEFINE_list('modes', ['forward', 'train_step'], 'What to time.')
_OUTPUT = flags.DEFINE_string('output', None, 'Result JSON (default benchmarks/model_<cpu|gpu>.json).')
_WORKER = flags.DEFINE_string('worker', None, 'Internal: run one configuration "onednn,jit".')

_CONFIGS = [('0', False), ('1', False), ('1', True), ('0', True)]


def _time_one(onednn: str, jit: bool):
  """Runs in the child process; returns seconds per step for each mode."""
  import time
  import numpy as np
  import tensorflow as tf
  import i3d_tf
  import keras
  model = i3d_tf.I3D('rgb', num_classes=400)
  x = tf.constant(np.random.RandomState(0).uniform(-1, 1, (_BATCH.value, _FRAMES.value, _SIZE.value,
                                                             _SIZE.value, 3)).astype(np.float32))
  y = tf.zeros([_BATCH.value], tf.int32)
  opt = keras.optimizers.SGD(0.01, momentum=0.9)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function(jit_compile=jit)
  def forward(v):
    return model(v, training=False)

  @tf.function(jit_compile=jit)
  def train_step(v, labels):
    with tf.GradientTape() as tape:
      loss = loss_fn(labels, model(v, training=True))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss

  results = {}
  for mode in _MODES.value:
    fn = (lambda: forward(x)) if mode == 'forward' else (lambda: train_step(x, y))
    fn().numpy()  # trace + warm-up
    times = []
    for _ in range(_REPEATS.value):
      start = time.perf_counter()
      fn().numpy()
      times.append(time.perf_counter() - start)
    results[mode] = min(times)
  device = 'gpu' if tf.config.list_physical_devices('GPU') else 'cpu'
  return {'onednn': onednn, 'jit': jit, 'device': device, 'seconds_per_step': results}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _WORKER.value:
    onednn, jit = _WORKER.value.split(',')
    print('RESULT ' + json.dumps(_time_one(onednn, jit == '1')))
    return
  rows = []
  for onednn, jit in _CONFIGS:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL='2')
    cmd = [sys.executable, os.path.abspath(__file__), f'--worker={onednn},{int(jit)}',
           f'--frames={_FRAMES.value}', f'--size={_SIZE.value}', f'--batch={_BATCH.value}',
           f'--repeats={_REPEATS.value}', f'--modes={",".join(_MODES.value)}']
    print(f'oneDNN={onednn} jit={jit} ...', flush=True)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [l for l in out.stdout.splitlines() if l.startswith('RESULT ')]
    if out.returncode != 0 or not lines:
      rows.append({'onednn': onednn, 'jit': jit, 'error': out.stderr.strip().splitlines()[-1:]})
      continue
    rows.append(json.loads(lines[-1][len('RESULT '):]))
  reference = next((r for r in rows if r.get('onednn') == '0' and not r.get('jit') and 'error' not in r), None)
  frames = _FRAMES.value * _BATCH.value
  print(f'\nI3D RGB, batch {_BATCH.value} x {_FRAMES.value}x{_SIZE.value}x{_SIZE.value}, '
        f'{os.cpu_count()} cores ({platform.processor() or platform.machine()})')
  print('| oneDNN | XLA jit | mode | s/step | clips/s | frames/s | speed vs reference |')
  print('|---|---|---|---|---|---|---|')
  for r in rows:
    if 'error' in r:
      print(f'| {r["onednn"]} | {r["jit"]} | failed: {r["error"]} |')
      continue
    r['clips_per_s'], r['frames_per_s'], r['ratio_vs_reference'] = {}, {}, {}
    for mode, sec in r['seconds_per_step'].items():
      r['clips_per_s'][mode] = _BATCH.value / sec
      r['frames_per_s'][mode] = frames / sec
      ref = reference['seconds_per_step'][mode] if reference else float('nan')
      r['ratio_vs_reference'][mode] = ref / sec
      print(f'| {r["onednn"]} | {r["jit"]} | {mode} | {sec:.2f} | {_BATCH.value / sec:.3f} | '
            f'{frames / sec:.1f} | {ref / sec:.2f}x |')
  device = rows[0].get('device', 'cpu') if rows else 'cpu'
  output = _OUTPUT.value or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         'benchmarks', f'model_{device}.json')
  record = {'machine': {'cores': os.cpu_count(), 'processor': platform.processor() or platform.machine(),
                        'platform': platform.platform()},
            'input': {'batch': _BATCH.value, 'frames': _FRAMES.value, 'size': _SIZE.value},
            'reference': 'oneDNN off, no XLA jit, same run', 'results': rows}
  atomic_write_json(output, record)
  print(f'Wrote {output}')


if __name__ == '__main__':
  app.run(main)
