"""Evaluation of records without labels (label -1, e.g. the Kinetics test set), alone or mixed with labelled ones.

`evaluation.evaluate` (what experiments/evaluate.py calls) raised in compute_metrics on label -1, so nothing at
all was written; now the predictions are written, the metrics computed on the labelled videos, and the
unlabelled ones counted and reported in one line.
"""

import csv
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import tfrecord_format as fmt
from data_pipelines.testing import write_records
from i3d_tf import evaluation as E

NAMES = ['dark', 'grey', 'bright']


def brightness_model(x, training=False):
  """Logits 10 * (-m, 0, m) of the mean m of each input: dark videos are class 0, bright ones class 2."""
  m = tf.reduce_mean(x, axis=[1, 2, 3, 4])
  return 10.0 * tf.stack([-m, tf.zeros_like(m), m], axis=1)


def video(vid, level, label=-1, text=''):
  frames = np.full((4, 16, 16, 3), level, np.uint8)
  return fmt.encode_video(frames, None, video_id=vid, label_index=label, label_text=text)


def _rows(path):
  return list(csv.DictReader(open(path)))


def test_unlabelled_records_write_predictions_and_say_accuracy_cannot_be_computed(tmp_path, capsys):
  write_records(str(tmp_path / 'test-00000-of-00001.tfrecord'),
                [video('k/a', 0), video('k/b', 255), video('k/c', 0)])  # Kinetics test: label -1, no text
  records = E.records_with_video_ids(str(tmp_path / 'test-*'), 'i3d_rgb', crop_size=16)
  out = tmp_path / 'eval'
  results = E.evaluate(brightness_model, records, 3, str(out), class_names=NAMES, progress=False)
  message = ('accuracy cannot be computed: none of the 3 videos has a label (label -1 in the records, as in the '
             'Kinetics test set); their predictions are written (predictions.csv)')
  assert capsys.readouterr().err.strip().splitlines()[-1] == f'evaluate: {message}'
  on_disk = json.loads((out / 'results.json').read_text())
  assert on_disk['metrics'] == {'top1': None, 'top5': None, 'mean_class_accuracy': None, 'num_videos': 0,
                                'num_classes': 3, 'num_unlabelled': 3}
  assert on_disk['unlabelled'] == message and on_disk['num_predictions'] == 3
  assert on_disk['per_class_accuracy'] is None and results['metrics'] == on_disk['metrics']
  assert not (out / 'confusion_matrix.png').exists()
  confident = 1 / (1 + math.exp(-10) + math.exp(-20))  # softmax of 10 * (1, 0, -1)
  assert [(r['video_id'], r['label'], r['label_name'], r['predicted_name'], r['confidence'], r['correct'])
          for r in _rows(out / 'predictions.csv')] == [
              ('k/a', '-1', '', 'dark', f'{confident:.6f}', ''), ('k/b', '-1', '', 'bright', f'{confident:.6f}', ''),
              ('k/c', '-1', '', 'dark', f'{confident:.6f}', '')]
  assert E.format_metrics(results['metrics']) == (
      'no accuracy: none of the 3 videos has a label (label -1 in the records)')
  # Without an output folder: the same metrics, nothing raised.
  records = E.records_with_video_ids(str(tmp_path / 'test-*'), 'i3d_rgb', crop_size=16)
  assert E.evaluate(brightness_model, records, 3, None, progress=False)['metrics'] == on_disk['metrics']


def test_labelled_and_unlabelled_records_metrics_on_the_labelled_ones(tmp_path, capsys):
  write_records(str(tmp_path / 'test-00000-of-00001.tfrecord'), [
      video('a', 0, 0, 'dark'),  # predicted dark: right
      video('u1', 255),  # no label
      video('b', 255, 1, 'grey'),  # predicted bright: wrong
      video('u2', 0)])
  (tmp_path / 'confusion_matrix.png').write_bytes(b'stale')  # kept off: this run draws its own
  records = E.records_with_video_ids(str(tmp_path / 'test-*'), 'i3d_rgb', crop_size=16)
  results = E.evaluate(brightness_model, records, 3, str(tmp_path), class_names=NAMES, progress=False)
  message = '2 of 4 videos have no label (label -1 in the records): metrics on the 2 labelled ones, predictions.csv lists all 4'
  assert capsys.readouterr().err.strip().splitlines()[-1] == f'evaluate: {message}'
  on_disk = json.loads((tmp_path / 'results.json').read_text())
  assert on_disk['metrics'] == {'top1': 0.5, 'top5': 1.0, 'mean_class_accuracy': 0.5, 'num_videos': 2,
                                'num_classes': 3, 'num_unlabelled': 2}
  assert on_disk['per_class_accuracy'][:2] == [1.0, 0.0] and math.isnan(on_disk['per_class_accuracy'][2])
  assert on_disk['unlabelled'] == message and on_disk['num_predictions'] == 4
  assert (tmp_path / 'confusion_matrix.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  rows = _rows(tmp_path / 'predictions.csv')
  assert [(r['video_id'], r['label'], r['predicted'], r['correct']) for r in rows] == [
      ('a', '0', '0', '1'), ('u1', '-1', '2', ''), ('b', '1', '2', '0'), ('u2', '-1', '0', '')]
  assert E.format_metrics(results['metrics']) == (
      'top-1 50.00%  top-5 100.00%  mean-class 50.00%  (2 videos; 2 without a label left out)')


def test_labelled_metrics_counts_and_refusals():
  scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
  m = E.labelled_metrics([0, -1, 2], scores)
  assert m == {'top1': 0.5, 'top5': 1.0, 'mean_class_accuracy': 0.5, 'num_videos': 2, 'num_classes': 3,
               'num_unlabelled': 1}
  assert E.labelled_metrics([0, 1, 1], scores)['num_unlabelled'] == 0
  assert E.format_metrics(E.labelled_metrics([0, 1, 1], scores)) == (
      'top-1 66.67%  top-5 100.00%  mean-class 75.00%  (3 videos)')
  with pytest.raises(ValueError, match=r'labels must be in \[0, 3\). Received: labels in \[0, 3\]'):
    E.labelled_metrics([0, -1, 3], scores)  # another class list: still no metric
  with pytest.raises(ValueError, match='labels must be in'):
    E.labelled_metrics([0, -2, 1], scores)  # only -1 means "no label"
  with pytest.raises(ValueError, match='scores must be'):
    E.labelled_metrics([-1, -1], scores)
  with pytest.raises(ValueError, match='labels must be in'):
    E.compute_metrics([0, -1, 2], scores)  # the strict function stays strict


def test_average_results_refuses_a_split_without_labels():
  labelled = {'metrics': {'top1': 0.5, 'top5': 0.9, 'mean_class_accuracy': 0.4}}
  unlabelled = {'metrics': {'top1': None, 'top5': None, 'mean_class_accuracy': None}}
  assert E.average_results([labelled, labelled])['top1'] == 0.5
  with pytest.raises(ValueError) as e:
    E.average_results([labelled, unlabelled])
  assert str(e.value) == ('split 2 has no top1: its test records carry no labels (label -1), so there is no accuracy '
                          'to average; average the results of labelled test sets only')
