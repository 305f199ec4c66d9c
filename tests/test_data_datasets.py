"""Split and label readers against the official split files in shared/data/splits."""

import json
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
  with pytest.raises(datasets.DatasetError, match=r"kinetics-400_val.csv has no row of split 'train' \(its splits: "
                     r"val\): give the subset the CSV holds \(--subset\), or the CSV of that subset \(--csv\)$"):
    datasets.kinetics_entries('/x', csv_path, label_map, subset='train')  # was an empty listing
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


def test_list_dataset_lists_the_kinetics_rows_of_its_subset(tmp_path):
  """A CSV holding several splits: list_dataset listed every row whatever the subset (a 'val' conversion
  took the train rows too, under the subset's name)."""
  csv_path = tmp_path / 'all.csv'
  csv_path.write_text('label,youtube_id,time_start,time_end,split\n'
                      'zumba,t1,0,10,train\nabseiling,v1,1,11,val\nyoga,t2,2,12,train\nzumba,v2,3,13,val\n'
                      'abseiling,t3,4,14,train\n')
  listed = lambda subset: [(e.video_id, e.label_index, e.label_text) for e in datasets.list_dataset(
      'kinetics400', str(tmp_path), csv_path=str(csv_path), subset=subset).entries]
  # The class list is the whole CSV's (sorted), the same for both subsets: val has no yoga row.
  assert listed('train') == [('t1_000000_000010', 2, 'zumba'), ('t2_000002_000012', 1, 'yoga'),
                             ('t3_000004_000014', 0, 'abseiling')]
  assert listed('val') == [('v1_000001_000011', 0, 'abseiling'), ('v2_000003_000013', 2, 'zumba')]
  assert listed('test') == listed('val')  # no test rows: the val rows, as the default CSV of 'test' is val's
  assert datasets.list_dataset('kinetics400', str(tmp_path), csv_path=str(csv_path), subset='val').labels == [
      'abseiling', 'yoga', 'zumba']
  with pytest.raises(datasets.DatasetError, match=r"all.csv has no row of split 'holdout' \(its splits: train, "
                     r"val\)"):
    datasets.list_dataset('kinetics400', str(tmp_path), csv_path=str(csv_path), subset='holdout')
  # A row without a split value cannot be assigned: named, not dropped.
  csv_path.write_text('label,youtube_id,time_start,time_end,split\nzumba,t1,0,10,train\nyoga,x9,0,10,\n')
  with pytest.raises(datasets.DatasetError, match=r"all.csv line 3: the row of 'x9' has no split value"):
    datasets.list_dataset('kinetics400', str(tmp_path), csv_path=str(csv_path), subset='train')
  # A CSV without a split column is taken whole.
  csv_path.write_text('label,youtube_id,time_start,time_end\nzumba,t1,0,10\nyoga,x9,0,10\n')
  assert len(datasets.list_dataset('kinetics400', str(tmp_path), csv_path=str(csv_path), subset='val').entries) == 2
  # The shared official val CSV (19,906 rows, split 'val'): subset val and test list it all, train none.
  k400 = os.path.join(SPLITS, 'kinetics400')
  assert len(datasets.list_dataset('kinetics400', '/x', k400, subset='test').entries) == 19906
  assert len(datasets.list_dataset('kinetics400', '/x', k400, subset='val').entries) == 19906
  with pytest.raises(datasets.DatasetError, match="no row of split 'train'"):
    datasets.list_dataset('kinetics400', '/x', k400, subset='train',
                          csv_path=os.path.join(k400, 'kinetics-400_val.csv'))


def test_folder_dataset(tmp_path):
  for rel in ['b/x.mp4', 'a/sub/y.avi', 'a/z.mkv', 'c/.hidden', 'a/README.txt', 'notes.txt', 'loose.webm',
              '.git/d/w.mp4']:
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b'')
  listing = datasets.folder_dataset(str(tmp_path))
  assert [(e.video_id, e.label_index, e.label_text) for e in listing.entries] == [
      ('a/sub/y.avi', 0, 'a'), ('a/z.mkv', 0, 'a'), ('b/x.mp4', 1, 'b')]  # ids keep the extension
  assert listing.labels == ['a', 'b', 'c'] == datasets.folder_labels(str(tmp_path))  # hidden folders are no class
  assert listing.skipped_files == [str(tmp_path / 'a' / 'README.txt'), str(tmp_path / 'notes.txt')]
  assert listing.loose_videos == [str(tmp_path / 'loose.webm')]
  assert datasets.folder_entries(str(tmp_path)) == listing.entries


def test_folder_subset_is_mapped_by_name_against_the_class_list(tmp_path):
  for rel in ['b/1.avi', 'c/2.avi']:
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes(b'')
  listing = datasets.folder_dataset(str(tmp_path), ['a', 'b', 'c'])
  assert [(e.video_id, e.label_index) for e in listing.entries] == [('b/1.avi', 1), ('c/2.avi', 2)]
  assert listing.labels == ['a', 'b', 'c']
  (tmp_path / 'd').mkdir()
  with pytest.raises(datasets.DatasetError) as e:
    datasets.folder_dataset(str(tmp_path), ['a', 'b', 'c'], label_source='--label_map=labels.txt')
  assert str(e.value) == (f"class 'd' (folder {tmp_path / 'd'}) is not in --label_map=labels.txt (3 classes): one "
                          'dataset has one class list; fix the list or the data, or convert into a new --output_dir')
  with pytest.raises(datasets.DatasetError, match=r"class 'b' is listed twice in the class list \(lines 1 and 3\)"):
    datasets.folder_dataset(str(tmp_path), ['b', 'c', 'b', 'd'])


def test_label_map_is_honoured_by_every_dataset(tmp_path):
  ucf = datasets.ucf101_labels(os.path.join(SPLITS, 'ucf101'))
  (tmp_path / 'ucf.txt').write_text('\n'.join(ucf[::-1]) + '\n')
  entries, labels = datasets.dataset_entries('ucf101', '/v', os.path.join(SPLITS, 'ucf101'), 1, 'test',
                                             label_map_path=str(tmp_path / 'ucf.txt'))
  assert (entries[0].label_text, entries[0].label_index, labels[0]) == ('ApplyEyeMakeup', 100, 'YoYo')
  hmdb = datasets.hmdb51_labels(os.path.join(SPLITS, 'hmdb51'))
  (tmp_path / 'hmdb.json').write_text(json.dumps({'labels': hmdb[::-1]}))  # a manifest.json's class list
  entries, labels = datasets.dataset_entries('hmdb51', '/v', os.path.join(SPLITS, 'hmdb51'), 1, 'train',
                                             label_map_path=str(tmp_path / 'hmdb.json'))
  assert (entries[0].label_text, entries[0].label_index, len(entries)) == ('wave', 0, 3570)
  assert {e.label_text: e.label_index for e in entries}['brush_hair'] == 50
  (tmp_path / 'short.txt').write_text('brush_hair\n')
  with pytest.raises(datasets.DatasetError, match=r"class 'cartwheel' \(cartwheel_test_split1.txt\) is not in "
                     r'--label_map=.*short.txt \(1 classes\)'):
    datasets.dataset_entries('hmdb51', '/v', os.path.join(SPLITS, 'hmdb51'), 1, 'train',
                             label_map_path=str(tmp_path / 'short.txt'))


def test_a_clip_listed_twice_is_refused(tmp_path):
  csv_path = tmp_path / 'k.csv'
  csv_path.write_text('label,youtube_id,time_start,time_end,split\nzumba,id1,1,11,train\n'
                      'abseiling,id1,1,11,train\n')
  with pytest.raises(datasets.DatasetError) as e:
    datasets.list_dataset('kinetics400', str(tmp_path), csv_path=str(csv_path), subset='train')
  assert str(e.value) == (f"two videos map to the record id 'id1_000001_000011': {tmp_path}/id1_000001_000011.mp4 "
                          f'and {tmp_path}/id1_000001_000011.mp4; rename one of them (or fix the split file that '
                          'lists it twice)')


def test_bad_arguments():
  with pytest.raises(ValueError, match='split'):
    datasets.ucf101_entries('/v', os.path.join(SPLITS, 'ucf101'), 4, 'train')
  with pytest.raises(ValueError, match='subset'):
    datasets.hmdb51_entries('/v', os.path.join(SPLITS, 'hmdb51'), 1, 'val')
  with pytest.raises(ValueError, match='Unknown dataset'):
    datasets.dataset_entries('sports1m', '/v')


def test_read_label_map_is_the_one_class_list_reader(tmp_path):
  """Text (one per line), UCF-101 classInd.txt, a JSON list, a manifest.json ('labels' or 'summary'),
  {name: index}: the same names in class-index order; a file without names is an error."""
  want = ['ApplyEyeMakeup', 'ApplyLipstick', 'Archery']
  forms = {'plain.txt': '\n'.join(want) + '\n',
           'classInd.txt': '1 ApplyEyeMakeup\n2 ApplyLipstick\n3 Archery\n',
           'list.json': json.dumps(want),
           'manifest.json': json.dumps({'format_version': 2, 'labels': want, 'subsets': {}}),
           'legacy.json': json.dumps({'summary': {'labels': want}}),
           'index.json': json.dumps({'Archery': 2, 'ApplyEyeMakeup': 0, 'ApplyLipstick': 1})}
  for name, text in forms.items():
    (tmp_path / name).write_text(text)
    assert datasets.read_label_map(str(tmp_path / name)) == want, name
  (tmp_path / 'numbers.txt').write_text('3 Archery\n1 ApplyEyeMakeup\n')  # not 1..N in order: names kept whole
  assert datasets.read_label_map(str(tmp_path / 'numbers.txt')) == ['3 Archery', '1 ApplyEyeMakeup']
  for name, text in (('empty.txt', '\n\n'), ('nolabels.json', json.dumps({'labels': None, 'subsets': {}})),
                     ('broken.json', '{')):
    (tmp_path / name).write_text(text)
    with pytest.raises(datasets.DatasetError, match=name):
      datasets.read_label_map(str(tmp_path / name))
