"""The trainer refuses records holding videos without a label (label -1) before any work, in one line.

Before, a Kinetics test conversion (every label -1) given as --eval_data, or a train split with some CSV rows
without a label, ran until the first such batch and stopped there with TensorFlow's 'a label is negative'
assertion and a traceback.  Now `check_labelled` reads prepare_data's per-shard manifests first.
"""

import json
import os
from unittest import mock

import pytest
from absl import logging

from data_pipelines import conversion
from data_pipelines.datasets import VideoEntry
from data_pipelines.testing import write_video
from i3d_tf import training
from i3d_tf.training.loop import check_labelled

FAST = conversion.ConversionOptions(resize_short_side=16, flow='none')


def _convert(tmp_path, name, labels, num_shards=2, broken=()):
  """prepare_data's conversion of one tiny video per entry of `labels` (label indices, -1: none); the
  entries whose index is in `broken` are files that are not videos (they fail to convert)."""
  entries = []
  for i, label in enumerate(labels):
    path = str(tmp_path / 'videos' / f'{name}_{i}.avi')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if i in broken:
      with open(path, 'wb') as f:
        f.write(b'not a video')
    else:
      write_video(path, 4, height=16, width=16)
    entries.append(VideoEntry(f'{name}_{i}', path, label, '' if label < 0 else 'abc'[label]))
  out = str(tmp_path / name)
  summary = conversion.run_conversion(entries, out, 'test', num_shards, FAST, progress=False, labels=['a', 'b', 'c'])
  assert (summary['ok'], summary['failed']) == (len(labels) - len(broken), len(broken))
  return os.path.join(out, 'test-*.tfrecord')


def test_records_labels_counts_unlabelled_videos_per_shard(tmp_path):
  pattern = _convert(tmp_path, 'mixed', [0, -1, 2, -1, -1])
  found = conversion.records_labels(pattern)
  assert (found.videos, found.unlabelled, len(found.manifests), found.unrecorded) == (
      5, ['mixed_1', 'mixed_3', 'mixed_4'], 2, [])
  assert found.unlabelled_manifests == found.manifests  # both shards list some
  # One shard only (the glob names it): its own videos are counted.
  first = conversion.records_labels(pattern.replace('test-*', 'test-00000-of-00002'))
  assert (first.videos, first.unlabelled) == (2, ['mixed_1'])
  labelled = conversion.records_labels(_convert(tmp_path, 'labelled', [0, 1, 2]))
  assert (labelled.videos, labelled.unlabelled) == (3, [])
  assert (labelled.unlabelled_manifests, len(labelled.manifests)) == ([], 2)
  later = conversion.records_labels(_convert(tmp_path, 'later', [0, 1, -1, -1]))  # shard 0 labelled, shard 1 not
  assert (later.videos, later.unlabelled) == (4, ['later_2', 'later_3'])
  assert [os.path.basename(m) for m in later.unlabelled_manifests] == ['shard-test-00001-of-00002.json']
  assert conversion.records_labels(str(tmp_path / 'nothing' / '*.tfrecord')) == conversion.RecordedLabels(
      0, [], [], [], [], [])


def test_missing_manifests_are_listed_damaged_ones_named(tmp_path):
  (tmp_path / 'train-00000-of-00001.tfrecord').write_bytes(b'')  # no manifest
  (tmp_path / 'other.tfrecord').write_bytes(b'')  # not a shard name
  for k in range(3):
    (tmp_path / f'train-0000{k}-of-00003.tfrecord').write_bytes(b'')
  (tmp_path / 'manifests').mkdir()
  (tmp_path / 'manifests' / 'shard-train-00000-of-00003.json').write_text('[{"id": "x", "lab')  # truncated
  (tmp_path / 'manifests' / 'shard-train-00001-of-00003.json').mkdir()  # unreadable: a folder
  (tmp_path / 'manifests' / 'shard-train-00002-of-00003.json').write_text(
      json.dumps([{'id': 'x', 'label': '-1', 'status': 'ok'}]))  # a label that is not an index
  found = conversion.records_labels(str(tmp_path / '*.tfrecord'))
  assert (found.videos, found.unlabelled, found.manifests) == (0, [], [])
  assert sorted(os.path.basename(f) for f in found.unrecorded) == ['other.tfrecord', 'train-00000-of-00001.tfrecord']
  manifests = str(tmp_path / 'manifests')
  assert found.damaged == [f'{manifests}/shard-train-00000-of-00003.json (not JSON)',
                           f'{manifests}/shard-train-00001-of-00003.json (unreadable)',
                           f'{manifests}/shard-train-00002-of-00003.json (not a list of video records with '
                           'integer labels)']
  # Beside them, a converted folder is still read (the count says how many videos its manifests list).
  found = conversion.records_labels([str(tmp_path / '*.tfrecord'), _convert(tmp_path, 'beside', [-1, 0])])
  assert (found.videos, found.unlabelled, len(found.unrecorded), len(found.damaged)) == (2, ['beside_0'], 2, 3)


def test_a_damaged_manifest_is_refused_a_missing_one_warned(tmp_path):
  pattern = _convert(tmp_path, 'damaged', [0, -1, 1, -1], num_shards=2)
  manifest = tmp_path / 'damaged' / 'manifests' / 'shard-test-00001-of-00002.json'
  manifest.write_text(manifest.read_text()[:100])  # truncated: the unlabelled video of shard 1 goes unseen
  with pytest.raises(ValueError, match=r'^--train_data=.*: the shard manifest .*shard-test-00001-of-00002\.json '
                     r'\(not JSON\) is damaged, so the labels of its shard cannot be checked: convert that subset '
                     r'again \(prepare_data --overwrite\)$'):
    check_labelled(_config(train_data=pattern))
  manifest.unlink()  # no manifest at all (records from another tool): checked as read, and said so
  with mock.patch.object(logging, 'warning') as warning:
    with pytest.raises(ValueError, match=r': 1 of the 2 videos its shard manifests list have no label'):
      check_labelled(_config(train_data=pattern))
  assert warning.call_count == 1 and warning.call_args[0][3:5] == (1, str(tmp_path / 'damaged' /
                                                                        'test-00001-of-00002.tfrecord'))


def test_trainer_refuses_a_glob_matching_nothing_before_writing(tmp_path):
  missing = str(tmp_path / 'nope' / 'train-*.tfrecord')
  with pytest.raises(ValueError, match=r'^--eval_data=.*nope/train-\*\.tfrecord: no file matches it \(nothing was '
                     r'written\)'):
    training.Trainer(_config(eval_data=missing, model_dir=str(tmp_path / 'run')))
  with pytest.raises(ValueError, match=r'^--train_data=.*: no file matches it'):
    training.train(_config(train_data=missing, model_dir=str(tmp_path / 'run')))
  assert not os.path.exists(tmp_path / 'run')  # train() wrote config.json, eval/ and train/ before failing


def test_failed_videos_are_not_counted(tmp_path):
  pattern = _convert(tmp_path, 'with_failure', [0, 1, -1], num_shards=1, broken={2})
  found = conversion.records_labels(pattern)
  assert (found.videos, found.unlabelled) == (2, [])  # the unlabelled video failed: it is not in the shard
  check_labelled(_config(train_data=pattern))


def _config(**kw):
  base = dict(model='i3d_rgb', num_classes=3, train_data='synthetic:8', eval_data='synthetic:4', batch_size=2,
              train_steps=1, learning_rate=0.01, lr_schedule='constant', progress_bar=False)
  base.update(kw)
  return training.TrainConfig(**base)


def test_trainer_refuses_unlabelled_eval_and_train_records_in_one_line(tmp_path):
  unlabelled = _convert(tmp_path, 'kinetics_test', [-1, -1, -1])
  mixed = _convert(tmp_path, 'mixed', [1, -1, 0], num_shards=1)
  with pytest.raises(ValueError) as e:
    training.Trainer(_config(eval_data=unlabelled, model_dir=str(tmp_path / 'run1')))
  message = str(e.value)
  assert '\n' not in message
  assert message.startswith(
      f'--eval_data={unlabelled}: 3 of the 3 videos its shard manifests list have no label (label -1, e.g. '
      'kinetics_test_0, ')
  assert 'listed in ' + str(tmp_path / 'kinetics_test' / 'manifests' / 'shard-test-00000-of-00002.json') + ')' in message
  assert 'experiments/evaluate.py' in message
  with pytest.raises(ValueError, match=r'^--train_data=.*: 1 of the 3 videos its shard manifests list have no label '
                     r'\(label -1, e\.g\. mixed_1, listed in '):
    training.Trainer(_config(train_data=mixed, model_dir=str(tmp_path / 'run2')))
  check_labelled(_config(train_data=_convert(tmp_path, 'labelled', [0, 1, 2])))  # labelled records pass
