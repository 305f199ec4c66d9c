"""Feature extraction: windows, pipeline-consistent inputs, the binary on a real shared clip (skip, failures)."""

import functools
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import i3d_tf
from i3d_tf import features as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
BINARY = os.path.join(ROOT, 'experiments', 'extract_features.py')


def test_window_starts():
  assert F.window_starts(10, 4, 4) == [(0, 4), (4, 4)]
  assert F.window_starts(12, 4, 4) == [(0, 4), (4, 4), (8, 4)]
  assert F.window_starts(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
  assert F.window_starts(3, 64, 64) == [(0, 3)]  # short video: one window of everything
  assert F.window_starts(0, 64, 64) == []


def test_video_id_and_find(tmp_path):
  (tmp_path / 'a' / 'b').mkdir(parents=True)
  for p in ('a/b/x.mp4', 'a/y.AVI', 'a/notes.txt'):
    (tmp_path / p).write_bytes(b'')
  from data_pipelines.video import find_videos
  found = find_videos(str(tmp_path))
  assert [os.path.relpath(p, tmp_path) for p in found.paths] == ['a/b/x.mp4', 'a/y.AVI']
  assert [os.path.relpath(p, tmp_path) for p in found.skipped] == ['a/notes.txt']
  assert F.video_id(found.paths[0], found.root) == 'a/b/x.mp4'  # extension and folders kept: unique


def test_inputs_and_features_match_the_data_pipeline():
  """Crops / scaling equal the eval pipeline's; per-window features equal the export's feature model."""
  from data_pipelines.flow import compute_flow, tvl1_opencv
  from data_pipelines.input_pipeline import eval_input_from_numpy
  from i3d_tf.export import feature_model
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (11, 40, 52, 3), dtype=np.uint8)
  # flow_margin=-1: whole-frame flow, exactly the records' (the default window is tested on its own below).
  opts = F.ExtractionOptions(stack_size=4, step_size=3, crop_size=32, resize_short_side=40, batch_size=2,
                             flow_margin=-1)
  flow_q = compute_flow(frames)
  inputs = F.stream_inputs(frames, ('rgb', 'flow'), opts, flow_fn=lambda f: flow_q)
  assert inputs['rgb'].shape == (10, 32, 32, 3) and inputs['flow'].shape == (10, 32, 32, 2)
  two = eval_input_from_numpy(frames, 'two_stream_i3d', flow=flow_q, crop_size=32)
  np.testing.assert_allclose(inputs['rgb'], two['rgb'].numpy()[0], atol=1e-6)
  np.testing.assert_allclose(inputs['flow'], two['flow'].numpy()[0], atol=1e-6)
  # flow_params reach the backend: the options' TV-L1 parameters give the pipeline's flow for them.
  params = (('warps', 1), ('nscales', 2))
  custom = F.stream_inputs(frames, ('flow',), F.ExtractionOptions(
      stack_size=4, step_size=3, crop_size=32, resize_short_side=40, flow_params=params, flow_margin=-1))['flow']
  expected_q = compute_flow(frames, functools.partial(tvl1_opencv, warps=1, nscales=2))
  from data_pipelines.preprocessing import center_crop
  np.testing.assert_array_equal(custom, center_crop(expected_q, 32).astype(np.float32) / 127.5 - 1.0)
  assert np.abs(custom - inputs['flow']).max() > 0.01  # not the default parameters' flow

  model = i3d_tf.build_model('i3d_rgb', 5)
  extractor = F.FeatureExtractor({'rgb': model})
  windows = F.window_starts(10, opts.stack_size, opts.step_size)
  assert windows == [(0, 4), (3, 4), (6, 4)]
  feats = extractor.window_features('rgb', inputs['rgb'], windows, batch_size=2)
  assert feats.shape == (3, 1024) and feats.dtype == np.float32
  fm = feature_model(model)
  expected = fm(inputs['rgb'][3:7][None], training=False).numpy().mean(axis=1)[0]
  np.testing.assert_allclose(feats[1], expected, atol=1e-5)


def test_binary_on_a_real_clip(shared_data, tmp_path):
  videos = tmp_path / 'videos'
  (videos / 'cls').mkdir(parents=True)
  shutil.copy(os.path.join(shared_data, 'videos', 'v_ApplyEyeMakeup_g01_c01.avi'), videos / 'cls' / 'clip.avi')
  (videos / 'broken.mp4').write_bytes(b'not a video at all')
  ckpt = str(tmp_path / 'rgb.weights.h5')
  i3d_tf.build_model('i3d_rgb', 7).save_weights(ckpt)
  out = tmp_path / 'features'
  args = [sys.executable, BINARY, f'--videos={videos}', f'--output_dir={out}', '--streams=rgb,flow',
          '--stack_size=8', '--step_size=4', '--max_frames=17', '--resize_short_side=48', '--crop_size=40',
          f'--rgb_checkpoint={ckpt}', '--num_classes=7', '--allow_random_weights', '--batch_size=2']
  proc = subprocess.run(args, capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 1, proc.stderr[-3000:]  # one failure
  assert 'FAILED' in proc.stderr and 'broken.mp4' in proc.stderr
  summary = proc.stdout.strip().splitlines()[-1]
  assert summary.startswith('features: 1 extracted, 0 already done, 1 failed of 2 video(s)'), summary
  # 17 frames -> 16 flow fields -> windows at 0, 4, 8 (of 8 frames).
  rgb = np.load(out / 'cls' / 'clip.avi_rgb.npy', allow_pickle=False)
  flow = np.load(out / 'cls' / 'clip.avi_flow.npy', allow_pickle=False)
  stamps = np.load(out / 'cls' / 'clip.avi_timestamps.npy', allow_pickle=False)
  assert rgb.shape == (3, 1024) and flow.shape == (3, 1024)
  np.testing.assert_allclose(stamps, [[0, 0.32], [0.16, 0.48], [0.32, 0.64]])
  meta = json.loads((out / 'cls' / 'clip.avi.json').read_text())
  assert meta['num_frames'] == 17 and meta['frames_used'] == 16 and meta['streams'] == ['rgb', 'flow']
  assert meta['flow_engine'] is None  # OpenCV's tvl1: no engine to record
  assert not [p for _, _, files in os.walk(out) for p in files if p.startswith('.tmp')]
  # A second run skips the finished video and retries the broken one.
  proc = subprocess.run(args, capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert 'features: 0 extracted, 1 already done, 1 failed' in proc.stdout


def test_binary_refuses_without_checkpoint(tmp_path):
  base = [f'--videos={tmp_path}', f'--output_dir={tmp_path / "o"}']
  proc = _run(base + ['--streams=flow'])
  assert proc.returncode != 0 and '--flow_checkpoint' in proc.stderr and 'allow_random_weights' in proc.stderr
  assert 'kinetics400' not in proc.stderr  # no trained flow weights install by themselves
  proc = _run(base)  # both streams (the default): RGB alone is what trained weights exist for
  assert proc.returncode == 2 and proc.stderr.strip() == (
      "extract_features: No checkpoint for stream(s) ['rgb', 'flow']: pass --rgb_checkpoint and --flow_checkpoint, "
      'or --streams=rgb --rgb_weights=kinetics400 for the trained Kinetics-400 RGB I3D alone (or '
      '--allow_random_weights, for demos and tests only: random features are noise).'), proc.stderr[-800:]
  proc = _run(base + ['--streams=rgb'])  # the trained RGB weights are named first
  assert proc.returncode == 2 and proc.stderr.strip() == (
      "extract_features: No checkpoint for stream(s) ['rgb']: pass --rgb_weights=kinetics400 (the trained "
      'Kinetics-400 RGB I3D) or --rgb_checkpoint (or --allow_random_weights, for demos and tests only: random '
      'features are noise).'), proc.stderr[-800:]
  proc = _run(base + ['--streams=flow', '--allow_random_weights', '--flow_backend=tvl1_tf', '--flow_params=gamma=-1'])
  assert proc.returncode == 2 and proc.stderr.strip() == ('extract_features: --flow_params: gamma must be >= 0 (0: no '
                                                    'illumination term). Received: gamma=-1'), proc.stderr[-800:]
  proc = _run(base + ['--streams=rgb', '--allow_random_weights', '--flow_params=warps=3'])
  assert proc.returncode == 2 and proc.stderr.strip() == (
      'extract_features: --flow_params=warps=3 given but --streams=rgb computes no flow: drop --flow_params '
      'or add the flow stream'), proc.stderr[-800:]
  proc = _run(base + ['--streams=flow', '--allow_random_weights', '--rgb_weights=kinetics400'])
  assert proc.returncode == 2 and proc.stderr.strip() == (
      'extract_features: --rgb_weights=kinetics400 given but --streams=flow computes no RGB features: drop '
      '--rgb_weights or add the rgb stream'), proc.stderr[-800:]
  proc = _run(base + ['--streams=rgb', '--allow_random_weights', '--flow_margin=7'])
  assert proc.returncode == 2 and proc.stderr.strip() == (
      'extract_features: --flow_margin=7 given but --streams=rgb computes no flow: drop --flow_margin or add the '
      'flow stream'), proc.stderr[-800:]
  # A bad flag value: one line, status 2 (absl alone: 'FATAL Flags parsing error', status 1).
  proc = _run(base + ['--flow_margin=-2'])
  assert proc.returncode == 2 and proc.stderr.strip() == (
      'extract_features: flag --flow_margin=-2: -2 is not integer >= -1 (--helpfull lists the flags)'), proc.stderr


@pytest.mark.slow
def test_binary_with_the_kinetics400_weights(shared_data, tmp_path):
  """--rgb_weights=kinetics400: real features, equal to the Kinetics model's feature model on the test crops;
  and a .weights.h5 checkpoint without --num_classes reads its class count from the file."""
  from data_pipelines import preprocessing as pp
  from data_pipelines.video import decode_video
  from i3d_tf.export import feature_model
  clip = os.path.join(shared_data, 'videos', 'arm_wrestling_kinetics.mp4')
  out = tmp_path / 'features'
  args = [sys.executable, BINARY, f'--videos={clip}', f'--output_dir={out}', '--streams=rgb',
          '--rgb_weights=kinetics400', '--max_frames=48', '--stack_size=16', '--step_size=16']
  proc = subprocess.run(args + ['--precision=float32'], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'step 16, float32) in' in proc.stdout
  feats = np.load(out / 'arm_wrestling_kinetics.mp4_rgb.npy', allow_pickle=False)
  assert feats.shape == (3, 1024)
  model = feature_model(i3d_tf.I3D('rgb', 400, weights='kinetics400'))
  x = pp.test_frames(decode_video(clip, max_frames=48).frames).reshape(3, 16, 224, 224, 3)
  np.testing.assert_allclose(feats, model(x, training=False).numpy().mean(axis=1), atol=1e-4)
  # bfloat16 features are other numbers: a rerun refuses, naming the precision; --overwrite recomputes them.
  proc = subprocess.run(args + ['--precision=bfloat16'], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 2 and "precision 'float32' -> 'bfloat16'" in proc.stderr, proc.stderr[-2000:]
  proc = subprocess.run(args + ['--precision=bfloat16', '--overwrite'], capture_output=True, text=True, env=ENV,
                        cwd=ROOT)
  assert proc.returncode == 0 and 'step 16, bfloat16) in' in proc.stdout, proc.stderr[-2000:]
  bf16 = np.load(out / 'arm_wrestling_kinetics.mp4_rgb.npy', allow_pickle=False)
  cosine = np.sum(bf16 * feats, 1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(feats, axis=1)
  assert cosine.min() > 0.999 and 0 < np.abs(bf16 - feats).max() < 0.05  # measured: 0.9999, 0.019

  ckpt = str(tmp_path / 'rgb7.weights.h5')
  i3d_tf.build_model('i3d_rgb', 7).save_weights(ckpt)
  proc = subprocess.run([sys.executable, BINARY, f'--videos={clip}', f'--output_dir={tmp_path / "f7"}',
                         '--streams=rgb', f'--rgb_checkpoint={ckpt}', '--max_frames=9', '--stack_size=8',
                         '--resize_short_side=48', '--crop_size=40'], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'features: 1 extracted' in proc.stdout


def _run(args):
  return subprocess.run([sys.executable, BINARY] + args, capture_output=True, text=True, env=ENV, cwd=ROOT)


def test_names_that_collided_before_get_their_own_outputs(tmp_path):
  """clip.avi / clip.mp4 and a/b__c.mp4 / a__b/c.mp4 were one output each (ids without extension, '/' -> '__')."""
  from data_pipelines.testing import write_video
  videos = tmp_path / 'videos'
  for rel in ('clip.avi', 'clip.mp4', 'a/b__c.mp4', 'a__b/c.mp4'):
    (videos / rel).parent.mkdir(parents=True, exist_ok=True)
    write_video(str(videos / rel), 10, fourcc='MJPG' if rel.endswith('.avi') else 'mp4v')
  ckpt = str(tmp_path / 'rgb.weights.h5')
  i3d_tf.build_model('i3d_rgb', 3).save_weights(ckpt)
  out = tmp_path / 'features'
  proc = _run([f'--videos={videos}', f'--output_dir={out}', '--streams=rgb', f'--rgb_checkpoint={ckpt}',
               '--resize_short_side=48', '--crop_size=40', '--stack_size=8'])
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'features: 4 extracted, 0 already done, 0 failed of 4 video(s)' in proc.stdout
  metas = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, files in os.walk(out) for f in files
                 if f.endswith('.json'))
  assert metas == ['a/b__c.mp4.json', 'a__b/c.mp4.json', 'clip.avi.json', 'clip.mp4.json']


def test_rerun_with_other_settings_is_refused_or_recomputed(tmp_path):
  """Stale outputs are never reported as 'already done': refused before any work, or recomputed."""
  from data_pipelines.testing import write_video
  videos = tmp_path / 'videos'
  videos.mkdir()
  write_video(str(videos / 'v.avi'), 20)
  ckpt = str(tmp_path / 'rgb.weights.h5')
  i3d_tf.build_model('i3d_rgb', 3).save_weights(ckpt)
  out = tmp_path / 'features'
  base = [f'--videos={videos}', f'--output_dir={out}', f'--rgb_checkpoint={ckpt}', '--resize_short_side=48',
          '--crop_size=40', '--allow_random_weights']
  two_streams = ['--streams=rgb,flow', '--stack_size=8', '--step_size=8', '--flow_params=nscales=1,warps=1']
  proc = _run(base + two_streams)
  assert proc.returncode == 0 and 'features: 1 extracted' in proc.stdout, proc.stderr[-2000:]
  assert np.load(out / 'v.avi_rgb.npy').shape == (2, 1024)  # 19 flow fields: windows at 0 and 8
  proc = _run(base + two_streams)
  assert 'features: 0 extracted, 1 already done' in proc.stdout  # same settings: resumed
  proc = _run(base + ['--streams=rgb', '--stack_size=4', '--step_size=4'])
  assert proc.returncode == 2 and proc.stdout == '', proc.stdout
  message = proc.stderr.strip().splitlines()[-1]
  assert message.startswith('extract_features: StaleOutputsError: ') and 'v.avi.json was made with other settings' in message
  assert "options.stack_size 8 -> 4" in message and '--overwrite' in message
  assert np.load(out / 'v.avi_rgb.npy').shape == (2, 1024)  # nothing touched
  proc = _run(base + ['--streams=rgb', '--stack_size=4', '--step_size=4', '--overwrite'])
  assert proc.returncode == 0 and 'features: 1 extracted (1 recomputed with --overwrite)' in proc.stdout
  assert np.load(out / 'v.avi_rgb.npy').shape == (5, 1024)  # rgb only: 20 frames, windows of 4
  assert not (out / 'v.avi_flow.npy').exists()  # the old flow features no longer match: removed
  # A changed checkpoint is a changed setting too.
  i3d_tf.build_model('i3d_rgb', 3).save_weights(ckpt)
  proc = _run(base + ['--streams=rgb', '--stack_size=4', '--step_size=4'])
  assert proc.returncode == 2 and 'weights.rgb' in proc.stderr


def test_a_damaged_checkpoint_is_one_error_naming_the_stream_and_file(tmp_path):
  bad = tmp_path / 'bad.weights.h5'
  bad.write_text('garbage')
  with pytest.raises(ValueError, match=r"cannot load the rgb checkpoint '.*bad.weights.h5': .*bad.weights.h5 "
                                       r'cannot be read as a checkpoint \(OSError: .*file signature not found'):
    F.load_extractor({'rgb': str(bad)})


def test_videos_are_read_one_ahead_of_the_networks_with_the_same_outputs(tmp_path, monkeypatch):
  """extract_features reads (decodes, computes the flow of) each video in a thread while the networks run on the
  one before (`features._ReadAhead`, issue 15): the outputs are bitwise those of `extract_video` alone, at
  most three videos are held, and a failure in either thread is reported for its video alone."""
  import threading
  from data_pipelines.testing import write_video
  videos = tmp_path / 'videos'
  videos.mkdir()
  paths = [write_video(str(videos / f'{n}.avi'), 14, step=s) for n, s in (('a', 2), ('b', 3), ('d', 1), ('e', 2))]
  (videos / 'c.mp4').write_bytes(b'not a video')  # fails in the reading thread
  paths.insert(2, str(videos / 'c.mp4'))
  options = F.ExtractionOptions(flow_backend='tvl1', flow_params=(('nscales', 1), ('warps', 1)), stack_size=4,
                                step_size=4, crop_size=32, resize_short_side=48, flow_margin=-1)
  extractor = F.load_extractor({'rgb': None, 'flow': None}, allow_random_weights=True)
  alone = str(tmp_path / 'alone')
  for path in paths[:2] + paths[3:]:
    F.extract_video(extractor, path, F.video_id(path, str(videos)), alone, options)
  events, lock = [], threading.Lock()  # ('read', path) when a reader starts, ('take', path) when the networks do
  taken = {}  # the video the networks are on
  prefetch, take = F._Prefetch.__init__, F._ReadAhead.take

  def logged_prefetch(self, path, *a):
    with lock:
      events.append(('read', path))
    prefetch(self, path, *a)

  def logged_take(self, path):
    ahead = take(self, path)
    with lock:
      events.append(('take', path))
    taken['path'] = path
    return ahead

  monkeypatch.setattr(F._Prefetch, '__init__', logged_prefetch)
  monkeypatch.setattr(F._ReadAhead, 'take', logged_take)
  batch_features = F.FeatureExtractor.batch_features

  def failing_for_d(self, stream, batch):  # the networks fail on d's first window, mid-video
    if taken['path'] == paths[3]:
      raise RuntimeError('networks failed')
    return batch_features(self, stream, batch)

  monkeypatch.setattr(F.FeatureExtractor, 'batch_features', failing_for_d)
  out = str(tmp_path / 'ahead')
  summary = F.extract_features(paths, str(videos), out, extractor, options, progress=False)
  assert summary['done'] == 3 and sorted(summary['failed']) == sorted([paths[2], paths[3]]), summary
  assert 'VideoDecodeError' in summary['failed'][paths[2]] and 'networks failed' in summary['failed'][paths[3]]
  for name in ('a.avi', 'b.avi', 'e.avi'):
    for suffix in ('_rgb.npy', '_flow.npy', '_timestamps.npy'):
      np.testing.assert_array_equal(np.load(os.path.join(out, name + suffix)),
                                    np.load(os.path.join(alone, name + suffix)))
  assert not os.path.exists(os.path.join(out, 'd.avi.json'))
  # Each video is read once, in order, and only after the networks took the one two before it (at most three
  # videos held: one in the networks, one read, one being read).
  assert [p for kind, p in events if kind == 'read'] == paths
  for k in range(2, len(paths)):
    assert events.index(('take', paths[k - 2])) < events.index(('read', paths[k]))
  for thread in threading.enumerate():  # every reader has stopped
    if thread.name.startswith('features '):
      thread.join(5)
      assert not thread.is_alive(), thread.name
