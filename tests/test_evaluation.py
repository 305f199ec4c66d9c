"""Evaluation: metrics on a hand-made prediction set, fusion, views, result files, split averaging."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from i3d_tf import TwoStreamI3D
from i3d_tf import evaluation as E
from i3d_tf import scoring
from i3d_tf.checkpoints import restore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 6 videos, 4 classes.  Rows are scores; the comment gives the rank of the true label.
LABELS = np.array([0, 0, 1, 2, 3, 3])
SCORES = np.array([
    [0.9, 0.05, 0.03, 0.02],  # label 0 rank 1
    [0.1, 0.6, 0.2, 0.1],  # label 0 rank 3 (wrong; 0.1 ties with class 3 -> class 0 wins the tie)
    [0.2, 0.5, 0.2, 0.1],  # label 1 rank 1
    [0.5, 0.3, 0.15, 0.05],  # label 2 rank 3
    [0.1, 0.2, 0.3, 0.4],  # label 3 rank 1
    [0.4, 0.3, 0.2, 0.1],  # label 3 rank 4
])


def test_top_k_hand_made():
  assert E.top_k_accuracy(LABELS, SCORES, 1) == pytest.approx(3 / 6)
  assert E.top_k_accuracy(LABELS, SCORES, 2) == pytest.approx(3 / 6)
  assert E.top_k_accuracy(LABELS, SCORES, 3) == pytest.approx(5 / 6)
  assert E.top_k_accuracy(LABELS, SCORES, 5) == pytest.approx(1.0)  # k > K: everything is in the top-K


def test_mean_class_accuracy_hand_made():
  # Per class: 0 -> 1/2, 1 -> 1/1, 2 -> 0/1, 3 -> 1/2; mean = (0.5 + 1 + 0 + 0.5) / 4.
  np.testing.assert_allclose(E.per_class_accuracy(LABELS, SCORES), [0.5, 1.0, 0.0, 0.5])
  assert E.mean_class_accuracy(LABELS, SCORES) == pytest.approx(0.5)
  # A class absent from the labels does not count.
  labels = np.array([0, 0, 0, 1])
  scores = np.eye(3)[[0, 0, 1, 1]]
  assert E.mean_class_accuracy(labels, scores) == pytest.approx((2 / 3 + 1) / 2)
  assert E.top_k_accuracy(labels, scores, 1) == pytest.approx(3 / 4)


def test_compute_metrics_and_confusion():
  m = E.compute_metrics(LABELS, SCORES)
  assert m == {'top1': pytest.approx(0.5), 'top5': pytest.approx(1.0), 'mean_class_accuracy': pytest.approx(0.5),
               'num_videos': 6, 'num_classes': 4}
  cm = E.confusion_matrix(LABELS, E.predictions_from_scores(SCORES), 4)
  assert cm.sum() == 6 and np.trace(cm) == 3
  assert cm[0, 1] == 1 and cm[2, 0] == 1 and cm[3, 0] == 1


def test_metric_errors():
  with pytest.raises(ValueError, match='labels must be in'):
    E.top_k_accuracy([4], np.zeros((1, 4)))
  with pytest.raises(ValueError, match='scores must be'):
    E.top_k_accuracy([0, 1], np.zeros((3, 4)))
  with pytest.raises(ValueError, match='k must be'):
    E.top_k_accuracy([0], np.zeros((1, 4)), 0)


def test_views_are_folded_and_softmax_averaged():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 3, 4, 1, 1, 2))  # B=2, V=3
  w = rng.normal(size=(2, 5))
  predict = lambda v: v.mean(axis=(1, 2, 3)) @ w  # [B', C] -> [B', 5]
  probs = E.predict_video_batch(predict, x)
  expected = np.stack([np.mean([scoring.softmax(predict(x[i, v][None]))[0] for v in range(3)], 0) for i in range(2)])
  np.testing.assert_allclose(probs, expected, atol=1e-12)
  # Whole-video inputs (no view axis) and two-stream dicts.
  assert E.predict_video_batch(predict, x[:, 0]).shape == (2, 5)
  two = E.predict_video_batch(lambda d: predict(d['rgb']) + predict(d['flow']), {'rgb': x, 'flow': x})
  assert two.shape == (2, 5)


def test_write_results_files(tmp_path):
  names = ['open', 'close', 'left', 'right']
  results = E.write_results(str(tmp_path), LABELS, SCORES, [f'v{i}' for i in range(6)], 4, names,
                            extra={'model': 'i3d_rgb'})
  on_disk = json.loads((tmp_path / 'results.json').read_text())
  assert on_disk['metrics']['top1'] == pytest.approx(0.5)
  assert on_disk['model'] == 'i3d_rgb' and on_disk['class_names'] == names
  assert results['metrics'] == on_disk['metrics']
  rows = list(csv.DictReader(open(tmp_path / 'predictions.csv')))
  assert [r['video_id'] for r in rows] == [f'v{i}' for i in range(6)]
  assert rows[0]['predicted_name'] == 'open' and rows[0]['correct'] == '1' and rows[1]['correct'] == '0'
  png = (tmp_path / 'confusion_matrix.png').read_bytes()
  assert png[:8] == b'\x89PNG\r\n\x1a\n'
  assert not [p for p in os.listdir(tmp_path) if p.startswith('.tmp')]


def test_evaluate_model_on_whole_videos(tmp_path):
  import i3d_tf
  model = i3d_tf.build_model('i3d_rgb', 3)
  rng = np.random.default_rng(2)
  # Whole videos of different lengths, batch size 1, as make_dataset yields at test.
  data = [(rng.uniform(-1, 1, (1, t, 32, 32, 3)).astype('float32'), np.array([t % 3])) for t in (8, 12, 9)]
  results = E.evaluate(model, data, 3, str(tmp_path), class_names=['a', 'b', 'c'], progress=False)
  probs = results['_predictions']['probabilities']
  expected = np.concatenate([scoring.softmax(model(x, training=False).numpy()) for x, _ in data])
  np.testing.assert_allclose(probs, expected, atol=1e-5)
  assert results['metrics']['num_videos'] == 3 and (tmp_path / 'results.json').exists()


def test_load_model_refuses_random_weights_and_reads_h5(tmp_path):
  import i3d_tf
  from i3d_tf import features
  with pytest.raises(ValueError, match='No checkpoint'):
    restore.load_model('i3d_flow', 3, None)
  # Allowed random weights are one network run after run (a resumed extract_features mixed two networks'
  # features under one key, cosine 0.29), and the caller's NumPy stream is left where it was.
  import random  # pylint: disable=g-import-not-at-top
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
  random.seed(5)
  expected_next = random.Random(5).random()
  seed_before = context.global_seed()
  first, second = (restore.load_model('i3d_flow', 3, None, allow_random_weights=True) for _ in range(2))
  assert random.random() == expected_next and context.global_seed() == seed_before  # no global state changed
  assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first.weights, second.weights))
  rgb = restore.load_model('i3d_rgb', 3, None, allow_random_weights=True)  # another stream, another network
  assert rgb.weights[-2].shape == first.weights[-2].shape  # the logits kernel, [1, 1, 1, 1024, 3]
  assert not np.array_equal(rgb.weights[-2].numpy(), first.weights[-2].numpy())
  assert features.weights_identity(None) == f'random (seed {restore.RANDOM_WEIGHTS_SEED})' == features.RANDOM_WEIGHTS
  m = i3d_tf.build_model('i3d_flow', 3)
  path = str(tmp_path / 'flow.weights.h5')
  m.save_weights(path)
  restored = restore.load_model('i3d_flow', 3, path)
  x = np.random.default_rng(3).uniform(-1, 1, (1, 8, 32, 32, 2)).astype('float32')
  np.testing.assert_allclose(restored(x).numpy(), m(x).numpy(), atol=1e-6)
  with pytest.raises(FileNotFoundError):
    restore.load_model('i3d_flow', 3, str(tmp_path / 'missing.weights.h5'))
  # An RGB checkpoint for the flow stream: one line with the variable, both shapes and the fix (Keras' own
  # message stopped at a colon, the shapes after a line break and a page of values).
  rgb = str(tmp_path / 'rgb.weights.h5')
  i3d_tf.build_model('i3d_rgb', 3).save_weights(rgb)
  with pytest.raises(ValueError) as e:
    restore.load_model('i3d_flow', 3, rgb)
  assert str(e.value) == (
      f'{rgb} does not fit i3d_flow: Conv3d_1a_7x7/conv_3d/kernel is (7, 7, 7, 2, 64) in the model but '
      '(7, 7, 7, 3, 64) in the file (input channels: 3 in the file; 3 for an RGB stream, 2 for a flow stream: '
      'pass the checkpoint of this stream)')
  assert restore._mismatch('something else\nwent   wrong') == 'something else went wrong'  # pylint: disable=protected-access


def test_average_splits_binary(tmp_path):
  paths = []
  for split, top1 in zip((1, 2, 3), (0.8, 0.9, 0.7)):
    d = tmp_path / f'split{split}'
    d.mkdir()
    (d / 'results.json').write_text(json.dumps({'metrics': {'top1': top1, 'top5': 1.0,
                                                            'mean_class_accuracy': top1 - 0.1}}))
    paths.append(str(d / 'results.json'))
  out = tmp_path / 'avg.json'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'average_splits.py'),
                         f'--results={",".join(paths)}', f'--output={out}'], capture_output=True, text=True,
                        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 0, proc.stderr
  avg = json.loads(out.read_text())
  assert avg['top1'] == pytest.approx(0.8) and avg['num_splits'] == 3
  assert avg['mean_class_accuracy'] == pytest.approx(0.7)
  assert 'top-1' in proc.stdout.splitlines()[-1]


def test_evaluate_binary_two_stream_on_records(tmp_path):
  """evaluate.py on real SequenceExample shards: whole videos, two streams, ids and class names from the data."""
  from data_pipelines import tfrecord_format as fmt
  rng = np.random.default_rng(4)
  records = []
  for i, (n, label) in enumerate(((9, 0), (7, 1), (8, 1))):
    frames = rng.integers(0, 256, (n, 36, 40, 3), dtype=np.uint8)
    flow = rng.integers(0, 256, (n - 1, 36, 40, 2), dtype=np.uint8)
    records.append(fmt.serialize(fmt.encode_video(frames, flow, video_id=f'vid{i}', label_index=label)))
  fmt.write_tfrecord(str(tmp_path / 'test-00000-of-00002.tfrecord'), records[:2])
  fmt.write_tfrecord(str(tmp_path / 'test-00001-of-00002.tfrecord'), records[2:])
  (tmp_path / 'manifest.json').write_text(json.dumps({'summary': {'labels': ['open', 'close']}, 'videos': []}))
  out = tmp_path / 'eval'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'evaluate.py'),
                         '--model=two_stream_i3d', f'--eval_data={tmp_path}/test-*', '--num_classes=2',
                         '--allow_random_weights', '--crop_size=32', f'--output_dir={out}', '--fusion=softmax_mean',
                         '--precision=bfloat16'],
                        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1].startswith('evaluate two_stream_i3d (bfloat16): top-1')
  results = json.loads((out / 'results.json').read_text())
  assert results['precision'] == 'bfloat16'  # recorded with the numbers it gave
  assert results['metrics']['num_videos'] == 3 and results['class_names'] == ['open', 'close']
  assert results['fusion'] == 'softmax_mean'
  rows = list(csv.DictReader(open(out / 'predictions.csv')))
  assert [r['video_id'] for r in rows] == ['vid0', 'vid1', 'vid2']
  assert [r['label_name'] for r in rows] == ['open', 'close', 'close']


def test_two_stream_from_streams_sums_logits():
  import i3d_tf
  rgb, flow = i3d_tf.build_model('i3d_rgb', 3), i3d_tf.build_model('i3d_flow', 3)
  two = TwoStreamI3D(3, rgb_model=rgb, flow_model=flow)
  rng = np.random.default_rng(5)
  x = {'rgb': rng.uniform(-1, 1, (1, 8, 32, 32, 3)).astype('float32'),
       'flow': rng.uniform(-1, 1, (1, 8, 32, 32, 2)).astype('float32')}
  out = two(x, training=False).numpy()
  assert out.shape == (1, 3)
  np.testing.assert_allclose(out, rgb(x['rgb']).numpy() + flow(x['flow']).numpy(), atol=1e-5)


def test_recalibrate_batch_norm_is_the_mean_of_batch_statistics():
  import keras
  x = inp = keras.Input((4,))
  x = keras.layers.BatchNormalization(momentum=0.999)(x)
  model = keras.Model(inp, x)
  rng = np.random.default_rng(6)
  batches = [rng.normal(loc=3.0, size=(8, 4)).astype('float32') for _ in range(3)]
  assert E.recalibrate_batch_norm(model, [(b, None) for b in batches], num_batches=3) == 3
  bn = model.layers[-1]
  np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), atol=1e-5)
  np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([b.var(0) for b in batches], 0), atol=1e-4)
  assert bn.momentum == 0.999


def test_records_with_video_ids_names_undecodable_videos_and_bad_shards(tmp_path):
  """A record that fails to decode is dropped, named and counted as failed; the other ids stay aligned; a
  shard with a payload CRC error is skipped by name."""
  from data_pipelines import tfrecord_format as fmt
  from data_pipelines.testing import write_records
  frames = np.random.default_rng(0).integers(0, 256, (6, 36, 40, 3), dtype=np.uint8)
  videos = [fmt.encode_video(frames, None, video_id=f'v{i}', label_index=i) for i in range(3)]
  videos[1].images[3] = b'not a jpeg at all'  # record CRCs stay sound: only decoding fails
  write_records(str(tmp_path / 'test-00000-of-00002.tfrecord'), videos)
  write_records(str(tmp_path / 'test-00001-of-00002.tfrecord'), videos[:1] + videos[2:])
  bad = tmp_path / 'test-00001-of-00002.tfrecord'
  data = bytearray(bad.read_bytes())
  data[len(data) // 2] ^= 0xFF  # inside a payload: only the data CRC sees it
  bad.write_bytes(bytes(data))
  records = E.records_with_video_ids(str(tmp_path / 'test-*'), 'i3d_rgb', crop_size=32, skip_corrupt=True)
  out = E.run_predictions(lambda x: np.tile([[0.0, 1.0, 2.0]], (x.shape[0], 1)), records, progress=False)
  assert out['video_ids'].tolist() == ['v0', 'v2'] and out['labels'].tolist() == [0, 2]
  assert out['num_failed'] == 1 and out['skipped_videos'] == ['v1']
  assert records.skipped == [(str(tmp_path / 'test-00000-of-00002.tfrecord'), 'v1')]
  assert len(out['skipped_shards']) == 1 and out['skipped_shards'][0].startswith(str(bad))
  assert 'corrupted record' in out['skipped_shards'][0]


def test_evaluate_refuses_records_labelled_with_another_class_list(tmp_path):
  """A test folder converted on its own numbered its two classes 0 and 1: against a 3-class model that is a
  silent lie (100% top-1 for wrong predictions); both the manifest and every record's label text say so."""
  from data_pipelines import tfrecord_format as fmt
  from data_pipelines.testing import write_records
  frames = np.zeros((4, 16, 16, 3), np.uint8)
  videos = [fmt.encode_video(frames, None, video_id=f'{c}/{i}.avi', label_index=i, label_text=c)
            for i, c in enumerate(['b', 'c'])]
  write_records(str(tmp_path / 'test-00000-of-00001.tfrecord'), videos)
  (tmp_path / 'manifest.json').write_text(json.dumps({'format_version': 2, 'labels': ['b', 'c'], 'subsets': {}}))
  never = lambda x, training=False: pytest.fail('no video may be scored')
  records = E.records_with_video_ids(str(tmp_path / 'test-*'), 'i3d_rgb', crop_size=16)
  with pytest.raises(E.ClassListMismatchError) as e:
    E.evaluate(never, records, 3, class_names=['a', 'b', 'c'], progress=False)
  assert str(e.value) == (
      f"the records' class list ({tmp_path / 'manifest.json'}) differs from the model's class names: class 0 is 'b' "
      "in the records but 'a' for the model; convert the data with prepare_data --label_map=<the training data's "
      "manifest.json>, or pass the model's --class_names")
  # Without a manifest, each record's label text is checked against the model's name for its index.
  (tmp_path / 'manifest.json').unlink()
  records = E.records_with_video_ids(str(tmp_path / 'test-*'), 'i3d_rgb', crop_size=16)
  with pytest.raises(E.ClassListMismatchError) as e:
    E.evaluate(never, records, 3, class_names=['a', 'b', 'c'], progress=False)
  assert str(e.value).startswith(f"record 'b/0.avi' in {tmp_path / 'test-00000-of-00001.tfrecord'} has label 0 'b', "
                                 "but the model's class 0 is 'a': the records were converted with another class list")
  # The right names go through; a glob matching the manifest is named, not skipped as a corrupt shard.
  import tensorflow as tf
  model = lambda x, training=False: tf.tile([[0.0, 3.0]], [tf.shape(x)[0], 1])  # always class 1
  out = E.evaluate(model, E.records_with_video_ids(
      str(tmp_path / 'test-*'), 'i3d_rgb', crop_size=16), 2, class_names=['b', 'c'], progress=False)
  assert out['metrics']['top1'] == pytest.approx(0.5) and out['metrics']['num_videos'] == 2
  (tmp_path / 'manifest.json').write_text('{"labels": ["b", "c"]}')
  from data_pipelines.shards import NotATFRecordError
  with pytest.raises(NotATFRecordError, match='manifest.json is not a TFRecord file'):
    E.records_with_video_ids(str(tmp_path / '*'), 'i3d_rgb', crop_size=16)


def test_evaluate_binary_refuses_a_test_folder_converted_with_its_own_class_list(tmp_path):
  """The issue's case: training data classes [a, b, c]; the test folder, converted on its own, holds b and c
  only and numbered them 0 and 1.  evaluate.py reads the model's classes from its run (config.json ->
  training manifest) and refuses, where it used to report metrics of shifted labels."""
  from data_pipelines import tfrecord_format as fmt
  from data_pipelines.testing import write_records
  import i3d_tf
  train = tmp_path / 'train'
  train.mkdir()
  (train / 'manifest.json').write_text(json.dumps({'format_version': 2, 'labels': ['a', 'b', 'c'], 'subsets': {}}))
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'config.json').write_text(json.dumps({'model': 'i3d_rgb', 'num_classes': 3,
                                               'train_data': str(train / 'train-*.tfrecord')}))
  i3d_tf.build_model('i3d_rgb', 3).save_weights(str(run / 'model.weights.h5'))
  assert E.training_class_names(str(run / 'model.weights.h5')) == ['a', 'b', 'c']
  test = tmp_path / 'test'
  test.mkdir()
  frames = np.zeros((4, 36, 36, 3), np.uint8)
  write_records(str(test / 'test-00000-of-00001.tfrecord'),
                [fmt.encode_video(frames, None, video_id=f'{c}/{i}.avi', label_index=i, label_text=c)
                 for i, c in enumerate(['b', 'c'])])
  (test / 'manifest.json').write_text(json.dumps({'format_version': 2, 'labels': ['b', 'c'], 'subsets': {}}))
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'evaluate.py'), '--model=i3d_rgb',
                         '--num_classes=3', f'--checkpoint={run / "model.weights.h5"}', f'--eval_data={test}/test-*',
                         '--crop_size=32', f'--output_dir={tmp_path / "eval"}'],
                        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 2, proc.stderr[-2000:]
  line = proc.stderr.strip().splitlines()[-1]
  assert line.startswith("evaluate: ClassListMismatchError: the records' class list") and "class 0 is 'b'" in line
  assert not (tmp_path / 'eval' / 'results.json').exists()


def test_predictions_csv_names_an_unlabelled_row_no_class():
  """Label -1 (a Kinetics test row without a label) is not the last class (numpy's index -1)."""
  text = E.predictions_csv(['a', 'b'], [1, -1], [[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]], ['x', 'y', 'z'],
                                    top_k=2)
  rows = list(csv.DictReader(io.StringIO(text)))
  assert [(r['label'], r['label_name'], r['predicted_name'], r['correct']) for r in rows] == [
      ('1', 'y', 'y', '1'), ('-1', '', 'z', '')]
  assert rows[1]['top2'] == 'z:0.6000 y:0.3000'
