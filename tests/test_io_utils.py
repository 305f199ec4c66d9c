"""Atomic output files (one helper for the project)."""

import os

import numpy as np
import pytest

from data_pipelines import io_utils


def test_atomic_write_replaces_and_leaves_nothing_on_failure(tmp_path):
  path = os.path.join(tmp_path, 'sub', 'a.json')
  io_utils.atomic_write_json(path, {'x': 1})
  assert open(path).read() == '{\n  "x": 1\n}\n'
  with pytest.raises(RuntimeError):
    with io_utils.atomic_path(path) as tmp:
      with open(tmp, 'w') as f:
        f.write('half')
      raise RuntimeError('writer died')
  assert open(path).read() == '{\n  "x": 1\n}\n'  # the old file is intact
  assert sorted(os.listdir(os.path.dirname(path))) == ['a.json']  # no temporary left
  with io_utils.atomic_path(os.path.join(tmp_path, 'm.weights.h5')) as tmp:
    assert tmp.endswith('.weights.h5') and os.path.basename(tmp).startswith('.tmp-')
    open(tmp, 'wb').close()
  # A killed writer's stray is removed by the next writer of the same file, and only that one.
  open(os.path.join(tmp_path, 'sub', '.tmp-0badc0de-a.json'), 'w').write('half')
  open(os.path.join(tmp_path, 'sub', '.tmp-0badc0de-b.json'), 'w').write('other file')
  io_utils.atomic_write(path, 'new')
  assert sorted(os.listdir(os.path.dirname(path))) == ['.tmp-0badc0de-b.json', 'a.json']


def test_directories_npy_and_png(tmp_path):
  out = os.path.join(tmp_path, 'export')
  for value in ('1', '2'):
    with io_utils.atomic_path(out) as tmp:
      os.makedirs(tmp)
      io_utils.atomic_write(os.path.join(tmp, 'v.txt'), value)
  assert open(os.path.join(out, 'v.txt')).read() == '2'
  arr = np.arange(6, dtype=np.float32).reshape(2, 3)
  io_utils.save_npy(os.path.join(tmp_path, 'f.npy'), arr)
  np.testing.assert_array_equal(np.load(os.path.join(tmp_path, 'f.npy'), allow_pickle=False), arr)
  with pytest.raises(ValueError, match='uint8'):
    io_utils.save_png(os.path.join(tmp_path, 'x.png'), arr)
  assert not os.path.exists(os.path.join(tmp_path, 'x.png'))
