"""TV-L1 prepared in the background (`prepare_tvl1`, `prepare_flow_backend`, `features.prepare_flow`,
`classification.prepare_flow` and the classify binary; issue 15)."""

import dataclasses
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from data_pipelines import flow as flow_lib
from i3d_tf import features as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(nscales=2, warps=1, outer_iterations=2)  # compiles in about a second
XLA_SMALL = dict(SMALL, engine='xla')  # the backends' XLA engine (on a CPU their default is the native kernel)

# One process: prepare (or not), a line of its own on stderr while the compilation runs, then the video's flow.
SCRIPT = r'''
import hashlib, os, sys, time
from i3d_tf import cli; cli.quiet_start([sys.argv[0]])
import numpy as np
from data_pipelines.flow import tf_tvl1
params = dict(nscales=2, warps=1, outer_iterations=2, batch_size=1)  # batch 1 on a GPU too
if sys.argv[1] == 'prepare':
  assert tf_tvl1.prepare_tvl1(32, 40, **params) is True
  assert tf_tvl1.prepare_tvl1(32, 40, **params) is False  # started already: nothing more
  os.write(2, b'a line of the program while TV-L1 compiles\n')
frames = np.random.default_rng(0).integers(0, 255, (4, 32, 40)).astype(np.uint8)
flow = tf_tvl1.tvl1_video(frames, **params)
assert tf_tvl1.prepare_tvl1(32, 40, **params) is False  # prepared
params.pop('batch_size')
print(flow.shape, hashlib.sha256(flow.tobytes()).hexdigest(),
      tf_tvl1._compiled(tf_tvl1.make_params(**params), True).experimental_get_tracing_count())
'''


def _run(mode, home):
  env = dict(os.environ, PYTHONPATH=ROOT, I3D_TF_HOME=str(home))
  env.pop('TF_XLA_FLAGS', None)
  proc = subprocess.run([sys.executable, '-c', SCRIPT, mode], capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout.strip(), proc.stderr, [l for l in proc.stderr.splitlines() if l.startswith('tvl1_tf:')]


def test_a_background_preparation_gives_the_same_flow_and_compiles_once(tmp_path):
  plain, _, plain_lines = _run('plain', tmp_path / 'plain')
  out, err, lines = _run('prepare', tmp_path / 'prepared')
  # The same flow, bit for bit, from one trace (the first tvl1_video call waited instead of compiling again).
  assert out == plain and out.startswith('(3, 32, 40, 2) ') and out.endswith(' 1'), (out, plain)
  assert len(plain_lines) == 2 and 'tracing and compiling' in plain_lines[0]
  assert len(lines) == 2, err[-3000:]
  assert lines[0] == ('tvl1_tf: tracing TV-L1 for 1 pair(s) of 32x40, then compiling it (XLA; or loading it from '
                      'its cache) in the background (once per frame size, parameters and process) ...')
  assert lines[1].startswith('tvl1_tf: 32x40 ready in ') and lines[1].endswith(' s (prepared in the background)')
  # The program's own stderr passes the filter; XLA's information lines do not.
  assert 'a line of the program while TV-L1 compiles' in err
  assert not [l for l in err.splitlines() if l.startswith('I0000')], err[-3000:]
  # A second process loads the program from XLA's cache, in the background too, without the loader's
  # warnings about the compiling machine's tuning flags (filtered in that thread).
  again, err, lines = _run('prepare', tmp_path / 'prepared')
  assert again == out and len(lines) == 2 and 'ready in' in lines[1], err[-3000:]
  assert 'prefer-no-' not in err and 'SIGILL' not in err and 'XlaSerializedCacheEntry' not in err, err[-3000:]
  assert 'a line of the program while TV-L1 compiles' in err


def test_the_stderr_filter_forwards_lines_as_they_come_and_drops_xlas(tmp_path):
  """While a (background) preparation runs, the rest of the program's stderr is not held back."""
  from data_pipelines.flow import tf_tvl1
  target = tmp_path / 'stderr.txt'
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(target, 'wb') as f:
      os.dup2(f.fileno(), 2)
    with tf_tvl1._benign_stderr_dropped():
      with tf_tvl1._benign_stderr_dropped():  # a second block (another thread) shares the filter
        os.write(2, b'I0000 00:00:1 1 device_compiler.h:188] Compiled cluster using XLA!  This line is logged '
                    b'at most once for the lifetime of the process.\nthe program speaks\n')
        for _ in range(100):  # forwarded within the block, not at its end
          if b'the program speaks' in target.read_bytes():
            break
          time.sleep(0.02)
        assert target.read_bytes() == b'the program speaks\n'
      os.write(2, b'still filtered\n')
    os.write(2, b'after\n')
  finally:
    os.dup2(saved, 2)
    os.close(saved)
  assert target.read_bytes() == b'the program speaks\nstill filtered\nafter\n'
  assert not tf_tvl1._FILTER


def test_bad_sizes_and_parameters_are_refused_before_anything_starts():
  from data_pipelines.flow import tf_tvl1
  with pytest.raises(ValueError, match='at least 3x3'):
    tf_tvl1.prepare_tvl1(2, 40)
  with pytest.raises(ValueError, match='batch_size must be >= 1'):
    tf_tvl1.prepare_tvl1(32, 40, batch_size=0)
  with pytest.raises(ValueError, match='Unknown TV-L1 parameters'):
    tf_tvl1.prepare_tvl1(32, 40, wraps=3)
  with pytest.raises(ValueError, match='without an initial flow'):
    tf_tvl1.prepare_tvl1(32, 40, use_initial_flow=True)
  assert not tf_tvl1._PENDING


def test_prepare_flow_picks_the_first_video_with_work_and_its_window(shared_data, tmp_path):
  from data_pipelines.flow import tf_tvl1
  videos = os.path.join(shared_data, 'videos')
  paths = [os.path.join(videos, n) for n in ('flipping_pancake.mkv', 'v_ApplyEyeMakeup_g01_c01.avi')]
  out = tmp_path / 'features'
  options = F.ExtractionOptions(flow_backend='tvl1_tf', flow_params=tuple(sorted(XLA_SMALL.items())), crop_size=40,
                                resize_short_side=48, flow_margin=8)
  # OpenCV has nothing to prepare; nor has a folder where every video has its outputs.
  assert F.prepare_flow(paths, videos, str(out), F.ExtractionOptions()) is None
  for path in paths:
    meta = F.output_paths(str(out), F.video_id(path, videos), ())['meta']
    os.makedirs(os.path.dirname(meta), exist_ok=True)
    open(meta, 'w').close()
  assert F.prepare_flow(paths, videos, str(out), options) is None and not tf_tvl1._PENDING
  # The pancake clip has its outputs: the next video (240x320 -> 48x64) is prepared, its 40 px crop plus
  # 8 px each side within the frame (48x56), padded to multiples of 32: 64x64.
  os.remove(F.output_paths(str(out), F.video_id(paths[1], videos), ())['meta'])
  assert F.prepare_flow(paths, videos, str(out), options) == (64, 64)
  # The native engine compiles nothing: nothing to prepare (its default on a CPU where the kernel is built).
  native = dataclasses.replace(options, flow_params=tuple(sorted(dict(SMALL, engine='native').items())))
  if flow_lib.native.available():
    assert F.prepare_flow(paths, videos, str(out), native) is None
  batch = tf_tvl1.default_batch_size()  # what extract_features' calls will use (1 on CPU, 8 on a GPU)
  key = (tf_tvl1.make_params(**SMALL), True, (batch, 64, 64), False)
  assert key in tf_tvl1._PENDING or key in tf_tvl1._PREPARED
  flow = tf_tvl1.tvl1_video(np.zeros((batch + 1, 64, 64), np.uint8), **SMALL)  # waits for it
  assert flow.shape == (batch, 64, 64, 2) and key in tf_tvl1._PREPARED and key not in tf_tvl1._PENDING
  # Files that cannot be opened are passed over (extract_features reports them); with overwrite the first
  # readable video counts, outputs or not (a stale one is recomputed).
  broken = tmp_path / 'broken.mp4'
  broken.write_bytes(b'not a video')
  whole = dataclasses.replace(options, flow_margin=-1)  # the whole frame: 48x85 (pancake), 48x64 (make-up)
  assert F.prepare_flow([str(broken)], str(tmp_path), str(out), whole) is None
  assert F.prepare_flow([str(broken)] + paths, videos, str(out), whole) == (48, 64)
  assert F.prepare_flow([str(broken)] + paths, videos, str(out), whole, overwrite=True) == (48, 85)
  for shape in ((48, 64), (48, 85)):
    key = (tf_tvl1.make_params(**SMALL), True, (batch,) + shape, False)
    assert key in tf_tvl1._PENDING or key in tf_tvl1._PREPARED
    tf_tvl1.tvl1_video(np.zeros((batch + 1,) + shape, np.uint8), **SMALL)  # nothing left running


# The binary's way out while TV-L1 still compiles in the background: at once, its message not lost.
EARLY_END = r'''
import sys, time
from i3d_tf import cli
cli.quiet_start([sys.argv[0]])
from data_pipelines.flow import tf_tvl1

def main(argv):
  tf_tvl1.prepare_tvl1(64, 64)  # OpenCV's parameters: 5 levels, about 10 s to compile
  time.sleep(1)
  print('stdout survives')
  if argv[1] == 'error':
    raise cli.UsageError('a bad flag, found while TV-L1 compiles')
  if argv[1] == 'return':  # a loop that caught Ctrl-C itself (classify, extract_features) and returns
    print('main: interrupted after 0 of 3 video(s)', file=sys.stderr)
    return 130
  raise KeyboardInterrupt

cli.run(main)
'''


@pytest.mark.parametrize('how, status, line', [('error', 2, 'a bad flag, found while TV-L1 compiles'),
                                               ('interrupt', 130, 'interrupted'),
                                               ('return', 130, 'interrupted after 0 of 3 video(s)')])
def test_an_early_end_does_not_wait_for_the_background_compilation(tmp_path, how, status, line):
  env = dict(os.environ, PYTHONPATH=ROOT, I3D_TF_HOME=str(tmp_path))  # an empty XLA cache: it compiles
  env.pop('TF_XLA_FLAGS', None)
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, '-c', EARLY_END, how], capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == status, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1].endswith(line), proc.stderr[-3000:]
  assert proc.stdout == 'stdout survives\n'
  assert 'ready in' not in proc.stderr, proc.stderr[-3000:]  # it did not wait for the compilation
  print(f'{how}: {time.perf_counter() - start:.1f} s')


@pytest.mark.slow
def test_classify_prepares_the_flow_of_its_first_video_while_the_networks_load(tmp_path):
  """classify.py with a flow stream and tvl1_tf: TV-L1 is traced before the networks are built and compiled
  behind them; the predictions are those of the library's own classifier."""
  import json
  import i3d_tf
  from data_pipelines.testing import write_video
  from data_pipelines.flow import tf_tvl1
  from i3d_tf import classification as C
  video = write_video(str(tmp_path / 'v.avi'), 10)  # 48x64: 256x341 at the test resize
  checkpoints = {}
  for stream in ('rgb', 'flow'):
    checkpoints[stream] = str(tmp_path / f'{stream}.weights.h5')
    i3d_tf.build_model(f'i3d_{stream}', 4).save_weights(checkpoints[stream])
  small = ','.join(f'{k}={v}' for k, v in XLA_SMALL.items())
  env = dict(os.environ, PYTHONPATH=ROOT, I3D_TF_HOME=str(tmp_path / 'home'))
  env.pop('TF_XLA_FLAGS', None)
  out = tmp_path / 'predictions.json'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'classify.py'), f'--videos={video}',
                         '--model=two_stream_i3d', f'--rgb_checkpoint={checkpoints["rgb"]}',
                         f'--flow_checkpoint={checkpoints["flow"]}', '--flow_backend=tvl1_tf',
                         f'--flow_params={small}', '--flow_margin=-1', '--max_frames=9', '--precision=float32',
                         f'--output={out}'], capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith('tvl1_tf:')]
  assert len(lines) == 2, proc.stderr[-3000:]
  # 9 frames: one call of 8 pairs on a GPU (its default batch), 8 calls of 1 on a CPU; the prepared batch.
  assert lines[0].startswith(f'tvl1_tf: tracing TV-L1 for {tf_tvl1.default_batch_size()} pair(s) of 256x341, then '
                             'compiling it')
  assert lines[1].startswith('tvl1_tf: 256x341 ready in ') and lines[1].endswith(' s (prepared in the background)')
  row = json.loads(out.read_text())['videos'][0]
  clf = C.build_classifier('two_stream_i3d', rgb_checkpoint=checkpoints['rgb'], flow_checkpoint=checkpoints['flow'],
                           flow_backend='tvl1_tf', flow_params=tuple(XLA_SMALL.items()), flow_margin=-1, max_frames=9)
  expected = clf.classify(video)
  assert row['num_frames'] == 9 and row['top_k'][0]['index'] == int(np.argmax(expected.probabilities))
  np.testing.assert_allclose([c['probability'] for c in row['top_k']],
                             np.sort(expected.probabilities)[::-1][:len(row['top_k'])], atol=1e-5)
  # A checkpoint that is not there is refused before anything is traced or built.
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'classify.py'), f'--videos={video}',
                         '--model=two_stream_i3d', f'--rgb_checkpoint={checkpoints["rgb"]}',
                         f'--flow_checkpoint={tmp_path / "missing.weights.h5"}', '--flow_backend=tvl1_tf'],
                        capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == 2 and 'tvl1_tf:' not in proc.stderr, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      f'classify: cannot load the model: No weights file at {tmp_path / "missing.weights.h5"}: check the path (a '
      '.weights.h5 or .keras file, a training model_dir or a checkpoint prefix)')
  with pytest.raises(FileNotFoundError, match='No weights file at'):
    C.weight_sources('i3d_flow', checkpoint=str(tmp_path / 'missing.weights.h5'))
  assert C.weight_sources('two_stream_i3d', None, None, checkpoints['rgb'], checkpoints['flow']) == checkpoints
  assert C.weight_sources('i3d_rgb') == {'rgb': 'kinetics400'}
  # Nothing to prepare: a model without a flow stream, OpenCV's backend; an unknown model is refused.
  assert C.prepare_flow('i3d_rgb', [video], 'tvl1_tf') is None
  assert C.prepare_flow('two_stream_i3d', [video], 'tvl1') is None
  with pytest.raises(ValueError, match='classification supports'):
    C.prepare_flow('i3d_unknown', [video], 'tvl1_tf')
