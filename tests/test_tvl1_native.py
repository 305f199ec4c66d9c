"""The native TV-L1 engine (`data_pipelines.flow.native`, `_tvl1_native.c`) against its specification, the XLA
program (`tf_tvl1`), and OpenCV; the engine choice of the 'tvl1_tf' backends (issue 15)."""

import json
import os
import re
import time

import numpy as np
import pytest

import data_pipelines.flow as F
from data_pipelines.flow import native

cv2 = pytest.importorskip('cv2')

SHARED_DATA = os.environ.get(
    'I3D_SHARED_DATA', os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data'))
RUBBERWHALE = os.path.join(SHARED_DATA, 'flow', 'middlebury_rubberwhale')
SOURCE = os.path.join(os.path.dirname(F.__file__), '_tvl1_native.c')
SMALL = dict(nscales=3, warps=2)  # 3 levels of 48x64: compiles in seconds


def _pair(h=48, w=64, shift=(1.3, -0.6), gain=0.0):
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

  def texture(x, y):
    return (128 + 40 * np.sin(0.31 * x + 0.17 * y) + 30 * np.cos(0.23 * x - 0.29 * y + 1.0)
            + 20 * np.sin(0.077 * x + 0.41 * y + 2.0) + 15 * np.cos(0.53 * x + 0.07 * y))

  a = texture(xx, yy)
  b = texture(xx - shift[0], yy - shift[1]) + gain
  return a.astype(np.float32), b.astype(np.float32)


def _clip(n, size=(340, 256)):
  cap = cv2.VideoCapture(os.path.join(SHARED_DATA, 'videos', 'arm_wrestling_kinetics.mp4'))
  frames = []
  while len(frames) < n:
    ok, frame = cap.read()
    assert ok
    frames.append(cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY))
  return np.stack(frames)


def test_the_kernel_is_built_here():
  """The install (setup.py's optional extension) built it: the tests below run it, they are not skipped."""
  assert native.available(), native.why_unavailable()
  assert native.why_unavailable() is None


def test_the_median_networks_in_c_are_params_selection_network():
  text = open(SOURCE, encoding='utf-8').read()
  for m in (9, 25):
    block = re.search(rf'#define MEDIAN{m} \\\n(.*?)(?:\n#define|\n// END)', text, re.S).group(1)
    ops = re.findall(r'([SLH])\((\d+), (\d+)\)', block)
    want = [('S' if lo and hi else 'L' if lo else 'H', str(i), str(j))
            for i, j, lo, hi in F.params.selection_network(m, m // 2)]
    assert ops == want and len(ops) == {9: 24, 25: 113}[m]


@pytest.mark.parametrize('params, bound', [
    (dict(SMALL, early_stopping=False, outer_iterations=2, inner_iterations=10), 2e-4),  # fixed budget
    (dict(SMALL, early_stopping=False, outer_iterations=2, inner_iterations=10, gamma=0.3), 2e-4),  # u3
    (dict(SMALL, early_stopping=False, outer_iterations=2, inner_iterations=10, interpolation='bilinear',
          border='replicate', median_filtering=3), 2e-4),
    (dict(SMALL, early_stopping=False, outer_iterations=2, inner_iterations=10, median_filtering=1), 2e-4),
    (dict(SMALL), 2e-3),  # OpenCV's early stopping
])
def test_native_computes_what_the_xla_program_computes(params, bound):
  """Every option, on a textured pair moved by (1.3, -0.6) px: the same flow up to float rounding (the
  kernel's sums and fused multiply-adds are not XLA's), the same iteration count with a fixed budget."""
  gain = 6.0 if params.get('gamma') else 0.0
  a, b = _pair(gain=gain)
  want, want_count = F.tvl1(a[None], b[None], return_iterations=True, **params)
  got, count = native.tvl1(a, b, return_iterations=True, **params)
  diff = np.abs(got - want.numpy()[0])
  assert got.shape == (48, 64, 2) and got.dtype == np.float32
  assert diff.mean() < bound and diff.max() < 50 * bound, (diff.mean(), diff.max())
  if params.get('early_stopping', True):
    assert abs(count - float(want_count)) <= 0.02 * float(want_count)
  else:
    assert count == float(want_count) == 3 * 2 * 2 * 10
  inner = got[8:-8, 8:-8]
  if not gain:  # the motion, away from the border (with the brightness change this budget is too short)
    assert abs(inner[..., 0].mean() - 1.3) < 0.05 and abs(inner[..., 1].mean() + 0.6) < 0.05


def test_initial_flow_and_single_pair_api():
  a, b = _pair()
  init = np.zeros((48, 64, 2), np.float32)
  init[..., 0] = 1.0
  params = dict(SMALL, early_stopping=False, outer_iterations=1, inner_iterations=5, use_initial_flow=True)
  want = F.tvl1(a[None], b[None], init[None], **params).numpy()[0]
  got = native.tvl1(a, b, init, **params)
  assert np.abs(got - want).mean() < 2e-4
  assert np.abs(got - native.tvl1(a, b, **dict(params, use_initial_flow=False))).mean() > 1e-3  # it was used
  np.testing.assert_array_equal(native.tvl1(a.astype(np.uint8), b.astype(np.uint8), **SMALL),
                                native.tvl1(a.astype(np.uint8).astype(np.float32),
                                            b.astype(np.uint8).astype(np.float32), **SMALL))


@pytest.mark.slow
def test_real_clip_pairs_close_to_the_xla_program_and_as_far_from_opencv():
  """Fast motion (arm wrestling, 256x340, OpenCV's defaults): per pair within 0.02 px (mean) of the XLA
  program, the same iterations within 2%, and no farther from OpenCV's flow than the XLA program is."""
  gray = _clip(5)
  got = native.tvl1_video(gray)
  want = F.tvl1_video(gray)
  ref = F.tvl1_opencv(gray)
  for i in range(4):
    diff = np.linalg.norm(got[i] - want[i], axis=-1).mean()
    to_cv = np.linalg.norm(got[i] - ref[i], axis=-1).mean()
    xla_to_cv = np.linalg.norm(want[i] - ref[i], axis=-1).mean()
    print(f'pair {i}: |native - xla| {diff:.4f} px, to OpenCV {to_cv:.4f} (xla {xla_to_cv:.4f})')
    assert diff < 0.02
    assert to_cv < xla_to_cv + 0.01
  assert np.abs(got).max() > 3.0  # it moves


@pytest.mark.slow
def test_rubberwhale_epe_within_5_percent_of_opencv():
  a = cv2.imread(os.path.join(RUBBERWHALE, 'frame10.png'), cv2.IMREAD_GRAYSCALE)
  b = cv2.imread(os.path.join(RUBBERWHALE, 'frame11.png'), cv2.IMREAD_GRAYSCALE)
  gt = F.read_flo(os.path.join(RUBBERWHALE, 'flow10.flo'))
  ref = cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)
  ours = native.tvl1(a, b)
  epe_cv, epe = F.endpoint_error(ref, gt), F.endpoint_error(ours, gt)
  print(f'RubberWhale EPE native {epe:.4f} opencv {epe_cv:.4f}')
  assert epe <= 1.05 * epe_cv and 0.1 < epe_cv < 0.25
  assert np.mean(np.linalg.norm(ours - ref, axis=-1)) < 0.05


def test_tvl1_video_is_its_pairs_whatever_the_threads():
  gray = _clip(4, size=(64, 48))
  one = native.tvl1_video(gray, concurrent_calls=1, **SMALL)
  np.testing.assert_array_equal(native.tvl1_video(gray, concurrent_calls=3, **SMALL), one)
  np.testing.assert_array_equal(one[1], native.tvl1(gray[1], gray[2], **SMALL))
  assert native.tvl1_video(gray[:1]).shape == (0, 48, 64, 2)
  assert native.default_threads() == len(os.sched_getaffinity(0))
  native.set_num_threads(1)  # what a conversion worker sets (data_pipelines.conversion._worker_init)
  try:
    assert native.default_threads() == 1
    np.testing.assert_array_equal(native.tvl1_video(gray, **SMALL), one)
    with pytest.raises(ValueError, match=r'threads must be an integer >= 1 \(or None\). Received: threads=0'):
      native.set_num_threads(0)
  finally:
    native.set_num_threads(None)
  assert native.default_threads() == len(os.sched_getaffinity(0))


def test_bad_input_is_refused_with_the_reason():
  with pytest.raises(ValueError, match=r'gray_frames must be \[N, H, W\] with H, W >= 3'):
    native.tvl1_video(np.zeros((3, 2, 20), np.uint8))
  with pytest.raises(ValueError, match='concurrent_calls must be an integer >= 1. Received: concurrent_calls=0'):
    native.tvl1_video(np.zeros((3, 20, 20), np.uint8), concurrent_calls=0)
  with pytest.raises(ValueError, match='concurrent_calls must be an integer >= 1. Received: concurrent_calls=True'):
    native.tvl1_video(np.zeros((3, 20, 20), np.uint8), concurrent_calls=True)
  assert native.tvl1_video(np.zeros((3, 20, 20), np.uint8), concurrent_calls=np.int64(2)).shape == (2, 20, 20, 2)
  with pytest.raises(ValueError, match='use_initial_flow needs an initial flow'):
    native.tvl1_video(np.zeros((3, 20, 20), np.uint8), use_initial_flow=True)
  with pytest.raises(ValueError, match='Unknown TV-L1 parameters'):
    native.tvl1_video(np.zeros((3, 20, 20), np.uint8), wraps=3)
  with pytest.raises(ValueError, match='of one shape, at least 3x3'):
    native.tvl1(np.zeros((20, 20)), np.zeros((20, 21)))
  with pytest.raises(ValueError, match=r'initial_flow must be \[H, W, 2\]'):
    native.tvl1(np.zeros((20, 20)), np.zeros((20, 20)), np.zeros((20, 20)), use_initial_flow=True)
  # The kernel checks what it relies on too (a 7x7 median has no network there), whoever calls it.
  a = np.zeros((20, 20), np.float32)
  sizes = np.asarray(F.pyramid_sizes(20, 20, 1, 0.8), np.int32)
  with pytest.raises(ValueError, match=r'the kernel refused its arguments \(status 2\) for a 20x20 pair'):
    native._solve(native._kernel(), a, a, F.TVL1Params(median_filtering=7, nscales=1), None, sizes)
  assert native._solve(native._kernel(), a, a, F.TVL1Params(nscales=1), None, sizes)[0].shape == (20, 20, 2)


def test_the_backends_engine():
  """'tvl1_tf' runs the native kernel on a CPU (no GPU here in CI), the XLA program on request or with an XLA
  option; a bad or unavailable engine is refused before any flow is computed."""
  gray = _clip(3, size=(64, 48))
  gpu = F.backends._gpu_present()
  assert F.tvl1_engine() == ('xla' if gpu else 'native')
  assert F.tvl1_engine('xla') == 'xla' and F.tvl1_engine('auto', jit_compile=True) == 'xla'
  if not gpu:
    np.testing.assert_array_equal(F.get_flow_backend('tvl1_tf', **SMALL)(gray), native.tvl1_video(gray, **SMALL))
    assert F.prepare_flow_backend('tvl1_tf', 48, 64, **SMALL) is False  # nothing to compile
  np.testing.assert_array_equal(F.get_flow_backend('tvl1_tf', engine='xla', **SMALL)(gray),
                                F.tvl1_video(gray, **SMALL))
  fast = F.get_flow_backend('tvl1_tf_fast', engine='native', nscales=2)(gray)
  np.testing.assert_array_equal(fast, native.tvl1_video(gray, **dict(F.FAST_BUDGET, nscales=2)))
  with pytest.raises(ValueError, match=r"engine must be one of \['auto', 'native', 'xla'\]. Received: engine='gpu'"):
    F.check_flow_params('tvl1_tf', {'engine': 'gpu'})
  with pytest.raises(ValueError, match='jit_compile is an option of the XLA engine'):
    F.tvl1_engine('native', jit_compile=True)
  F.check_flow_params('tvl1_tf', {'engine': 'native', 'warps': 3})
  assert F.parse_flow_params('engine=xla,warps=3') == (('engine', 'xla'), ('warps', 3))
  # jit_compile is a Python-API option: on the command line it is an unknown parameter, whatever the engine.
  with pytest.raises(ValueError, match=r"Unknown TV-L1 parameters \['jit_compile'\]"):
    F.check_flow_params('tvl1_tf', {'engine': 'native', 'jit_compile': True})
  with pytest.raises(ValueError, match=r"engine chooses how our TV-L1 runs \(--flow=tvl1_tf or tvl1_tf_fast"):
    F.check_flow_params('tvl1', {'engine': 'native'})
  # What runs is recorded with the outputs; the resume keys leave the engine out (the same algorithm).
  assert F.flow_engine('tvl1_tf', {'engine': 'xla'}) == 'xla' and F.flow_engine('tvl1', {}) is None
  assert F.flow_engine('tvl1_tf_fast', (('engine', 'native'),)) == 'native'
  assert F.without_engine((('engine', 'xla'), ('warps', 3))) == (('warps', 3),)


def test_an_unavailable_kernel_says_why_and_auto_falls_back(monkeypatch, capsys):
  monkeypatch.setattr(native, '_LIB', {'error': 'the C kernel data_pipelines/flow/_tvl1_native.c was not built'})
  monkeypatch.setattr(F.backends, '_FELL_BACK', [])
  monkeypatch.setattr(F.backends, '_gpu_present', lambda: False)
  assert not native.available()
  assert F.tvl1_engine() == 'xla' and F.tvl1_engine() == 'xla'
  assert capsys.readouterr().err == ('tvl1_tf: the XLA engine, not the native one (the C kernel '
                                     'data_pipelines/flow/_tvl1_native.c was not built)\n')  # once
  with pytest.raises(ValueError, match='engine=native: the C kernel data_pipelines/flow/_tvl1_native.c was not built'):
    F.check_flow_params('tvl1_tf', {'engine': 'native'})
  with pytest.raises(RuntimeError, match='TV-L1 native engine unavailable: the C kernel'):
    native.tvl1_video(np.zeros((3, 20, 20), np.uint8))


def test_the_engine_is_recorded_with_the_outputs_and_left_out_of_their_keys(tmp_path):
  """extract_features and prepare_data record the engine that ran (`flow_engine`); a rerun naming another
  engine finds the outputs done, not stale: both engines compute the same algorithm."""
  from data_pipelines import conversion
  from data_pipelines.testing import write_video
  from i3d_tf import features
  video = write_video(str(tmp_path / 'v.avi'), 9)
  options = features.ExtractionOptions(flow_backend='tvl1_tf', flow_params=(('nscales', 2), ('warps', 1)),
                                       stack_size=8, step_size=8, crop_size=32, resize_short_side=48, flow_margin=-1)
  xla = features.ExtractionOptions(**dict(vars(options), flow_params=options.flow_params + (('engine', 'xla'),)))
  assert features.run_key(options, {'flow': 'w'}) == features.run_key(xla, {'flow': 'w'})
  extractor = features.load_extractor({'flow': None}, allow_random_weights=True)
  out = str(tmp_path / 'features')
  first = features.extract_features([video], str(tmp_path), out, extractor, options, progress=False)
  assert first['done'] == 1 and not first['failed']
  meta = features.output_paths(out, features.video_id(video, str(tmp_path)), ())['meta']
  assert json.load(open(meta))['flow_engine'] == F.tvl1_engine()
  again = features.extract_features([video], str(tmp_path), out, extractor, xla, progress=False)
  assert again['skipped'] == 1 and again['done'] == 0 and not again['failed']
  conv = conversion.ConversionOptions(flow='tvl1_tf', flow_params=(('engine', 'native'), ('warps', 3)))
  assert conversion._options_dict(conv)['flow_params'] == {'warps': 3}


def test_the_first_videos_are_read_while_the_networks_load_with_the_same_outputs(tmp_path, monkeypatch):
  """extract_features' start-up overlap with the native engine (`features.prefetch_videos`): the videos with work
  are read (decoded, flow computed) in threads, the first two before the networks take any; extract_features goes
  on with those readers, and the outputs are bitwise those of a plain run."""
  import threading
  from data_pipelines.testing import write_video
  from i3d_tf import features
  videos = tmp_path / 'videos'
  videos.mkdir()
  paths = [write_video(str(videos / f'{n}.avi'), 11, step=s) for n, s in (('a', 2), ('b', 3))]
  (videos / 'c.mp4').write_bytes(b'not a video')
  paths.append(str(videos / 'c.mp4'))
  options = features.ExtractionOptions(flow_backend='tvl1_tf', flow_params=(('nscales', 2), ('warps', 1)),
                                       stack_size=10, step_size=4, crop_size=32, resize_short_side=48, flow_margin=-1)
  streams = ('rgb', 'flow')
  # Nothing to read ahead without a flow stream, with OpenCV's backend or the XLA engine.
  assert features.prefetch_videos(paths, str(videos), str(tmp_path / 'x'), options, ('rgb',)) is None
  opencv = features.ExtractionOptions(**dict(vars(options), flow_backend='tvl1', flow_params=()))
  assert features.prefetch_videos(paths, str(videos), str(tmp_path / 'x'), opencv, streams) is None
  xla = features.ExtractionOptions(**dict(vars(options), flow_params=options.flow_params + (('engine', 'xla'),)))
  assert features.prefetch_videos(paths, str(videos), str(tmp_path / 'x'), xla, streams) is None
  assert not features._PREFETCH
  extractor = features.load_extractor({'rgb': None, 'flow': None}, allow_random_weights=True)
  plain, ahead = str(tmp_path / 'plain'), str(tmp_path / 'ahead')
  features.extract_features(paths, str(videos), plain, extractor, options, progress=False)
  assert features.prefetch_videos(paths, str(videos), ahead, options, streams) == paths
  reading = features._PREFETCH['videos']
  while not (len(reading._started) == 2 and reading._started[1].finished.is_set()):
    time.sleep(0.01)  # a and b read (one window each: the readers hold it); c waits for the networks to take a
  time.sleep(0.2)
  assert len(reading._started) == 2
  made = []
  init = features._ReadAhead.__init__
  monkeypatch.setattr(features._ReadAhead, '__init__', lambda self, *a: made.append(a) or init(self, *a))
  summary = features.extract_features(paths, str(videos), ahead, extractor, options, progress=False)
  assert summary['done'] == 2 and list(summary['failed']) == [paths[2]] and not features._PREFETCH
  assert not made  # the readers started before were used
  for name in ('a.avi_rgb.npy', 'a.avi_flow.npy', 'b.avi_flow.npy', 'a.avi_timestamps.npy'):
    np.testing.assert_array_equal(np.load(os.path.join(ahead, name)), np.load(os.path.join(plain, name)))
  # Videos with outputs are passed over; other streams than the run's: the readers are stopped, the run reads
  # again.
  assert features.prefetch_videos(paths, str(videos), ahead, options, streams) == paths[2:]
  other = str(tmp_path / 'other')
  assert features.prefetch_videos(paths, str(videos), other, options, ('flow',)) == paths
  stale, before = features._PREFETCH['videos'], len(made)
  summary = features.extract_features(paths[:1], str(videos), other, extractor, options, progress=False)
  assert summary['done'] == 1 and not features._PREFETCH and len(made) == before + 1
  for thread in threading.enumerate():
    if thread.name.startswith('features '):
      thread.join(5)
      assert not thread.is_alive(), thread.name
  assert all(r.finished.is_set() for r in stale._started)
  np.testing.assert_array_equal(np.load(os.path.join(other, 'a.avi_flow.npy')),
                                np.load(os.path.join(plain, 'a.avi_flow.npy')))
