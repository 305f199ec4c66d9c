"""In-process training tests: CLI + restore_model on I3D, transfer (Sec. 5), schedules, losses, precision.

Distributed strategies and SIGKILL/resume run in subprocesses: tests/test_training_distributed.py.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from i3d_tf import inflation
from i3d_tf.inception import I3D, InceptionV1, build_head
from i3d_tf import layers as L
from i3d_tf import training
from i3d_tf.training import loop, testing, transfer
from i3d_tf.checkpoints import restore

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))


def _config(**kw):
  base = dict(model='i3d_rgb', num_classes=3, train_data='synthetic:16', eval_data='synthetic:8', batch_size=4,
              train_steps=3, learning_rate=0.05, lr_schedule='constant', checkpoint_every=100, eval_every=100,
              log_every=1, progress_bar=False, deterministic=True, seed=1)
  base.update(kw)
  return training.TrainConfig(**base)


def _tiny(config):
  return lambda n: testing.tiny_i3d(n, dropout_keep_prob=config.dropout_keep_prob)


def test_cli_i3d_rgb_writes_run_and_restore_model(tmp_path):
  model_dir = str(tmp_path / 'run')
  cmd = [sys.executable, 'experiments/train.py', '--model=i3d_rgb', '--num_classes=3',
         '--train_data=synthetic:8', '--eval_data=synthetic:4', '--batch_size=2', '--train_steps=2',
         '--num_frames=4', '--crop_size=32', '--learning_rate=0.01', '--checkpoint_every=1', '--log_every=1',
         '--eval_every=2', '--deterministic', f'--model_dir={model_dir}']
  proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                        timeout=400)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = proc.stdout.strip().splitlines()[-1]
  assert summary.startswith('train: i3d_rgb step 2 in'), summary
  with open(os.path.join(model_dir, 'config.json')) as f:
    config = json.load(f)
  assert config['model'] == 'i3d_rgb' and config['num_classes'] == 3 and config['weight_decay'] == 1e-7
  assert config['momentum'] == 0.9 and config['dropout_keep_prob'] == 0.5 and config['num_frames'] == 4
  for name in ('ckpt-1.index', 'ckpt-2.index', 'checkpoint', 'training_curves.png', 'history.jsonl'):
    assert os.path.exists(os.path.join(model_dir, name)), name
  for sub in ('train', 'eval'):
    events = os.listdir(os.path.join(model_dir, sub))
    assert events and os.path.getsize(os.path.join(model_dir, sub, events[0])) > 100
  records = loop.read_history(model_dir)
  events = {}
  for f in sorted(os.listdir(os.path.join(model_dir, 'train'))):
    for e in tf.compat.v1.train.summary_iterator(os.path.join(model_dir, 'train', f)):
      for v in e.summary.value:
        events.setdefault(v.tag, []).append((e.step, float(tf.make_ndarray(v.tensor))))
        assert v.metadata.plugin_data.plugin_name == 'scalars'
  assert [s for s, _ in events['loss']] == [1, 2] and events['learning_rate'][0][1] == pytest.approx(0.01)
  assert [v for _, v in events['loss']] == pytest.approx([r['loss'] for r in records if r['kind'] == 'train'])
  assert [r['step'] for r in records if r['kind'] == 'train'] == [1, 2]
  assert all(np.isfinite(r['loss']) for r in records)
  assert [(r['kind'], r['step']) for r in records if r['kind'] == 'eval'] == [('eval', 2)]
  # Throughput leaves out the first step (tracing): none for the window of step 1 alone, and no point for it.
  train = [r for r in records if r['kind'] == 'train']
  assert train[0]['clips_per_sec'] is None and train[1]['clips_per_sec'] > 0, train
  assert [s for s, _ in events['clips_per_sec']] == [2] and events['clips_per_sec'][0][1] > 0

  x = np.random.RandomState(0).uniform(-1, 1, (1, 4, 32, 32, 3)).astype(np.float32)
  latest = training.restore_model(model_dir)  # name and classes from config.json
  prefix = training.restore_model(os.path.join(model_dir, 'ckpt-2'), 'i3d_rgb', 3)
  first = training.restore_model(os.path.join(model_dir, 'ckpt-1'), 'i3d_rgb')
  y = latest(x, training=False).numpy()
  assert y.shape == (1, 3)
  np.testing.assert_array_equal(prefix(x, training=False).numpy(), y)
  assert np.abs(first(x, training=False).numpy() - y).max() > 0
  h5 = str(tmp_path / 'm.weights.h5')
  latest.save_weights(h5)
  from_h5 = training.restore_model(h5, 'i3d_rgb')  # classes inferred from the logits kernel shape
  np.testing.assert_array_equal(from_h5(x, training=False).numpy(), y)
  with pytest.raises(FileNotFoundError):
    training.restore_model(str(tmp_path), 'i3d_rgb', 3)
  with pytest.raises(ValueError, match=r'is a run of i3d_rgb \(its config.json\), not of i3d_flow: pass --model=i3d_rgb'):
    training.restore_model(model_dir, 'i3d_flow')

  # A rerun into this model_dir with another model is refused before anything is written (it used to
  # rewrite config.json, then die on the checkpoint's shapes, leaving the run unrestorable).
  before = open(os.path.join(model_dir, 'config.json'), 'rb').read()
  other = [c.replace('--model=i3d_rgb', '--model=i3d_flow') for c in cmd]
  proc = subprocess.run(other, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                        timeout=400)
  assert proc.returncode == 2, proc.stderr[-2000:]
  line = proc.stderr.strip().splitlines()[-1]
  assert line.startswith('train: ValueError: ') and "model 'i3d_rgb' -> 'i3d_flow'" in line and 'another --model_dir' in line
  assert open(os.path.join(model_dir, 'config.json'), 'rb').read() == before
  assert restore.restore_model(model_dir).name == 'i3d_rgb'
  # The same configuration with more steps resumes, as before.
  more = [c.replace('--train_steps=2', '--train_steps=3') for c in cmd]
  proc = subprocess.run(more, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                        timeout=400)
  assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1].startswith('train: i3d_rgb step 3 in')
  # The run's own config.json as --config, one flag on top: the same run, resumed to step 4.
  again = [sys.executable, 'experiments/train.py', f'--config={model_dir}/config.json', '--train_steps=4']
  proc = subprocess.run(again, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                        timeout=400)
  assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1].startswith('train: i3d_rgb step 4 in'), (
      proc.stderr[-2000:])


def test_train_flags_are_the_config_fields_and_config_files_sit_under_flags(tmp_path):
  """One flag per TrainConfig field (name, default, help); --config values, then the flags given."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from i3d_tf import cli  # pylint: disable=g-import-not-at-top
  fv = flags.FlagValues()
  cli.define_dataclass_flags(training.TrainConfig, fv)
  fields = dataclasses.fields(training.TrainConfig)
  assert set(fv) == {f.name for f in fields}
  fv(['train'])
  defaults = training.TrainConfig()
  for f in fields:
    value = fv[f.name].value
    assert (tuple(int(v) for v in value) if f.name == 'lr_boundaries' else value) == getattr(defaults, f.name)
    assert fv[f.name].help.endswith(f.metadata['help'])  # enum flags prefix their choices
  assert fv['lr_schedule'].parser.enum_values == ['piecewise', 'plateau', 'constant']
  path = tmp_path / 'row.json'
  path.write_text(json.dumps({'model': 'i3d_flow', 'num_classes': 101, 'train_data': '/d/train-*',
                              'model_dir': '/r', 'lr_boundaries': [5, 9], 'train_steps': 50}))
  fv = flags.FlagValues()
  cli.define_dataclass_flags(training.TrainConfig, fv)
  fv(['train', '--train_steps=7', '--lr_boundaries=1,2,3', '--nojit_compile'])
  config = cli.dataclass_from_flags(training.TrainConfig, fv, str(path), required=('train_data', 'model_dir'))
  assert (config.model, config.num_classes, config.train_steps, config.lr_boundaries) == ('i3d_flow', 101, 7,
                                                                                           (1, 2, 3))
  with pytest.raises(cli.UsageError, match='--num_classes must be given'):
    cli.dataclass_from_flags(training.TrainConfig, fv, None, required=('num_classes',))
  path.write_text('{"modle": "i3d_rgb"}')
  with pytest.raises(cli.UsageError, match='Unknown training config keys'):
    cli.dataclass_from_flags(training.TrainConfig, fv, str(path))


def _train_tiny(tmp_path, name, **kw):
  config = _config(model_dir=str(tmp_path / name), **kw)
  trainer = training.Trainer(config, model_fn=_tiny(config))
  return trainer, trainer.train()


def test_transfer_fixed_and_full(tmp_path):
  source, _ = _train_tiny(tmp_path, 'source', num_classes=4, train_steps=3, checkpoint_every=3)
  src_backbone = transfer.weights_digest(source.model, include_classifier=False)
  assert any('moving_mean' in k for k in src_backbone)

  fixed = training.Trainer(_config(num_classes=2, init=str(tmp_path / 'source'), transfer='fixed',
                                   model_dir=str(tmp_path / 'fixed'), train_steps=4, learning_rate=0.5),
                           model_fn=_tiny(_config()))
  assert fixed.init_report['source_classes'] == 4
  clf_before = {k: v for k, v in transfer.weights_digest(fixed.model).items() if transfer.is_classifier_variable(k)}
  assert [v.shape[-1] for k, v in clf_before.items() if k.endswith('kernel')] == [2]
  assert sorted(v.path for v in fixed.model.trainable_variables) == sorted(clf_before)
  fixed.train()
  after = transfer.weights_digest(fixed.model)
  for k, v in src_backbone.items():  # kernels, BN offsets and BN moving statistics untouched
    np.testing.assert_array_equal(after[k], v, err_msg=k)
  assert max(np.abs(after[k] - v).max() for k, v in clf_before.items()) > 1e-4

  full = training.Trainer(_config(num_classes=2, init=str(tmp_path / 'source'), transfer='full',
                                  model_dir=str(tmp_path / 'full'), train_steps=4),
                          model_fn=_tiny(_config()))
  start = transfer.weights_digest(full.model, include_classifier=False)
  for k, v in src_backbone.items():
    np.testing.assert_array_equal(start[k], v, err_msg=k)  # initialised from the source backbone
  full.train()
  after = transfer.weights_digest(full.model, include_classifier=False)
  kernels = [k for k in src_backbone if k.endswith('kernel')]
  assert all(np.abs(after[k] - src_backbone[k]).max() > 1e-6 for k in kernels)
  mean = 'Conv3d_1a_7x7/batch_norm/moving_mean'
  assert np.abs(after[mean] - src_backbone[mean]).max() > 0


def test_transfer_needs_checkpoint_and_matching_backbone(tmp_path):
  with pytest.raises(ValueError, match='transfer=fixed'):
    _config(transfer='fixed').validate()
  a, b = testing.tiny_i3d(3), I3D('rgb', 3, input_shape=(4, 32, 32, 3))
  with pytest.raises(ValueError, match='Cannot copy the backbone'):
    transfer.copy_backbone(a, b)


def test_inflate_2d_init(tmp_path):
  model_2d = InceptionV1(num_classes=5)
  path = str(tmp_path / 'inception_v1.weights.h5')
  model_2d.save_weights(path)
  trainer = training.Trainer(_config(init=f'inflate_2d:{path}', train_steps=0))
  assert trainer.init_report['init'] == 'inflate_2d' and trainer.init_report['inflated']
  k2 = model_2d.get_layer('Conv2d_1a_7x7').conv.kernel.numpy()
  k3 = trainer.model.get_layer('Conv3d_1a_7x7').conv.kernel.numpy()
  np.testing.assert_allclose(k3, inflation.inflate_kernel(k2, 7), rtol=1e-6)


def test_inflate_2d_init_for_every_model_built_on_inception_v1(tmp_path):
  from i3d_tf import build_model  # pylint: disable=g-import-not-at-top
  model_2d = InceptionV1(num_classes=1000)
  path = str(tmp_path / 'inception_v1.weights.h5')
  model_2d.save_weights(path)
  k2 = model_2d.get_layer('Conv2d_1a_7x7').conv.kernel.numpy()
  two = build_model('two_stream_i3d', 4)
  report = transfer.init_from_2d(two, 'two_stream_i3d', path)
  assert report['inflated'] == 2 * 57 and len(report['skipped']) == 2  # both streams, fresh classifiers
  np.testing.assert_allclose(two.get_layer('Flow').get_layer('Conv3d_1a_7x7').conv.kernel.numpy()[0, ..., 0, :],
                             k2.mean(axis=2) / 7, rtol=1e-5)
  lstm = build_model('convnet_lstm', 4)
  report = transfer.init_from_2d(lstm, 'convnet_lstm', path)
  assert report['init'] == 'inception_v1_2d' and report['copied'] >= 57
  with pytest.raises(ValueError, match='c3d is trained from scratch'):
    transfer.init_from_2d(build_model('c3d', 4, input_shape=(16, 112, 112, 3)), 'c3d', path)


def test_mixed_precision_bfloat16_step_has_float32_logits_loss(tmp_path):
  trainer, m = _train_tiny(tmp_path, 'bf16', mixed_precision='bfloat16', train_steps=2)
  assert keras.mixed_precision.global_policy().name == 'float32'  # restored after the build
  assert trainer.model.get_layer('Conv3d_1a_7x7').compute_dtype == 'bfloat16'
  assert trainer.model.get_layer('Conv3d_1a_7x7').conv.kernel.dtype == 'float32'  # float32 master weights
  assert m['loss_dtype'] == 'float32'
  assert m['model_logits_dtype'] == 'float32'  # the Logits* head runs in float32
  assert trainer.model.get_layer('Logits.Conv3d_0c_1x1').compute_dtype == 'float32'
  assert np.isfinite(m['train_loss']) and m['step'] == 2


def test_mixed_precision_float16_uses_loss_scaling(tmp_path):
  # The head pool (tf.nn.avg_pool) has no float16 CPU kernel; the float32 head makes it run here.
  trainer, m = _train_tiny(tmp_path, 'f16', mixed_precision='float16', train_steps=2)
  assert m['model_logits_dtype'] == 'float32'
  assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
  assert m['loss_dtype'] == 'float32' and np.isfinite(m['train_loss'])
  assert float(trainer.optimizer.dynamic_scale.numpy()) > 1.0


def test_plateau_controller_divides_by_10_after_patience():
  c = training.PlateauController(patience=2, factor=0.1)
  assert [c.update(l) for l in (1.0, 0.9, 0.95, 0.91)] == [False, False, False, True]
  assert c.lr(0.1) == pytest.approx(0.01)
  assert [c.update(l) for l in (0.8, 0.85, 0.8)] == [False, False, True]  # 0.8 is not < best 0.8
  assert c.lr(0.1) == pytest.approx(0.001) and int(c.reductions.numpy()) == 2
  ckpt = tf.train.Checkpoint(plateau=c)
  d = c.best.numpy(), c.bad_evals.numpy(), c.scale.numpy()
  path = ckpt.write(os.path.join(os.environ.get('TMPDIR', '/tmp'), f'plateau_{os.getpid()}'))
  fresh = training.PlateauController(patience=2, factor=0.1)
  tf.train.Checkpoint(plateau=fresh).read(path).assert_consumed()
  assert (fresh.best.numpy(), fresh.bad_evals.numpy(), fresh.scale.numpy()) == d


def test_plateau_schedule_in_trainer(tmp_path):
  # min_delta larger than any loss change: every evaluation after the first is "no improvement".
  trainer, m = _train_tiny(tmp_path, 'plateau', lr_schedule='plateau', learning_rate=0.1, eval_every=1,
                           plateau_patience=2, plateau_min_delta=1e9, train_steps=5, eval_steps=1)
  train_lr = [r['learning_rate'] for r in trainer.history if r['kind'] == 'train']
  np.testing.assert_allclose(train_lr, [0.1, 0.1, 0.1, 0.01, 0.01], rtol=1e-9)
  assert [r['lr_reduced'] for r in trainer.history if r['kind'] == 'eval'] == [False, False, True, False, True]
  assert m['learning_rate'] == pytest.approx(0.001)
  assert float(trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.01)  # step 5 ran at 0.01


def test_piecewise_official_rgb_schedule():
  lr = training.LearningRate('piecewise', 0.1, (97_000, 108_000))
  np.testing.assert_allclose([lr(0), lr(96_999), lr(97_000), lr(107_999), lr(108_000), lr(110_000)],
                             [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-9)
  assert training.LearningRate('constant', 0.3)(10**6) == 0.3


def test_validation_averages_view_softmax_like_evaluation(tmp_path):
  """Two views whose mean logits pick class 1 while their mean softmax picks class 0 (the label): the trainer's
  validation must score it right, as evaluation.predict_video_batch does (one rule, `i3d_tf.scoring`)."""
  from i3d_tf import evaluation  # pylint: disable=g-import-not-at-top

  def model_fn(n):  # logits = 10 x the first pixel's three channels, in [-1, 1]
    inputs = keras.Input((None, 8, 8, 3))
    logits = keras.layers.Dense(n, name='Logits')(keras.layers.Lambda(lambda x: x[:, 0, 0, 0, :3] * 10.0)(inputs))
    return keras.Model(inputs, logits)

  views = np.full((1, 2, 2, 8, 8, 3), 128, np.uint8)  # [B, V, T, H, W, C] uint8 levels
  views[0, 0, 0, 0, 0] = (255, 128, 128)  # logits about (10, 0, 0)
  views[0, 1, 0, 0, 0] = (0, 153, 128)    # logits about (-10, 2, 0)
  labels = np.zeros((1,), np.int64)
  data = lambda ctx: tf.data.Dataset.from_tensor_slices((views, labels)).batch(1)
  config = _config(num_classes=3, train_steps=0, batch_size=1, train_data=None, eval_data=None)
  trainer = training.Trainer(config, model_fn=model_fn, train_dataset_fn=data, eval_dataset_fn=data)
  dense = trainer.model.get_layer('Logits')
  dense.set_weights([np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
  metrics = trainer.evaluate()
  logits = np.stack([trainer.model(views[0, v][None] / 127.5 - 1).numpy()[0] for v in range(2)])
  assert logits.mean(0).argmax() == 1  # averaging logits would call it wrong
  probs = evaluation.predict_video_batch(lambda x: trainer.model(x).numpy(), views / 127.5 - 1)
  assert probs.argmax(-1).tolist() == [0]
  assert metrics['eval_accuracy'] == 1.0 and metrics['eval_examples'] == 1
  np.testing.assert_allclose(metrics['eval_loss'], -np.log(probs[0, 0]), rtol=1e-5)


def test_rank3_logits_loss_averages_time_and_trains(tmp_path):
  labels = tf.constant([0, 2])
  logits = tf.random.stateless_normal((2, 5, 3), seed=(1, 2))
  expected = np.mean([tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits[:, t]).numpy()
                      for t in range(5)], axis=0)
  np.testing.assert_allclose(training.per_example_loss(labels, logits).numpy(), expected, rtol=1e-6)

  def per_time_model(n):
    inputs = keras.Input((None, None, None, 3))
    x = L.Unit(8, 3, 2, name='Conv3d_1a_7x7')(inputs)
    return keras.Model(inputs, build_head(x, n, temporal_average=False, head_pooling='global'))

  config = _config(model_dir=str(tmp_path / 'r3'), num_frames=4, train_steps=2)
  trainer = training.Trainer(config, model_fn=per_time_model)
  assert len(trainer.model.output.shape) == 3
  m = trainer.train()
  assert np.isfinite(m['train_loss']) and 0 <= m['eval_accuracy'] <= 1


def test_convnet_lstm_baseline_trains_and_restores(tmp_path):
  # Sec. 2.1 through the registry: per-time [B, T, C] logits, fixed-size Inception-v1 trunk built for the crop.
  assert restore.config_build_kwargs(dict(model='c3d', crop_size=32, num_frames=None))['input_shape'] == (
      16, 32, 32, 3)
  assert 'input_shape' not in restore.config_build_kwargs(dict(model='i3d_rgb', crop_size=32, num_frames=4))
  for name, frames in (('convnet_lstm', 3),):
    config = _config(model=name, model_dir=str(tmp_path / name), num_frames=frames, crop_size=32,
                     train_steps=1, batch_size=2, eval_data=None, learning_rate=0.01)
    trainer = training.Trainer(config)
    m = trainer.train()
    assert np.isfinite(m['train_loss']) and m['step'] == 1
    restored = training.restore_model(str(tmp_path / name))
    for a, b in zip(restored.weights, trainer.model.weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_weight_decay_is_half_l2_on_conv_kernels():
  model = testing.tiny_i3d(3)
  kernels = [v.numpy() for v in model.trainable_variables if v.path.endswith('kernel')]
  assert len(kernels) == 3  # two units and the logits conv; no bias, no BN offset
  expected = 1e-3 * sum((k.astype(np.float64) ** 2).sum() for k in kernels) / 2
  assert float(training.l2_weight_decay(model, 1e-3)) == pytest.approx(expected, rel=1e-5)
  assert float(training.l2_weight_decay(model, 0.0)) == 0.0


def test_config_validation_and_json_roundtrip(tmp_path):
  c = _config(lr_boundaries=(10, 20))
  path = c.write(str(tmp_path))
  with open(path) as f:
    assert training.TrainConfig.from_dict(json.load(f)) == c
  for bad in (dict(strategy='tpu'), dict(lr_schedule='cosine'), dict(mixed_precision='fp8'),
              dict(dropout_keep_prob=0.0), dict(lr_schedule='plateau', eval_data=None),
              dict(lr_boundaries=(20, 10)), dict(transfer='full', init='inflate_2d:x.h5'),
              dict(input_dtype='float16')):
    with pytest.raises(ValueError):
      _config(**bad).validate()
  with pytest.raises(ValueError, match='Unknown training config keys'):
    training.TrainConfig.from_dict({'modle': 'i3d_rgb'})


def test_trains_from_tfrecords_through_data_pipelines(tmp_path):
  from data_pipelines import tfrecord_format as fmt
  from data_pipelines.testing import write_records
  rng = np.random.RandomState(0)
  videos = []
  for i in range(6):
    label = i % 2
    frames = rng.randint(0, 60, (10, 40, 48, 3)).astype(np.uint8) + np.uint8(150 * label)
    flow = np.full((9, 40, 48, 2), 128, np.uint8)
    videos.append(fmt.encode_video(frames, flow, video_id=f'v{i}', label_index=label, jpeg_quality=90))
  write_records(str(tmp_path / 'train-00000-of-00001.tfrecord'), videos)
  pattern = str(tmp_path / 'train-*')
  digests = {}
  for dtype in ('uint8', 'float32'):  # levels scaled in the step (default) or in the pipeline: same run
    config = _config(num_classes=2, train_data=pattern, eval_data=pattern, batch_size=2, num_frames=4,
                     crop_size=32, train_steps=4, eval_every=4, learning_rate=0.1, input_dtype=dtype,
                     model_dir=str(tmp_path / f'run_{dtype}'))
    trainer = training.Trainer(config, model_fn=_tiny(config))
    before = trainer.evaluate()
    m = trainer.train()
    assert before['eval_examples'] == 6 and m['eval_examples'] == 6  # one pass, partial last batch kept
    assert np.isfinite(m['train_loss']) and m['eval_loss'] < before['eval_loss']
    digests[dtype] = (m['train_loss'], transfer.weights_digest(trainer.model))
  assert digests['uint8'][0] == pytest.approx(digests['float32'][0], rel=1e-5)
  for k, v in digests['float32'][1].items():
    np.testing.assert_allclose(digests['uint8'][1][k], v, rtol=1e-5, atol=1e-6, err_msg=k)

  # Labels past the classifier: refused before any step when the manifest says so, and by the loss at the first
  # batch when it does not (one-hot of an out-of-range label is all zeros: a loss of 0, silently).
  (tmp_path / 'manifest.json').write_text(json.dumps({'format_version': 2, 'labels': ['a', 'b'], 'subsets': {}}))
  one = _config(num_classes=1, train_data=pattern, batch_size=2, num_frames=4, crop_size=32, train_steps=2,
                model_dir=str(tmp_path / 'run_one_class'))
  with pytest.raises(ValueError, match=r'the records have 2 classes .* more than num_classes=1: pass --num_classes=2'):
    training.Trainer(one, model_fn=_tiny(one))
  assert not os.path.exists(one.model_dir)
  (tmp_path / 'manifest.json').unlink()
  trainer = training.Trainer(one, model_fn=_tiny(one))
  with pytest.raises(tf.errors.InvalidArgumentError, match='the records have more classes than num_classes'):
    trainer.train()
  with pytest.raises(tf.errors.InvalidArgumentError, match='a label is >= the number of classes'):
    training.per_example_loss(tf.constant([0, 3]), tf.zeros((2, 3)))


def test_jit_compile_step_matches_eager_graph_step(tmp_path):
  results = []
  for jit in (False, True):
    config = _config(model_dir=str(tmp_path / f'jit{jit}'), jit_compile=jit, train_steps=2, dropout_keep_prob=1.0)
    trainer = training.Trainer(config, model_fn=_tiny(config))
    trainer.train()
    results.append(transfer.weights_digest(trainer.model))
  for k, v in results[0].items():
    np.testing.assert_allclose(results[1][k], v, rtol=1e-3, atol=1e-5, err_msg=k)


def test_bn_momentum_override_moves_statistics_by_1_minus_momentum(tmp_path):
  means = []
  for momentum in (None, 0.5):
    config = _config(model_dir=str(tmp_path / f'bn{momentum}'), train_steps=1, bn_momentum=momentum)
    trainer = training.Trainer(config, model_fn=_tiny(config))
    bns = [l for l in trainer.model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 2 and all(l.momentum == (momentum or 0.999) for l in bns)
    trainer.train()
    means.append(trainer.model.get_layer('Conv3d_1a_7x7').bn.moving_mean.numpy())
  # From the initial mean 0, one update gives (1 - momentum) * batch mean; the first batch is the same.
  np.testing.assert_allclose(means[1], means[0] * (0.5 / 0.001), rtol=1e-3, atol=1e-6)


def test_two_stream_synthetic_data_gives_each_example_one_label_for_both_streams():
  """learnable_dataset_fn(('rgb', 'flow')): both streams of an example ramp as its label says (they once drew
  their labels with different seeds, so RGB matched the labels for about 22% of the examples)."""
  from data_pipelines.synthetic import learnable_dataset_fn
  fn = learnable_dataset_fn('synthetic:24', ('rgb', 'flow'), 4, 24, training=False, num_frames=8, size=8)
  inputs, labels = next(iter(fn(tf.distribute.InputContext())))
  expected = labels.numpy() / 3 - 0.5  # the ramp's slope of each label: video(t) ~ slope * t, t in [-1, 1]
  for stream in ('rgb', 'flow'):
    x = inputs[stream].numpy()
    slope = (x[:, -1].mean(axis=(1, 2, 3)) - x[:, 0].mean(axis=(1, 2, 3))) / 2
    assert np.abs(slope - expected).max() < 0.05, stream  # noise std 0.2 over 8x8xC pixels: ~0.02
