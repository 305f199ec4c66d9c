"""Split and label readers for UCF-101, HMDB-51, Kinetics-400/600 and folder-per-class datasets (Sec. 3).

Every reader returns a list of `VideoEntry` (id, path, label index, label text) in a stable order, and the
label names in class-index order.  Labels come from the official files, never from set() order.
"""

import csv
import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

from data_pipelines.video import VIDEO_EXTENSIONS  # noqa: F401  (re-exported: one list for every reader)

SUBSETS = ('train', 'test')


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  video_id: str
  path: str
  label_index: int
  label_text: str


def _check_subset(subset, allowed=SUBSETS):
  if subset not in allowed:
    raise ValueError(f'subset must be one of {allowed}. Received: subset={subset!r}')


def _check_split(split):
  if split not in (1, 2, 3):
    raise ValueError(f'split must be 1, 2 or 3. Received: split={split!r}')


def _stem(name):
  return os.path.splitext(os.path.basename(name))[0]


# ----- UCF-101 -----
def ucf101_labels(split_dir: str) -> List[str]:
  """Class names from classInd.txt ('1 ApplyEyeMakeup'); index = number - 1."""
  labels = {}
  with open(os.path.join(split_dir, 'classInd.txt')) as f:
    for line in f:
      if line.strip():
        num, name = line.split()
        labels[int(num) - 1] = name
  return [labels[i] for i in range(len(labels))]


def ucf101_entries(video_dir: str, split_dir: str, split: int = 1, subset: str = 'train') -> List[VideoEntry]:
  """trainlist0N.txt ('Class/v_Class_gXX_cYY.avi 1', 1-based label) or testlist0N.txt (no label)."""
  _check_split(split)
  _check_subset(subset)
  labels = ucf101_labels(split_dir)
  index = {n: i for i, n in enumerate(labels)}
  name = f'{"trainlist" if subset == "train" else "testlist"}{split:02d}.txt'
  entries = []
  with open(os.path.join(split_dir, name)) as f:
    for line in f:
      parts = line.split()
      if not parts:
        continue
      rel = parts[0]
      cls = rel.split('/')[0]
      label = index[cls]
      if len(parts) > 1 and int(parts[1]) - 1 != label:
        raise ValueError(f'{name}: label {parts[1]} disagrees with folder {cls!r} in line {line!r}')
      entries.append(VideoEntry(_stem(rel), os.path.join(video_dir, rel), label, cls))
  return entries


# ----- HMDB-51 -----
HMDB_TRAIN, HMDB_TEST, HMDB_UNUSED = 1, 2, 0


def hmdb51_labels(split_dir: str) -> List[str]:
  """Class names sorted alphabetically (= mmaction2's hmdb51_label_map.txt).

  Note: TSN's class_list.txt orders climb/climb_stairs, kick/kick_ball, sword/sword_exercise differently;
  pass your own label list to `hmdb51_entries` to follow another order.
  """
  suffix = '_test_split1.txt'
  return sorted(n[:-len(suffix)] for n in os.listdir(split_dir) if n.endswith(suffix))


def hmdb51_entries(video_dir: str, split_dir: str, split: int = 1, subset: str = 'train',
                   labels: Optional[Sequence[str]] = None) -> List[VideoEntry]:
  """`<class>_test_splitN.txt` lines 'name.avi k': k=1 train, 2 test, 0 unused; videos at <dir>/<class>/name."""
  _check_split(split)
  _check_subset(subset)
  want = HMDB_TRAIN if subset == 'train' else HMDB_TEST
  entries = []
  for label, cls in enumerate(labels or hmdb51_labels(split_dir)):
    with open(os.path.join(split_dir, f'{cls}_test_split{split}.txt')) as f:
      for line in f:
        parts = line.split()
        if len(parts) >= 2 and int(parts[1]) == want:
          entries.append(VideoEntry(_stem(parts[0]), os.path.join(video_dir, cls, parts[0]), label, cls))
  return entries


# ----- Kinetics -----
def read_label_map(path: str) -> List[str]:
  """One class name per line, line index = class id (deepmind/kinetics-i3d label_map.txt)."""
  with open(path) as f:
    return [line.strip() for line in f if line.strip()]


LABEL_MAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'label_maps')
KINETICS_LABEL_MAPS = {400: 'kinetics400.txt', 600: 'kinetics600.txt'}


def kinetics_class_names(num_classes: int = 400) -> List[str]:
  """The official Kinetics-400 / -600 class names in class-index order (deepmind/kinetics-i3d
  data/label_map.txt and label_map_600.txt, shipped inside this package; the order of the trained weights'
  logits).  Kinetics-400's equals the sorted labels of the official CSVs.

  Raises:
    ValueError: a class count other than 400 or 600.
  """
  if num_classes not in KINETICS_LABEL_MAPS:
    raise ValueError(f'Kinetics label maps exist for {sorted(KINETICS_LABEL_MAPS)} classes. '
                     f'Received: num_classes={num_classes}')
  names = read_label_map(os.path.join(LABEL_MAP_DIR, KINETICS_LABEL_MAPS[num_classes]))
  if len(names) != num_classes:
    raise ValueError(f'{KINETICS_LABEL_MAPS[num_classes]} has {len(names)} names, expected {num_classes}: '
                     'the installed package is damaged')
  return names


def kinetics_clip_name(youtube_id: str, time_start: float, time_end: float) -> str:
  """File stem the official ActivityNet downloader writes: `<id>_<start:06d>_<end:06d>`."""
  return f'{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}'


def kinetics_entries(video_dir: str, csv_path: str, label_map: Optional[Sequence[str]] = None,
                     subset: Optional[str] = None, extension: str = '.mp4',
                     class_subdirs: Optional[bool] = None) -> Tuple[List[VideoEntry], List[str]]:
  """Rows of a Kinetics CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`).

  Args:
    video_dir: where the clips are; either flat or `<video_dir>/<label>/<clip>.mp4` (auto-detected per
      clip unless `class_subdirs` is given).
    csv_path: the official annotation CSV.
    label_map: class names in index order (e.g. label_map.txt); default: sorted labels of the CSV.
    subset: keep rows whose `split` column equals this (train/val/test); None keeps all.
    extension: clip file extension.
    class_subdirs: force the layout.

  Returns:
    (entries, label names).  Test CSVs without labels get label index -1.
  """
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  if subset is not None:
    rows = [r for r in rows if r.get('split', subset) == subset]
  if label_map is None:
    label_map = sorted({r['label'] for r in rows if r.get('label')})
  index = {n: i for i, n in enumerate(label_map)}
  entries = []
  for r in rows:
    label = r.get('label') or ''
    if label and label not in index:
      raise ValueError(f'label {label!r} of {r["youtube_id"]} is not in the label map')
    stem = kinetics_clip_name(r['youtube_id'], r['time_start'], r['time_end'])
    flat = os.path.join(video_dir, stem + extension)
    nested = os.path.join(video_dir, label, stem + extension)
    if class_subdirs is None:
      path = nested if label and not os.path.exists(flat) and os.path.exists(nested) else flat
    else:
      path = nested if class_subdirs else flat
    entries.append(VideoEntry(stem, path, index.get(label, -1), label))
  return entries, list(label_map)


# ----- folder per class -----
def folder_labels(video_dir: str) -> List[str]:
  return sorted(d for d in os.listdir(video_dir) if os.path.isdir(os.path.join(video_dir, d)))


def folder_entries(video_dir: str, extensions: Optional[Sequence[str]] = None) -> List[VideoEntry]:
  """Every file under `<video_dir>/<class>/` (recursively); labels = sorted class folder names.

  `extensions=None` takes every file, so that unreadable ones are reported by the conversion rather than
  silently ignored; pass VIDEO_EXTENSIONS to filter.
  """
  entries = []
  for label, cls in enumerate(folder_labels(video_dir)):
    root = os.path.join(video_dir, cls)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
      dirnames.sort()
      for name in sorted(filenames):
        if name.startswith('.'):
          continue
        if extensions and not name.lower().endswith(tuple(extensions)):
          continue
        found.append(os.path.join(dirpath, name))
    for path in sorted(found):  # sorted by path within a class
      rel = os.path.relpath(path, video_dir)
      entries.append(VideoEntry(os.path.splitext(rel)[0].replace(os.sep, '/'), path, label, cls))
  return entries


def dataset_entries(dataset: str, video_dir: str, split_dir: Optional[str] = None, split: int = 1,
                    subset: str = 'train', label_map_path: Optional[str] = None,
                    csv_path: Optional[str] = None) -> Tuple[List[VideoEntry], List[str]]:
  """One entry point for the binaries: (entries, label names) of a dataset name.

  Kinetics: `csv_path` defaults to `<split_dir>/kinetics-<N>_<subset>.csv` (subset 'test' maps to the
  'val' CSV when no test CSV exists); `label_map_path` defaults to sorted CSV labels.
  """
  if dataset == 'ucf101':
    return ucf101_entries(video_dir, split_dir, split, subset), ucf101_labels(split_dir)
  if dataset == 'hmdb51':
    return hmdb51_entries(video_dir, split_dir, split, subset), hmdb51_labels(split_dir)
  if dataset in ('kinetics400', 'kinetics600'):
    n = dataset[len('kinetics'):]
    if csv_path is None:
      csv_path = os.path.join(split_dir, f'kinetics-{n}_{subset}.csv')
      if subset == 'test' and not os.path.exists(csv_path):
        csv_path = os.path.join(split_dir, f'kinetics-{n}_val.csv')
    label_map = read_label_map(label_map_path) if label_map_path else None
    return kinetics_entries(video_dir, csv_path, label_map)
  if dataset == 'folder':
    return folder_entries(video_dir), folder_labels(video_dir)
  raise ValueError(f'Unknown dataset {dataset!r}; expected ucf101, hmdb51, kinetics400, kinetics600 or '
                   'folder.')
