"""SavedModel export: a fresh process loads it with tf.saved_model.load and matches the Keras model (<= 1e-5);
Keras 3 loads it with TFSMLayer; serialized SequenceExamples go through the eval preprocessing."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import i3d_tf
from i3d_tf import export, scoring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
NUM_CLASSES = 3

LOADER = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    path, inputs, serialized, out = sys.argv[1:5]
    loaded = tf.saved_model.load(path)
    x = tf.constant(np.load(inputs, allow_pickle=False))
    res = {}
    def as_numpy(v):
      v = v.numpy()
      return np.vectorize(bytes.decode)(v).astype(str) if v.dtype == object else v
    for sig in ('serving_default', 'features'):
      for k, v in loaded.signatures[sig](video=x).items():
        res[f'{sig}.{k}'] = as_numpy(v)
    records = tf.constant([open(serialized, 'rb').read()] * 2)
    for k, v in loaded.signatures['serialized_examples'](serialized=records).items():
      res[f'serialized_examples.{k}'] = as_numpy(v)
    np.savez(out, **res)
''')


def _record(num_frames=9, size=40, label=2):
  from data_pipelines import tfrecord_format as fmt
  rng = np.random.default_rng(0)
  frames = (rng.uniform(0, 255, (num_frames, size, size + 8, 3))).astype(np.uint8)
  return fmt.serialize(fmt.encode_video(frames, None, video_id='clip_0', label_index=label))


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """An i3d_rgb exported by the binary from a .weights.h5 checkpoint (the training checkpoint stand-in)."""
  tmp = tmp_path_factory.mktemp('export')
  model = i3d_tf.build_model('i3d_rgb', NUM_CLASSES)
  ckpt = str(tmp / 'rgb.weights.h5')
  model.save_weights(ckpt)
  out = tmp / 'saved'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'export.py'), '--model=i3d_rgb',
                         f'--num_classes={NUM_CLASSES}', f'--checkpoint={ckpt}', f'--output_dir={out}',
                         '--crop_size=32'], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1].startswith('exported i3d_rgb')
  return model, str(out), tmp


def test_fresh_process_matches_keras(exported):
  model, path, tmp = exported
  rng = np.random.default_rng(1)
  x = rng.uniform(-1, 1, (2, 10, 48, 40, 3)).astype(np.float32)
  np.save(tmp / 'x.npy', x, allow_pickle=False)
  serialized = _record()
  (tmp / 'record.bin').write_bytes(serialized)
  proc = subprocess.run([sys.executable, '-c', LOADER, path, str(tmp / 'x.npy'), str(tmp / 'record.bin'),
                         str(tmp / 'out.npz')], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = dict(np.load(tmp / 'out.npz', allow_pickle=False))

  logits = model(x, training=False).numpy()
  np.testing.assert_allclose(got['serving_default.logits'], logits, atol=1e-5)
  np.testing.assert_allclose(got['serving_default.probabilities'], scoring.softmax(logits), atol=1e-5)
  # No class names given: k = min(5, 3) classes named 'class <i>', by decreasing probability.
  order = np.argsort(-logits, axis=1)
  np.testing.assert_array_equal(got['serving_default.top_k_indices'], order)
  assert got['serving_default.top_k_class_names'].tolist() == [[f'class {i}' for i in row] for row in order]
  np.testing.assert_allclose(got['serving_default.top_k_probabilities'],
                             np.take_along_axis(scoring.softmax(logits), order, 1), atol=1e-5)
  per_time = export.feature_model(model)(x, training=False).numpy()
  assert per_time.shape[0] == 2 and per_time.shape[-1] == 1024
  np.testing.assert_allclose(got['features.features_per_time'], per_time, atol=1e-5)
  np.testing.assert_allclose(got['features.features'], per_time.mean(axis=1), atol=1e-5)
  # The head's time average of per-time logits equals logits computed from the per-time features' pool.
  assert got['features.features'].shape == (2, 1024)

  # serialized_examples == what evaluation's make_dataset yields for the record, through the Keras model.
  import tensorflow as tf
  from data_pipelines import input_pipeline
  from data_pipelines.input_specs import get_input_spec
  spec = get_input_spec('i3d_rgb')
  eval_x, label = input_pipeline.parse_and_sample(tf.constant(serialized), tf.constant([0, 0]), spec,
                                                  input_pipeline.resolve_clip(spec, False), False, 32)
  eval_x = eval_x.numpy()[None]
  assert eval_x.shape == (1, 9, 32, 32, 3) and int(label) == 2
  expected = model(eval_x, training=False).numpy()[0]
  np.testing.assert_allclose(got['serialized_examples.logits'], np.stack([expected] * 2), atol=1e-5)
  assert list(got['serialized_examples.label']) == [2, 2]
  assert list(got['serialized_examples.video_id']) == ['clip_0', 'clip_0']


def test_tfsm_layer_and_export_info(exported):
  import keras
  model, path, _ = exported
  layer = keras.layers.TFSMLayer(path, call_endpoint='serving_default')
  x = np.random.default_rng(2).uniform(-1, 1, (1, 8, 32, 32, 3)).astype(np.float32)
  out = layer(x)
  np.testing.assert_allclose(keras.ops.convert_to_numpy(out['logits']), model(x, training=False).numpy(),
                             atol=1e-5)
  info = json.load(open(os.path.join(path, export.EXPORT_INFO)))
  assert info['model_name'] == 'i3d_rgb' and info['num_classes'] == NUM_CLASSES
  assert info['signatures'] == ['serving_default', 'features', 'serialized_examples']
  assert not [p for p in os.listdir(os.path.dirname(path)) if p.startswith('.tmp-export')]


def test_refuses_to_overwrite(exported, tmp_path):
  model, path, _ = exported
  with pytest.raises(FileExistsError):
    export.export_saved_model(model, path, 'i3d_rgb', NUM_CLASSES)
  # --overwrite replaces an earlier export, never a folder of other files (it once deleted whatever was there).
  mine = tmp_path / 'videos'
  (mine / 'sub').mkdir(parents=True)
  (mine / 'clip.mp4').write_bytes(b'not an export')
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'export.py'), '--model=i3d_rgb',
                         f'--num_classes={NUM_CLASSES}', '--allow_random_weights', f'--output_dir={mine}',
                         '--overwrite'], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'holds other files (clip.mp4, sub), not an earlier export' in proc.stderr.strip().splitlines()[-1]
  assert sorted(os.listdir(mine)) == ['clip.mp4', 'sub']
  with pytest.raises(FileExistsError, match='not an earlier export'):
    export.export_saved_model(model, str(mine), 'i3d_rgb', NUM_CLASSES, overwrite=True)
  assert sorted(os.listdir(mine)) == ['clip.mp4', 'sub']
  export.check_replaceable(path)  # an earlier export may be replaced


def test_two_stream_export(tmp_path):
  import tensorflow as tf
  model = i3d_tf.TwoStreamI3D(NUM_CLASSES)
  path = export.export_saved_model(model, str(tmp_path / 'two'), 'two_stream_i3d', NUM_CLASSES,
                                   serialized_signature=False)
  loaded = tf.saved_model.load(path)
  rng = np.random.default_rng(3)
  rgb = rng.uniform(-1, 1, (1, 8, 32, 32, 3)).astype(np.float32)
  flow = rng.uniform(-1, 1, (1, 8, 32, 32, 2)).astype(np.float32)
  out = loaded.signatures['serving_default'](rgb=tf.constant(rgb), flow=tf.constant(flow))
  expected = model({'rgb': rgb, 'flow': flow}, training=False).numpy()
  np.testing.assert_allclose(out['logits'].numpy(), expected, atol=1e-5)
  # Sum of logits (the official fusion) of the two streams.
  streams = export.stream_models(model)
  np.testing.assert_allclose(expected, streams['rgb'](rgb).numpy() + streams['flow'](flow).numpy(), atol=1e-5)
  assert sorted(loaded.signatures) == ['features', 'serving_default']
  feats = loaded.signatures['features'](rgb=tf.constant(rgb), flow=tf.constant(flow))
  expected_flow = export.feature_model(streams['flow'])(flow, training=False).numpy()
  np.testing.assert_allclose(feats['flow_features_per_time'].numpy(), expected_flow, atol=1e-5)
  np.testing.assert_allclose(feats['flow_features'].numpy(), expected_flow.mean(1), atol=1e-5)
  assert feats['rgb_features'].shape == (1, 1024)


def test_export_binary_refuses_missing_checkpoint(tmp_path):
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'export.py'), '--model=i3d_flow',
                         '--num_classes=3', f'--output_dir={tmp_path / "x"}'], capture_output=True, text=True,
                        env=ENV, cwd=ROOT)
  assert proc.returncode != 0 and '--checkpoint or --weights is required' in proc.stderr


KINETICS_LOADER = textwrap.dedent('''
    import sys
    import keras
    import numpy as np
    import tensorflow as tf
    path, inputs, out = sys.argv[1:4]
    x = tf.constant(np.load(inputs, allow_pickle=False))
    served = tf.saved_model.load(path).signatures['serving_default'](video=x)
    layer = keras.layers.TFSMLayer(path, call_endpoint='serving_default')(x)
    features = tf.saved_model.load(path).signatures['features'](video=x)['features']
    try:  # a [T, H, W, 3] clip without the batch axis is refused, not answered (or aborting the process)
      tf.saved_model.load(path).signatures['serving_default'](video=x[0])
      rank_refused = 0
    except tf.errors.InvalidArgumentError:
      rank_refused = 1
    names = lambda t: np.vectorize(bytes.decode)(t.numpy()).astype(str)
    np.savez(out, names=names(served['top_k_class_names']), layer_names=names(layer['top_k_class_names']),
             probabilities=served['probabilities'].numpy(), features=features.numpy(),
             indices=served['top_k_indices'].numpy(), rank_refused=rank_refused)
''')


@pytest.mark.slow
def test_kinetics400_export_names_the_top5_in_a_fresh_process(tmp_path, shared_data):
  """--weights=kinetics400: a TF-Hub-style SavedModel whose serving_default names the same top-5 as Keras."""
  from data_pipelines import preprocessing as pp
  from data_pipelines.video import decode_video
  out = tmp_path / 'i3d_rgb_kinetics400'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'export.py'), '--model=i3d_rgb',
                         '--weights=kinetics400', f'--output_dir={out}', '--skip_serialized_signature'],
                        capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1].startswith(f'exported i3d_rgb (400 classes, float32) to {out}')
  info = json.loads((out / export.EXPORT_INFO).read_text())
  assert info['weights'] == 'kinetics400' and info['class_names'][6] == 'arm wrestling'
  assert info['precision'] == 'float32'  # export's default: a SavedModel that is fast on any machine
  frames = decode_video(os.path.join(shared_data, 'videos', 'arm_wrestling_kinetics.mp4'), max_frames=32).frames
  x = pp.test_frames(frames)[None]
  np.save(tmp_path / 'x.npy', x, allow_pickle=False)
  proc = subprocess.run([sys.executable, '-c', KINETICS_LOADER, str(out), str(tmp_path / 'x.npy'),
                         str(tmp_path / 'out.npz')], capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = dict(np.load(tmp_path / 'out.npz', allow_pickle=False))
  keras_model = i3d_tf.I3D('rgb', 400, weights='kinetics400')
  top5 = i3d_tf.decode_predictions(keras_model(x, training=False).numpy(), top=5)[0]
  assert got['names'][0].tolist() == got['layer_names'][0].tolist() == [name for _, name, _ in top5]
  assert got['names'][0][0] == 'arm wrestling'
  assert got['indices'][0].tolist() == [i for i, _, _ in top5]
  np.testing.assert_allclose(got['probabilities'][0][[i for i, _, _ in top5]], [p for _, _, p in top5], atol=1e-5)
  assert got['features'].shape == (1, 1024) and int(got['rank_refused']) == 1


def test_bfloat16_export_computes_in_bfloat16_with_float32_outputs(exported, tmp_path):
  """--precision=bfloat16: the SavedModel keeps the float32 variables, computes in bfloat16 (other numbers
  than the float32 export, within bfloat16's round-off) and returns float32 logits and probabilities."""
  import tensorflow as tf
  model, _, tmp = exported
  out = tmp_path / 'bf16'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'export.py'), '--model=i3d_rgb',
                         f'--num_classes={NUM_CLASSES}', f'--checkpoint={tmp / "rgb.weights.h5"}',
                         f'--output_dir={out}', '--skip_serialized_signature', '--precision=bfloat16'],
                        capture_output=True, text=True, env=ENV, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'(3 classes, bfloat16) to {out}' in proc.stdout
  assert json.loads((out / export.EXPORT_INFO).read_text())['precision'] == 'bfloat16'
  x = np.random.default_rng(1).uniform(-1, 1, (1, 16, 64, 64, 3)).astype(np.float32)
  served = tf.saved_model.load(str(out)).signatures['serving_default'](video=tf.constant(x))
  assert served['logits'].dtype == tf.float32 and served['probabilities'].dtype == tf.float32
  expected = model(x, training=False).numpy()
  error = np.abs(served['logits'].numpy() - expected).max() / np.abs(expected).max()
  assert 0 < error < 0.05
