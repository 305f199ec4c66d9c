"""Split and label readers against the official split files in shared/data/splits."""

import os

import pytest

from data_pipelines import datasets
from data_pipelines.testing import SHARED_DATA, SPLITS

pytestmark = pytest.mark.skipif(not os.path.isdir(SPLITS), reason=f'shared data missing: {SPLITS}')


@pytest.mark.parametrize('split,train,test', [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_ucf101_counts(split, train, test):
  d = os.path.join(SPLITS, 'ucf101')
  tr = datasets.ucf101_entries('/videos', d, split, 'train')
  te = datasets.ucf101_entries('/videos', d, split, 'test')
  assert (len(tr), len(te)) == (train, test)
  assert not {e.video_id for e in tr} & {e.video_id for e in te}
  assert len({e.label_index for e in te}) == 101


def test_ucf101_entry_fields():
  d = os.path.join(SPLITS, 'ucf101')
  labels = datasets.ucf101_labels(d)
  assert len(labels) == 101 and labels[0] == 'ApplyEyeMakeup' and labels[-1] == 'YoYo'
  e = datasets.ucf101_entries('/videos', d, 1, 'test')[0]
  assert e == datasets.VideoEntry('v_ApplyEyeMakeup_g01_c01', '/videos/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi',
                                  0, 'ApplyEyeMakeup')
  assert labels == datasets.read_label_map(os.path.join(SPLITS, 'label_maps', 'ucf101_label_map.txt'))


@pytest.mark.parametrize('split', [1, 2, 3])
def test_hmdb51_counts(split):
  d = os.path.join(SPLITS, 'hmdb51')
  tr = datasets.hmdb51_entries('/videos', d, split, 'train')
  te = datasets.hmdb51_entries('/videos', d, split, 'test')
  assert (len(tr), len(te)) == (3570, 1530)
  assert len({e.label_index for e in tr}) == 51
  labels = datasets.hmdb51_labels(d)
  assert labels == datasets.read_label_map(os.path.join(SPLITS, 'label_maps', 'hmdb51_label_map.txt'))
  assert tr[0].path == os.path.join('/videos', 'brush_hair', tr[0].video_id + '.avi')


def test_kinetics400_val():
  csv_path = os.path.join(SPLITS, 'kinetics400', 'kinetics-400_val.csv')
  label_map = datasets.read_label_map(os.path.join(SHARED_DATA, 'kinetics_i3d', 'label_map.txt'))
  entries, labels = datasets.kinetics_entries('/k400/val', csv_path, label_map)
  assert len(entries) == 19906 and len(labels) == 400 and len({e.label_index for e in entries}) == 400
  e = entries[0]
  assert (e.video_id, e.path, e.label_index, e.label_text) == (
      '0wR5jVB-WPk_000417_000427', '/k400/val/0wR5jVB-WPk_000417_000427.mp4', 0, 'abseiling')
  sorted_entries, sorted_labels = datasets.kinetics_entries('/x', csv_path)
  assert sorted_labels == sorted(label_map) and len(sorted_entries) == 19906
  assert datasets.kinetics_entries('/x', csv_path, label_map, subset='train')[0] == []
  via, _ = datasets.dataset_entries('kinetics400', '/x', os.path.join(SPLITS, 'kinetics400'), subset='test')
  assert len(via) == 19906


def test_kinetics_clip_name_and_nested_layout(tmp_path):
  assert datasets.kinetics_clip_name('abc', 7, 17) == 'abc_000007_000017'
  assert datasets.kinetics_clip_name('x-Y_z', '417.0', '427') == 'x-Y_z_000417_000427'
  csv_path = tmp_path / 'k.csv'
  csv_path.write_text('label,youtube_id,time_start,time_end,split\nzumba,id1,1,11,train\n'
                      'abseiling,id2,0,10,train\n')
  (tmp_path / 'zumba').mkdir()
  (tmp_path / 'zumba' / 'id1_000001_000011.mp4').write_bytes(b'x')
  entries, labels = datasets.kinetics_entries(str(tmp_path), str(csv_path))
  assert labels == ['abseiling', 'zumba']
  assert entries[0].path == str(tmp_path / 'zumba' / 'id1_000001_000011.mp4') and entries[0].label_index == 1
  assert entries[1].path == str(tmp_path / 'id2_000000_000010.mp4')


def test_folder_dataset(tmp_path):
  for rel in ['b/x.mp4', 'a/sub/y.avi', 'a/z.mkv', 'c/.hidden']:
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b'')
  entries = datasets.folder_entries(str(tmp_path))
  assert [(e.video_id, e.label_index, e.label_text) for e in entries] == [
      ('a/sub/y', 0, 'a'), ('a/z', 0, 'a'), ('b/x', 1, 'b')]
  assert datasets.folder_labels(str(tmp_path)) == ['a', 'b', 'c']


def test_bad_arguments():
  with pytest.raises(ValueError, match='split'):
    datasets.ucf101_entries('/v', os.path.join(SPLITS, 'ucf101'), 4, 'train')
  with pytest.raises(ValueError, match='subset'):
    datasets.hmdb51_entries('/v', os.path.join(SPLITS, 'hmdb51'), 1, 'val')
  with pytest.raises(ValueError, match='Unknown dataset'):
    datasets.dataset_entries('sports1m', '/v')
