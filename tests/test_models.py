"""I3D / InceptionV1 builders: endpoints, shapes, parameter counts, options, errors, save/load (Sec. 2.4, Fig. 3)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import i3d_tf
from i3d_tf import I3D, InceptionV1, build_model
from i3d_tf.endpoints import VALID_ENDPOINTS, VALID_ENDPOINTS_2D

OFFICIAL_ENDPOINTS = (
    'Conv3d_1a_7x7', 'MaxPool3d_2a_3x3', 'Conv3d_2b_1x1', 'Conv3d_2c_3x3', 'MaxPool3d_3a_3x3', 'Mixed_3b',
    'Mixed_3c', 'MaxPool3d_4a_3x3', 'Mixed_4b', 'Mixed_4c', 'Mixed_4d', 'Mixed_4e', 'Mixed_4f',
    'MaxPool3d_5a_2x2', 'Mixed_5b', 'Mixed_5c', 'Logits', 'Predictions')

# Endpoint shapes for a 16x64x64 input: (T, H, W, C).
SHAPES_16x64 = {
    'Conv3d_1a_7x7': (8, 32, 32, 64), 'MaxPool3d_2a_3x3': (8, 16, 16, 64), 'Conv3d_2b_1x1': (8, 16, 16, 64),
    'Conv3d_2c_3x3': (8, 16, 16, 192), 'MaxPool3d_3a_3x3': (8, 8, 8, 192), 'Mixed_3b': (8, 8, 8, 256),
    'Mixed_3c': (8, 8, 8, 480), 'MaxPool3d_4a_3x3': (4, 4, 4, 480), 'Mixed_4b': (4, 4, 4, 512),
    'Mixed_4c': (4, 4, 4, 512), 'Mixed_4d': (4, 4, 4, 512), 'Mixed_4e': (4, 4, 4, 528),
    'Mixed_4f': (4, 4, 4, 832), 'MaxPool3d_5a_2x2': (2, 2, 2, 832), 'Mixed_5b': (2, 2, 2, 832),
    'Mixed_5c': (2, 2, 2, 1024)}


def n_trainable(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_endpoint_list_is_the_official_one():
  assert VALID_ENDPOINTS == OFFICIAL_ENDPOINTS
  assert len(VALID_ENDPOINTS_2D) == 18
  assert VALID_ENDPOINTS_2D[:2] == ('Conv2d_1a_7x7', 'MaxPool_2a_3x3')


@pytest.mark.parametrize('modality,expected', [('rgb', 12_689_984), ('flow', 12_668_032)])
def test_parameter_counts_match_official_checkpoints(modality, expected):
  model = I3D(modality, num_classes=400)
  assert n_trainable(model) == expected
  assert len(model.weights) == 230  # 57 units x 4 + logits kernel and bias
  assert not [w for w in model.weights if w.path.endswith('gamma')]  # BN without scale


def test_layer_names_equal_checkpoint_names():
  paths = {w.path for w in I3D('rgb').weights}
  for p in ('Conv3d_1a_7x7/conv_3d/kernel', 'Mixed_4b.Branch_1.Conv3d_0b_3x3/batch_norm/moving_variance',
            'Mixed_5b.Branch_2.Conv3d_0a_3x3/conv_3d/kernel',  # the official Mixed_5b quirk
            'Mixed_5c.Branch_2.Conv3d_0b_3x3/conv_3d/kernel', 'Mixed_3b.Branch_3.Conv3d_0b_1x1/batch_norm/beta',
            'Logits.Conv3d_0c_1x1/conv_3d/kernel', 'Logits.Conv3d_0c_1x1/conv_3d/bias'):
    assert p in paths
  assert 'Mixed_5b.Branch_2.Conv3d_0b_3x3/conv_3d/kernel' not in paths


def test_every_endpoint_shape_and_early_stop():
  model = I3D('rgb', final_endpoint='Mixed_5c')
  probe = keras.Model(model.input, [model.get_layer(n).output for n in SHAPES_16x64])
  x = np.random.RandomState(0).uniform(-1, 1, (2, 16, 64, 64, 3)).astype(np.float32)
  outs = probe(x, training=False)
  for name, out in zip(SHAPES_16x64, outs):
    assert tuple(out.shape) == (2,) + SHAPES_16x64[name], name
  # The build returns early: nothing after the final endpoint exists.
  short = I3D('rgb', final_endpoint='MaxPool3d_4a_3x3')
  assert short.output.shape[-1] == 480
  assert not [l for l in short.layers if l.name.startswith('Mixed_4')]
  assert tuple(short(x).shape) == (2, 4, 4, 4, 480)


def test_strides_kernels_and_bn_settings():
  model = I3D('rgb')
  pool2a, pool3a = model.get_layer('MaxPool3d_2a_3x3'), model.get_layer('MaxPool3d_3a_3x3')
  assert (pool2a.pool_size, pool2a.strides) == ((1, 3, 3), (1, 2, 2))  # no temporal pooling
  assert (pool3a.pool_size, pool3a.strides) == ((1, 3, 3), (1, 2, 2))
  assert model.get_layer('MaxPool3d_4a_3x3').strides == (2, 2, 2)
  assert model.get_layer('MaxPool3d_5a_2x2').pool_size == (2, 2, 2)
  conv1 = model.get_layer('Conv3d_1a_7x7')
  assert (conv1.kernel_size, conv1.strides) == ((7, 7, 7), (2, 2, 2))
  bn = conv1.bn
  assert (bn.epsilon, bn.momentum, bn.scale, bn.center) == (1e-3, 0.999, False, True)
  logits = model.get_layer('Logits.Conv3d_0c_1x1')
  assert logits.use_bias and logits.bn is None and logits.activation is None
  assert model.get_layer('Logits.AvgPool').pool_size == (2, 7, 7)
  assert model.get_layer('Logits.Dropout').rate == 0.5


def test_full_size_shapes_and_temporal_average():
  """64x224x224 -> Mixed_5c (1, 8, 7, 7, 1024), per-time logits (1, 7, 400), averaged (1, 400)."""
  per_time = I3D('rgb', temporal_average=False)
  probe = keras.Model(per_time.input, [per_time.get_layer('Mixed_5c').output, per_time.output])
  averaged = I3D('rgb')
  averaged.set_weights(per_time.get_weights())
  x = np.random.RandomState(1).uniform(-1, 1, (1, 64, 224, 224, 3)).astype(np.float32)
  mixed5c, logits_t = probe(x, training=False)
  assert tuple(mixed5c.shape) == (1, 8, 7, 7, 1024)
  assert tuple(logits_t.shape) == (1, 7, 400)
  logits = averaged(x, training=False)
  assert tuple(logits.shape) == (1, 400)
  np.testing.assert_allclose(logits.numpy(), logits_t.numpy().mean(axis=1), rtol=1e-5, atol=1e-6)
  # The capped head pool is the official 2x7x7 VALID pool at this size.
  ref = tf.nn.avg_pool3d(mixed5c, [1, 2, 7, 7, 1], [1, 1, 1, 1, 1], 'VALID')
  head_in = keras.Model(per_time.input, per_time.get_layer('Logits.AvgPool').output)(x, training=False)
  np.testing.assert_allclose(head_in.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)


def test_whole_video_250_frames():
  """Table 1 test interface: 250 frames (10 s at 25 fps) through the convolutional model."""
  model = I3D('rgb', temporal_average=False, num_classes=400)
  x = np.zeros((1, 250, 224, 224, 3), np.float32)
  out = model(x, training=False)
  assert tuple(out.shape) == (1, 31, 400)  # ceil(250 / 8) = 32 steps, 2-step VALID pool -> 31


def test_small_and_unknown_input_sizes():
  model = I3D('flow', num_classes=5)
  x = np.random.RandomState(2).uniform(-1, 1, (1, 8, 32, 40, 2)).astype(np.float32)
  eager = model(x, training=False)
  assert tuple(eager.shape) == (1, 5)
  # In a graph with unknown T, H, W the capped pool takes its dynamic path; same numbers.
  fn = tf.function(lambda v: model(v, training=False),
                   input_signature=[tf.TensorSpec([None, None, None, None, 2], tf.float32)])
  np.testing.assert_allclose(fn(x).numpy(), eager.numpy(), rtol=1e-5, atol=1e-5)
  # Larger spatial input: spatially-convolutional testing averages the 2x2 logits grid.
  big = I3D('rgb', num_classes=3, spatial_squeeze=False, temporal_average=False)
  y = big(np.zeros((1, 16, 256, 256, 3), np.float32), training=False)
  assert tuple(y.shape) == (1, 1, 2, 2, 3)


def test_global_head_pooling_option():
  model = I3D('rgb', num_classes=4, head_pooling='global', temporal_average=False)
  out = model(np.zeros((1, 16, 96, 96, 3), np.float32), training=False)
  assert tuple(out.shape) == (1, 2, 4)  # time kept (T'=2), space averaged


@pytest.mark.parametrize('kwargs,match', [
    (dict(modality='depth'), 'modality'),
    (dict(final_endpoint='Mixed_6a'), 'final_endpoint'),
    (dict(input_shape=(16, 64, 64, 3), modality='flow'), '2 channels'),
    (dict(input_shape=(64, 64, 3)), '4 entries'),
    (dict(input_shape=(0, 64, 64, 3)), '>= 1'),
    (dict(num_classes=0), 'num_classes'),
    (dict(dropout_keep_prob=0.0), 'dropout_keep_prob'),
])
def test_invalid_arguments_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    I3D(**kwargs)


def test_inception_v1_2d():
  model = InceptionV1(num_classes=1000)
  assert n_trainable(model) == 6_617_624  # conv kernels + BN betas + 1024x1000 classifier and bias
  x = np.random.RandomState(3).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
  assert tuple(model(x, training=False).shape) == (2, 1000)
  trunk = InceptionV1(final_endpoint='Mixed_5c')
  assert tuple(trunk(x, training=False).shape) == (2, 7, 7, 1024)
  flow2d = InceptionV1(channels=20, num_classes=101)
  assert flow2d.get_layer('Conv2d_1a_7x7').conv.kernel.shape == (7, 7, 20, 64)


def test_registry_and_two_stream():
  assert {'i3d_rgb', 'i3d_flow', 'two_stream_i3d'} <= set(i3d_tf.list_models())
  with pytest.raises(ValueError, match='Unknown model'):
    build_model('i3d_depth', 10)
  with pytest.raises(ValueError, match='twice'):
    i3d_tf.register_model('i3d_rgb')(lambda num_classes: None)
  model = build_model('two_stream_i3d', 7)
  assert n_trainable(model) == n_trainable(I3D('rgb', 7)) + n_trainable(I3D('flow', 7))
  assert {l.name for l in model.layers} >= {'RGB', 'Flow', 'fusion'}
  rs = np.random.RandomState(4)
  inputs = {'rgb': rs.uniform(-1, 1, (1, 8, 64, 64, 3)).astype(np.float32),
            'flow': rs.uniform(-1, 1, (1, 8, 64, 64, 2)).astype(np.float32)}
  rgb_logits = model.get_layer('RGB')(inputs['rgb'], training=False).numpy()
  flow_logits = model.get_layer('Flow')(inputs['flow'], training=False).numpy()
  np.testing.assert_allclose(model(inputs, training=False).numpy(), rgb_logits + flow_logits, rtol=1e-5,
                             atol=1e-5)
  soft = i3d_tf.TwoStreamI3D(7, fusion='softmax_mean', rgb_model=model.get_layer('RGB'),
                             flow_model=model.get_layer('Flow'))
  expected = (tf.nn.softmax(rgb_logits) + tf.nn.softmax(flow_logits)).numpy() / 2
  np.testing.assert_allclose(tf.nn.softmax(soft(inputs, training=False)).numpy(), expected, rtol=1e-4, atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
  model = I3D('rgb', num_classes=6)
  # Non-trivial BN statistics so that the round trip covers non-trainable weights too.
  for w in model.non_trainable_weights:
    w.assign(np.random.RandomState(5).uniform(0.5, 1.5, w.shape).astype(np.float32))
  x = np.random.RandomState(6).uniform(-1, 1, (1, 8, 64, 64, 3)).astype(np.float32)
  ref = model(x, training=False).numpy()
  path = os.path.join(tmp_path, 'i3d.keras')
  model.save(path)
  loaded = keras.saving.load_model(path)
  np.testing.assert_array_equal(loaded(x, training=False).numpy(), ref)
  weights = os.path.join(tmp_path, 'i3d.weights.h5')
  model.save_weights(weights)
  fresh = I3D('rgb', num_classes=6, weights=weights)
  np.testing.assert_array_equal(fresh(x, training=False).numpy(), ref)
  for a, b in zip(model.weights, fresh.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize('preset,expected', [(None, '1'), ('0', '0')])
def test_entry_points_enable_onednn_unless_user_set_it_and_imports_change_no_environment(preset, expected):
  """`import i3d_tf` / `import data_pipelines` leave os.environ alone (OpenCV's own LD_LIBRARY_PATH edit
  aside: cv2 is imported before the snapshot); the binaries' `cli.quiet_start` sets the oneDNN default."""
  import subprocess
  import sys
  env = {k: v for k, v in os.environ.items() if k != 'TF_ENABLE_ONEDNN_OPTS'}
  if preset is not None:
    env['TF_ENABLE_ONEDNN_OPTS'] = preset
  code = ('import os, cv2; before = dict(os.environ)\n'
          'import i3d_tf, data_pipelines, data_pipelines.flow, i3d_tf.classification\n'
          'i3d_tf.get_input_spec("i3d_rgb")\n'
          'changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n'
          'from i3d_tf import cli; cli.quiet_start(["x"])\n'
          'print(changed, os.environ.get("TF_ENABLE_ONEDNN_OPTS"))')
  out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert out.stdout.strip().splitlines()[-1] == f'[] {expected}'


def test_mixed_precision_keeps_float32_logits():
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    model = I3D('rgb', num_classes=3, temporal_average=False)
    two = build_model('two_stream_i3d', 3)
  finally:
    keras.mixed_precision.set_global_policy(previous)
  x = np.zeros((1, 8, 32, 32, 3), np.float32)
  assert model.get_layer('Mixed_5c').compute_dtype == 'bfloat16'
  assert model(x, training=False).dtype == tf.float32
  out = two({'rgb': x, 'flow': np.zeros((1, 8, 32, 32, 2), np.float32)}, training=False)
  assert out.dtype == tf.float32 and tuple(out.shape) == (1, 3)


def test_the_registry_holds_the_model_facts():
  """What code around a model needs (no `if name == ...` elsewhere): fully convolutional, per-step outputs,
  how 2D ImageNet weights get in, the nested streams."""
  from i3d_tf import registry  # pylint: disable=g-import-not-at-top
  facts = {n: registry.model_info(n) for n in registry.list_models()}
  assert {n for n, f in facts.items() if f.fully_convolutional} == {'i3d_rgb', 'i3d_flow', 'two_stream_i3d'}
  assert {n for n, f in facts.items() if f.per_step_outputs} == {'convnet_lstm'}
  assert {n: f.init_2d for n, f in facts.items()} == {
      'i3d_rgb': 'inflate', 'i3d_flow': 'inflate', 'two_stream_i3d': 'inflate', 'convnet_lstm': 'copy',
      'two_stream': 'copy', 'fused_3d': 'copy', 'c3d': None}
  two = build_model('two_stream_i3d', 3)
  assert all(two.get_layer(s) is not None for s in facts['two_stream_i3d'].streams)
  with pytest.raises(ValueError, match='Unknown model'):
    registry.model_info('i3d')
