"""Class lists beside records read through a glob with a wildcard in the folder part (evaluate, train)."""

import json

import pytest

from i3d_tf import evaluation
from i3d_tf.training.config import TrainConfig
from i3d_tf.training.loop import check_class_count


def _folder(root, name, labels):
  folder = root / name
  folder.mkdir()
  (folder / 'test-00000-of-00001.tfrecord').write_bytes(b'')
  (folder / 'manifest.json').write_text(json.dumps({'labels': labels}))
  return folder


def test_wildcard_folders_are_checked(tmp_path):
  _folder(tmp_path, 'a', ['x', 'y', 'z'])
  _folder(tmp_path, 'b', ['x', 'y', 'z'])
  pattern = str(tmp_path / '*' / 'test-*.tfrecord')
  # Before: manifest.json was looked for in the folder '<tmp>/*', which does not exist: nothing was checked.
  assert evaluation.manifest_class_names(pattern) == ['x', 'y', 'z']
  with pytest.raises(evaluation.ClassListMismatchError, match=r"a/manifest.json\) differs from the model"):
    evaluation.check_records_class_list(pattern, ['x', 'z', 'y'])
  evaluation.check_records_class_list(pattern, ['x', 'y', 'z'])
  with pytest.raises(ValueError, match='the records have 3 classes .*more than num_classes=2: pass --num_classes=3'):
    check_class_count(TrainConfig(num_classes=2, train_data=pattern))
  check_class_count(TrainConfig(num_classes=3, train_data=pattern))
  _folder(tmp_path, 'c', ['z', 'y', 'x'])  # another class list under the same glob: label indices disagree
  with pytest.raises(ValueError, match='converted with different class lists'):
    evaluation.manifest_class_names(pattern)
  with pytest.raises(ValueError, match='converted with different class lists'):
    check_class_count(TrainConfig(num_classes=3, eval_data=pattern))
