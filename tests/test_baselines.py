"""The four other architectures (Sec. 2.1-2.3, Table 1): counts, Table 1 forwards, training, 2D initialisation.

Training: an eager GradientTape loop for each model, and the shared `i3d_tf.training.Trainer` for ConvNet+LSTM.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from i3d_tf import InceptionV1, I3D, build_model, list_models
from i3d_tf import baselines as B
from i3d_tf import model_table as MT
from i3d_tf.inflation import adapt_input_channels
from data_pipelines.input_specs import get_input_spec
from i3d_tf.training import per_example_loss

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
BASELINES = ('convnet_lstm', 'c3d', 'two_stream', 'fused_3d')
# Trainable parameters at 400 classes (exact) and Table 1's '#Params'.
EXACT = {'convnet_lstm': 8_950_720, 'c3d': 79_634_576, 'two_stream': 12_058_560, 'fused_3d': 39_755_824,
         'two_stream_i3d': 25_358_016}
TABLE1 = {'convnet_lstm': 9e6, 'c3d': 79e6, 'two_stream': 12e6, 'fused_3d': 39e6, 'two_stream_i3d': 25e6}
TINY = 32  # Spatial size of the training tests (Mixed_5c is 1x1).


def rand(shape, seed=0):
  return np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)


def table1_inputs(name, batch=1):
  """Batch of the Table 1 training input interface, from `input_specs`."""
  spec = get_input_spec(name)
  shapes = {m: (batch,) + spec.input_shape(m) for m in spec.modalities}
  if len(shapes) == 1:
    return rand(shapes['rgb'])
  return {m: rand(s, i) for i, (m, s) in enumerate(sorted(shapes.items()))}


_PAPER_MODELS = {}


def paper_model(name):
  """The 400-class model at its default (Table 1) shapes, built once per session."""
  if name not in _PAPER_MODELS:
    _PAPER_MODELS[name] = build_model(name, 400)
  return _PAPER_MODELS[name]


def tiny_model(name, num_classes=5, **kwargs):
  tiny = {
      'convnet_lstm': dict(input_shape=(None, TINY, TINY, 3), lstm_units=16),
      'c3d': dict(input_shape=(4, TINY, TINY, 3), fc_units=64),
      'two_stream': dict(input_shapes={'rgb': (None, TINY, TINY, 3), 'flow': (None, TINY, TINY, 20)}),
      'fused_3d': dict(input_shapes={'rgb': (2, TINY, TINY, 3), 'flow': (2, TINY, TINY, 20)},
                       fusion_channels=32, seed=1),
  }[name]
  tiny.update(kwargs)
  return build_model(name, num_classes, **tiny)


def tiny_inputs(name, batch=4, frames=None):
  t = frames or {'convnet_lstm': 4, 'c3d': 4, 'two_stream': 1, 'fused_3d': 2}[name]
  if name in ('convnet_lstm', 'c3d'):
    return rand((batch, t, TINY, TINY, 3))
  return {'rgb': rand((batch, t, TINY, TINY, 3), 1), 'flow': rand((batch, t, TINY, TINY, 20), 2)}


def randomize(model, seed=0):
  """Distinct random values in every weight (positive moving variances) so copies are detectable."""
  rs = np.random.RandomState(seed)
  for w in model.weights:
    value = rs.normal(0, 0.1, w.shape)
    if w.path.endswith('moving_variance'):
      value = rs.uniform(0.5, 1.5, w.shape)
    w.assign(value.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------
# Registry, parameter counts (Table 1), forward on the Table 1 input shapes.


def test_all_seven_models_registered():
  assert list_models() == sorted(['i3d_rgb', 'i3d_flow', 'two_stream_i3d'] + list(BASELINES))
  with pytest.raises(ValueError, match='Received: name=lstm'):
    build_model('lstm', 400)


@pytest.mark.parametrize('name', BASELINES)
def test_table1_parameter_count_and_forward(name):
  model = paper_model(name)
  count = MT.count_parameters(model)
  assert count == EXACT[name]
  assert abs(count / TABLE1[name] - 1) < 0.10
  x = table1_inputs(name)
  out = keras.ops.convert_to_numpy(model(x, training=False))
  expected = (1, 25, 400) if name == 'convnet_lstm' else (1, 400)  # ConvNet+LSTM: per-step logits.
  assert out.shape == expected
  assert np.all(np.isfinite(out))
  if name == 'two_stream':  # 'softmax_mean' fusion returns log of the averaged probabilities.
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, rtol=1e-4)


def test_two_stream_i3d_count_within_table1():
  count = MT.count_parameters(build_model('two_stream_i3d', 400))
  assert count == EXACT['two_stream_i3d']
  assert abs(count / TABLE1['two_stream_i3d'] - 1) < 0.10


def test_c3d_architecture():
  """8 convs, 5 pools, 2 FC (+ classifier), BN after all of them; pool1 has temporal stride 2 (Sec. 2.2)."""
  model = paper_model('c3d')
  convs = [l for l in model.layers if isinstance(l, B.L.Unit)]
  pools = [l for l in model.layers if isinstance(l, keras.layers.MaxPooling3D)]
  dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
  bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert [l.name for l in convs] == ['conv1a', 'conv2a', 'conv3a', 'conv3b', 'conv4a', 'conv4b', 'conv5a', 'conv5b']
  assert all(l.use_batch_norm and l.kernel_size == (3, 3, 3) for l in convs)
  assert len(pools) == 5 and all(p.strides == (2, 2, 2) for p in pools)
  assert [l.name for l in dense] == ['fc6', 'fc7', 'Logits.fc8'] and [l.name for l in bns] == [
      'fc6.batch_norm', 'fc7.batch_norm']
  shapes = {n: tuple(model.get_layer(n).output.shape[1:]) for n in ('pool1', 'pool2', 'pool4', 'pool5', 'flatten')}
  assert shapes == {'pool1': (8, 56, 56, 64), 'pool2': (4, 28, 28, 128), 'pool4': (1, 7, 7, 512),
                    'pool5': (1, 4, 4, 512), 'flatten': (8192,)}
  assert model.get_layer('fc6').kernel.shape == (8192, 4096)


def test_fused_3d_architecture():
  model = paper_model('fused_3d')
  for stream in ('RGB', 'Flow'):
    assert tuple(model.get_layer(f'{stream}.PerFrame').output.shape[1:]) == (5, 7, 7, 1024)
  conv = model.get_layer('Fusion.Conv3d_3x3x3')
  assert tuple(conv.conv.kernel.shape) == (3, 3, 3, 2048, 512) and conv.use_batch_norm
  assert tuple(model.get_layer('Fusion.MaxPool3d_3x3x3').output.shape[1:]) == (3, 4, 4, 512)
  assert tuple(model.get_layer('Logits.fc').kernel.shape) == (512, 400)
  for kernel in (conv.conv.kernel, model.get_layer('Logits.fc').kernel):  # Gaussian-noise init, Sec. 2.3
    k = keras.ops.convert_to_numpy(kernel)
    assert abs(k.std() - B.GAUSSIAN_STDDEV) < 0.05 * B.GAUSSIAN_STDDEV and abs(k.mean()) < 1e-3


def test_convnet_lstm_structure():
  model = paper_model('convnet_lstm')
  assert tuple(model.get_layer('AvgPool').output.shape[1:]) == (None, 1024)
  cell = model.get_layer('LSTM').cell
  assert cell.units == 512 and tuple(cell.recurrent_kernel.shape) == (512, 2048)
  bias = keras.ops.convert_to_numpy(cell.bias)
  assert bias[512:1024].tolist() == [1.0] * 512 and not bias[:512].any()  # forget-gate bias 1
  for bn in (model.get_layer('LSTM.input_bn'), cell.bn_hidden, cell.bn_cell):  # Cooijmans: gamma 0.1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.gamma), 0.1)
  assert model.get_layer('LSTM.input_bn').beta is None and cell.bn_hidden.beta is None
  assert cell.bn_cell.beta is not None


# ---------------------------------------------------------------------------------------------------------
# Training a few steps on tiny inputs.


@pytest.mark.parametrize('name', BASELINES)
def test_trains_loss_goes_down(name):
  """4 eager Adam steps on one tiny batch (eager: tracing two Inception-v1 gradients costs more than it saves)."""
  keras.utils.set_random_seed(0)
  model = tiny_model(name, dropout_keep_prob=1.0)
  x, y = tiny_inputs(name), np.array([0, 1, 2, 3])
  opt = keras.optimizers.Adam(1e-3)
  moving = [w for w in model.non_trainable_weights if w.path.endswith('moving_mean')]
  before = [keras.ops.convert_to_numpy(w).copy() for w in moving]
  losses = []
  for _ in range(4):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(per_example_loss(y, model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)  # every weight (trunk, LSTM BNs, fusion) is trained end to end
    opt.apply_gradients(zip(grads, model.trainable_weights))
    losses.append(float(loss))
  assert losses[-1] < losses[0] - 0.05, losses
  changed = [np.abs(keras.ops.convert_to_numpy(w) - b).max() > 0 for w, b in zip(moving, before)]
  assert all(changed)  # BN statistics (incl. the recurrent ones) are updated at training


@pytest.mark.parametrize('name', BASELINES)
def test_shared_trainer_trains_each_baseline(name):
  """The shared `i3d_tf.training.Trainer` (tf.function, strategy.run, SGD momentum 0.9): loss goes down."""
  from i3d_tf.training import TrainConfig, Trainer  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  x = tiny_inputs(name, frames=3 if name == 'convnet_lstm' else None)
  y = np.array([0, 1, 2, 3], np.int32)
  config = TrainConfig(model=name, num_classes=5, batch_size=4, train_steps=5, learning_rate=0.05,
                       lr_schedule='constant', log_every=1, weight_decay=0.0, dropout_keep_prob=1.0,
                       progress_bar=False)
  trainer = Trainer(config, model_fn=lambda n: tiny_model(name, n, dropout_keep_prob=1.0),
                    train_dataset_fn=lambda ctx: tf.data.Dataset.from_tensors((x, y)).repeat())
  metrics = trainer.train()
  losses = [r['loss'] for r in trainer.history if r['kind'] == 'train']
  assert metrics['steps_run'] == 5 and len(losses) == 5
  assert losses[-1] < losses[0] - 0.05, losses


# ---------------------------------------------------------------------------------------------------------
# Output contracts.


def test_loss_averages_all_time_steps_and_eval_uses_last():
  from i3d_tf import scoring  # pylint: disable=g-import-not-at-top
  logits = rand((2, 3, 5)) * 3
  labels = np.array([1, 4])
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = -logp[np.arange(2), :, labels].mean(-1)
  np.testing.assert_allclose(per_example_loss(labels, logits).numpy(), expected, rtol=1e-5)
  np.testing.assert_allclose(per_example_loss(labels, logits[:, 0]).numpy(), -logp[np.arange(2), 0, labels],
                             rtol=1e-5)
  smoothed = per_example_loss(labels, logits[:, 0], label_smoothing=0.1).numpy()  # 0.9 one-hot + 0.1 / 5
  np.testing.assert_allclose(smoothed, -(0.9 * logp[np.arange(2), 0, labels] + 0.02 * logp[:, 0].sum(-1)),
                             rtol=1e-5)
  np.testing.assert_array_equal(scoring.last_step(logits), logits[:, -1])
  np.testing.assert_array_equal(scoring.last_step(logits[:, 0]), logits[:, 0])
  with pytest.raises(ValueError, match='Received: logits.shape'):
    scoring.last_step(logits[0, 0])
  with pytest.raises(ValueError, match='Received: logits.shape'):
    per_example_loss(labels, logits[0, 0])


def test_convnet_lstm_is_causal_any_length_and_last_step_model_shares_weights():
  model = tiny_model('convnet_lstm')
  randomize(model, 3)
  x = tiny_inputs('convnet_lstm', batch=2, frames=6)
  full = keras.ops.convert_to_numpy(model(x, training=False))
  head = keras.ops.convert_to_numpy(model(x[:, :3], training=False))
  np.testing.assert_allclose(full[:, :3], head, rtol=1e-4, atol=1e-5)  # step t sees frames <= t only
  assert np.abs(full[:, 3:] - full[:, 2:3]).max() > 1e-4
  last = tiny_model('convnet_lstm', output_steps='last')
  last.set_weights(model.get_weights())
  np.testing.assert_allclose(keras.ops.convert_to_numpy(last(x, training=False)), full[:, -1], rtol=1e-4, atol=1e-5)
  assert model(tiny_inputs('convnet_lstm', batch=1, frames=50), training=False).shape == (1, 50, 5)  # test length


def test_per_frame_equals_frame_by_frame_and_two_stream_averages_snapshots():
  model = tiny_model('two_stream', fusion='logits_mean')
  randomize(model, 4)
  x = tiny_inputs('two_stream', batch=2, frames=3)
  out = keras.ops.convert_to_numpy(model(x, training=False))
  nets = B.frame_models(model)
  per_stream = []
  for m, net in (('rgb', nets['RGB']), ('flow', nets['Flow'])):
    frames = [keras.ops.convert_to_numpy(net(x[m][:, t], training=False)) for t in range(3)]
    per_stream.append(np.mean(frames, axis=0))
    folded = model.get_layer(f'{net.name}.PerFrame')(x[m], training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded), np.stack(frames, 1), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out, np.mean(per_stream, axis=0), rtol=1e-4, atol=1e-5)


def test_weights_round_trip(tmp_path):
  model = tiny_model('fused_3d')
  randomize(model, 5)
  path = str(tmp_path / 'fused.weights.h5')
  model.save_weights(path)
  other = tiny_model('fused_3d')
  other.load_weights(path)
  x = tiny_inputs('fused_3d', batch=1)
  np.testing.assert_allclose(keras.ops.convert_to_numpy(other(x, training=False)),
                             keras.ops.convert_to_numpy(model(x, training=False)), rtol=1e-5, atol=1e-6)


def test_keras_save_load_round_trip(tmp_path):
  """PerFrame (nested InceptionV1) and the BN-LSTM cell serialise."""
  model = tiny_model('convnet_lstm')
  randomize(model, 6)
  path = str(tmp_path / 'convnet_lstm.keras')
  model.save(path)
  loaded = keras.saving.load_model(path)
  x = tiny_inputs('convnet_lstm', batch=2, frames=3)
  np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)),
                                keras.ops.convert_to_numpy(model(x, training=False)))
  assert sorted(B.frame_models(loaded)) == ['InceptionV1']


@pytest.mark.parametrize('name', ['convnet_lstm', 'c3d', 'fused_3d'])
def test_float32_logits_under_mixed_precision(name):
  keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    model = tiny_model(name)
  finally:
    keras.mixed_precision.set_global_policy('float32')
  out = model(tiny_inputs(name, batch=2), training=False)
  assert out.dtype == tf.float32 and np.all(np.isfinite(keras.ops.convert_to_numpy(out)))
  assert {l.compute_dtype for l in model.layers if l.weights} == {'bfloat16', 'float32'}  # body bf16, logits f32


@pytest.mark.parametrize('name', BASELINES)
def test_input_pipeline_batches_feed_the_models(tmp_path, name):
  """`data_pipelines.make_dataset` batches (Table 1 train clip; test views) fit the model; the evaluator folds views."""
  from data_pipelines import make_dataset  # pylint: disable=g-import-not-at-top
  from data_pipelines import tfrecord_format as fmt  # pylint: disable=g-import-not-at-top
  from data_pipelines.testing import write_records  # pylint: disable=g-import-not-at-top
  from i3d_tf import evaluation  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(0)
  n = 60
  video = fmt.encode_video(rs.randint(0, 255, (n, 40, 48, 3)).astype(np.uint8),
                           rs.randint(0, 255, (n - 1, 40, 48, 2)).astype(np.uint8), video_id='v', label_index=2)
  write_records(str(tmp_path / 'v-00000-of-00001.tfrecord'), [video])
  kwargs = {'fused_3d': dict(input_shapes={'rgb': (5, TINY, TINY, 3), 'flow': (5, TINY, TINY, 20)},
                             fusion_channels=32),
            'c3d': dict(input_shape=(16, TINY, TINY, 3), fc_units=64)}.get(name, {})
  model = tiny_model(name, **kwargs)
  inputs, labels = next(iter(make_dataset(str(tmp_path / 'v-*'), name, True, 2, crop_size=TINY, seed=0)))
  out = model(inputs, training=True)
  assert tuple(out.shape) == ((2, 25, 5) if name == 'convnet_lstm' else (2, 5))
  assert per_example_loss(labels, out).shape == (2,)
  if name == 'convnet_lstm':  # evaluation model: same weights, last step
    last = tiny_model(name, output_steps='last')
    last.set_weights(model.get_weights())
    model = last
  inputs, labels = next(iter(make_dataset(str(tmp_path / 'v-*'), name, False, 1, crop_size=TINY)))
  rgb = inputs['rgb'] if isinstance(inputs, dict) else inputs  # (batch, views or T, T, ...): Table 1 test
  assert tuple(rgb.shape[:3]) == {'convnet_lstm': (1, 50, TINY), 'c3d': (1, 15, 16), 'two_stream': (1, 25, 1),
                                  'fused_3d': (1, 5, 5)}[name]
  probs = evaluation.predict_video_batch(evaluation.make_predict_fn(model), inputs)
  assert probs.shape == (1, 5)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  assert int(labels[0]) == 2


# ---------------------------------------------------------------------------------------------------------
# ImageNet-style 2D initialisation.


def test_init_two_stream_copies_values_and_adapts_flow_conv1():
  src = InceptionV1(5, input_shape=(TINY, TINY, 3))
  randomize(src, 1)
  model = tiny_model('two_stream')
  report = B.init_from_inception_v1(model, src)
  assert sorted(report) == ['Flow', 'RGB']
  assert all(len(r['copied']) == 58 and r['skipped'] == [] for r in report.values())  # 57 units + logits
  nets = B.frame_models(model)

  def value(net, layer, attr):
    sub, var = attr.split('.')
    return keras.ops.convert_to_numpy(getattr(getattr(net.get_layer(layer), sub), var))

  for layer in ('Mixed_4b.Branch_1.Conv2d_0b_3x3', 'Logits.Conv2d_0c_1x1'):
    np.testing.assert_array_equal(value(nets['Flow'], layer, 'conv.kernel'), value(src, layer, 'conv.kernel'))
  np.testing.assert_array_equal(value(nets['RGB'], 'Logits.Conv2d_0c_1x1', 'conv.bias'),
                                value(src, 'Logits.Conv2d_0c_1x1', 'conv.bias'))
  for attr in ('bn.beta', 'bn.moving_mean', 'bn.moving_variance'):
    np.testing.assert_array_equal(value(nets['RGB'], 'Mixed_5c.Branch_0.Conv2d_0a_1x1', attr),
                                  value(src, 'Mixed_5c.Branch_0.Conv2d_0a_1x1', attr))
  k_src = keras.ops.convert_to_numpy(src.get_layer('Conv2d_1a_7x7').conv.kernel)
  k_flow = keras.ops.convert_to_numpy(nets['Flow'].get_layer('Conv2d_1a_7x7').conv.kernel)
  assert k_flow.shape == (7, 7, 20, 64)
  np.testing.assert_array_equal(k_flow, adapt_input_channels(k_src, 20, 'mean'))
  np.testing.assert_allclose(k_flow[:, :, 13], k_src.mean(axis=2), rtol=1e-6)  # the documented 'mean' rule
  img = rand((2, TINY, TINY, 3), 7)
  np.testing.assert_allclose(keras.ops.convert_to_numpy(nets['RGB'](img, training=False)),
                             keras.ops.convert_to_numpy(src(img, training=False)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', ['convnet_lstm', 'fused_3d'])
def test_init_trunks_forward_equal_to_imagenet_network(name):
  src = InceptionV1(1000, input_shape=(TINY, TINY, 3))  # ImageNet head: not copied into trunks
  randomize(src, 2)
  model = tiny_model(name)
  report = B.init_from_inception_v1(model, src)
  expected_streams = ['InceptionV1'] if name == 'convnet_lstm' else ['Flow', 'RGB']
  assert sorted(report) == expected_streams
  assert all(len(r['copied']) == 57 and r['skipped'] == [] for r in report.values())
  trunk_src = keras.Model(src.input, src.get_layer('Mixed_5c').output)
  video = rand((2, 2, TINY, TINY, 3), 8)
  stream = expected_streams[-1]
  per_frame = keras.ops.convert_to_numpy(model.get_layer(f'{stream}.PerFrame')(video, training=False))
  expected = np.stack([keras.ops.convert_to_numpy(trunk_src(video[:, t], training=False)) for t in range(2)], 1)
  np.testing.assert_allclose(per_frame, expected, rtol=1e-4, atol=1e-5)


def test_init_refuses_c3d_and_mismatches_without_writing():
  src = InceptionV1(5, input_shape=(TINY, TINY, 3))
  with pytest.raises(ValueError, match='trained from scratch.*Received: model=c3d'):
    B.init_from_inception_v1(tiny_model('c3d'), src)
  model = tiny_model('two_stream')
  before = [keras.ops.convert_to_numpy(w).copy() for w in model.weights]
  with pytest.raises(ValueError, match='no matching 2D unit'):
    B.init_from_inception_v1(model, I3D('rgb', 5, input_shape=(4, TINY, TINY, 3)))  # 3D names
  assert all(np.array_equal(b, keras.ops.convert_to_numpy(w)) for b, w in zip(before, model.weights))


# ---------------------------------------------------------------------------------------------------------
# Argument validation.

ERRORS = [
    (lambda: B.ConvNetLSTM(0), 'Received: num_classes=0'),
    (lambda: B.ConvNetLSTM(input_shape=(8, 32, 32, 2)), r'Received: input_shape=\(8, 32, 32, 2\)'),
    (lambda: B.ConvNetLSTM(output_steps='middle'), 'Received: output_steps=middle'),
    (lambda: B.BatchNormLSTMCell(0), 'Received: units=0'),
    (lambda: B.C3D(input_shape=(None, 112, 112, 3)), 'static input shape'),
    (lambda: B.C3D(fc_units=0), 'Received: fc_units=0'),
    (lambda: B.C3D(dropout_keep_prob=0.0), 'Received: dropout_keep_prob=0.0'),
    (lambda: B.TwoStream(fusion='max'), 'Received: fusion=max'),
    (lambda: B.TwoStream(input_shapes={'rgb': (1, 32, 32, 3)}), 'must have keys'),
    (lambda: B.TwoStream(input_shapes={'rgb': (1, 32, 32, 3), 'flow': (1, 32, 32, 2)}), '20 channels'),
    (lambda: B.Fused3D(input_shapes={'rgb': (5, 32, 32, 3), 'flow': (4, 32, 32, 20)}), 'must align'),
    (lambda: B.Fused3D(fusion_channels=0), 'Received: flow_frames=10, fusion_channels=0'),
]


@pytest.mark.parametrize('make,match', ERRORS)
def test_builders_validate_arguments(make, match):
  with pytest.raises(ValueError, match=match) as info:
    make()
  assert 'Received' in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# The parameter table binary.


def test_markdown_table_rows():
  rows = [MT.ParameterRow('c3d', 79_634_576, '79M'), MT.ParameterRow('convnet_lstm', 8_950_720, '9M')]
  assert rows[0].relative_error == pytest.approx(0.00803, abs=1e-4)
  text = MT.markdown_table(rows)
  assert '| `c3d` | 3D-ConvNet | 79,634,576 | 79.63 | 79M | +0.8% |' in text
  assert '| `convnet_lstm` | ConvNet+LSTM | 8,950,720 | 8.95 | 9M | -0.5% |' in text


def test_model_table_binary_writes_atomically(tmp_path):
  out = tmp_path / 'table.md'
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'experiments', 'model_table.py'),
                         '--models=two_stream,two_stream_i3d', f'--output={out}'],
                        capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = out.read_text()
  assert '| `two_stream` | Two-Stream | 12,058,560 | 12.06 | 12M | +0.5% |' in text
  assert '| `two_stream_i3d` | Two-Stream I3D | 25,358,016 | 25.36 | 25M | +1.4% |' in text
  assert text in proc.stdout and 'worst deviation from Table 1 1.4%' in proc.stdout
  assert os.listdir(tmp_path) == ['table.md']  # no temporary file left behind
