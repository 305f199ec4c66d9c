"""Split and label readers for UCF-101, HMDB-51, Kinetics-400/600 and folder-per-class datasets (Sec. 3).

Every reader returns a list of `VideoEntry` (id, path, label index, label text) in a stable order, and the
label names in class-index order.  Labels come from the official files, never from set() order.

One class list per dataset: every reader takes `labels` (a class list in index order, e.g. `--label_map` or
the one an earlier conversion recorded) and maps its classes by name against it; a class that is not in the
list is a `DatasetError` naming it.  Video ids are unique within a listing (`check_unique_ids`); folder
datasets use the relative path, extension included, so two files never share an id.
"""

import csv
import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

from data_pipelines.video import VIDEO_EXTENSIONS  # noqa: F401  (re-exported: one list for every reader)
from data_pipelines.video import find_videos

SUBSETS = ('train', 'test')


class DatasetError(ValueError):
  """A dataset listing that cannot be converted as it is (unknown class, two videos with one id)."""


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  """One video of a dataset listing.

  Attributes:
    video_id: the record id, unique within a listing: the file stem (UCF-101, HMDB-51), the clip name
      `<youtube_id>_<start>_<end>` (Kinetics), or the relative path with extension (folder datasets).
    path: the video file.
    label_index: index into the dataset's class list; -1 for a Kinetics row without a label.
    label_text: the class name ('' when unknown).
  """
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


def _class_index(labels: Sequence[str], source: str):
  """{name: index} of a class list; a name listed twice is an error."""
  index = {}
  for i, name in enumerate(labels):
    if name in index:
      raise DatasetError(f'class {name!r} is listed twice in {source} (lines {index[name] + 1} and {i + 1}): '
                         'every class name must be unique')
    index[name] = i
  return index


def _unknown_class(name: str, where: str, source: str, num_classes: int) -> DatasetError:
  return DatasetError(f'class {name!r} ({where}) is not in {source} ({num_classes} classes): one dataset has '
                      'one class list; fix the list or the data, or convert into a new --output_dir')


def check_unique_ids(entries: Sequence['VideoEntry']) -> None:
  """Raises DatasetError when two entries share a video id (their records would be indistinguishable)."""
  seen = {}
  for e in entries:
    if e.video_id in seen:
      raise DatasetError(f'two videos map to the record id {e.video_id!r}: {seen[e.video_id]} and {e.path}; '
                         'rename one of them (or fix the split file that lists it twice)')
    seen[e.video_id] = e.path


# ----- UCF-101 -----
def ucf101_labels(split_dir: str) -> List[str]:
  """UCF-101's 101 class names from `split_dir`/classInd.txt ('1 ApplyEyeMakeup'); index = number - 1.

  Raises:
    OSError: no classInd.txt in `split_dir`.
    KeyError: the numbers are not 1..N.
  """
  labels = {}
  with open(os.path.join(split_dir, 'classInd.txt')) as f:
    for line in f:
      if line.strip():
        num, name = line.split()
        labels[int(num) - 1] = name
  return [labels[i] for i in range(len(labels))]


def ucf101_entries(video_dir: str, split_dir: str, split: int = 1, subset: str = 'train',
                   labels: Optional[Sequence[str]] = None, label_source: str = 'the class list'
                   ) -> List[VideoEntry]:
  """UCF-101 entries of one split from trainlist0N.txt ('Class/v_Class_gXX_cYY.avi 1', 1-based label) or
  testlist0N.txt (no label); the class is the path's folder.

  Args:
    video_dir: the folder holding `<Class>/v_Class_gXX_cYY.avi`.
    split_dir: the folder of classInd.txt, trainlist0N.txt and testlist0N.txt.
    split: 1, 2 or 3.
    subset: 'train' or 'test'.
    labels: class list in index order, mapped by name; None: classInd.txt's order.
    label_source: how error messages name `labels`.

  Returns:
    Entries in split-file order; ids are the file stems.

  Raises:
    ValueError: `split` or `subset` out of range.
    DatasetError: a line's label disagrees with its folder in classInd.txt, or a class is not in `labels`.
  """
  _check_split(split)
  _check_subset(subset)
  class_ind = {n: i for i, n in enumerate(ucf101_labels(split_dir))}
  index = class_ind if labels is None else _class_index(labels, label_source)
  name = f'{"trainlist" if subset == "train" else "testlist"}{split:02d}.txt'
  entries = []
  with open(os.path.join(split_dir, name)) as f:
    for line in f:
      parts = line.split()
      if not parts:
        continue
      rel = parts[0]
      cls = rel.split('/')[0]
      if len(parts) > 1 and int(parts[1]) - 1 != class_ind.get(cls):
        raise DatasetError(f'{name}: label {parts[1]} disagrees with folder {cls!r} in line {line!r}')
      if cls not in index:
        raise _unknown_class(cls, f'{name}: {rel}', label_source, len(index))
      entries.append(VideoEntry(_stem(rel), os.path.join(video_dir, rel), index[cls], cls))
  return entries


# ----- HMDB-51 -----
HMDB_TRAIN, HMDB_TEST, HMDB_UNUSED = 1, 2, 0


def hmdb51_labels(split_dir: str) -> List[str]:
  """HMDB-51 class names (from the `<class>_test_split1.txt` files in `split_dir`) sorted alphabetically
  (= mmaction2's hmdb51_label_map.txt).

  Note: TSN's class_list.txt orders climb/climb_stairs, kick/kick_ball, sword/sword_exercise differently;
  pass your own label list to `hmdb51_entries` to follow another order.
  """
  suffix = '_test_split1.txt'
  return sorted(n[:-len(suffix)] for n in os.listdir(split_dir) if n.endswith(suffix))


def hmdb51_entries(video_dir: str, split_dir: str, split: int = 1, subset: str = 'train',
                   labels: Optional[Sequence[str]] = None, label_source: str = 'the class list'
                   ) -> List[VideoEntry]:
  """HMDB-51 entries of one split from the `<class>_test_splitN.txt` lines 'name.avi k' (k=1 train, 2 test,
  0 unused).

  Args:
    video_dir: the folder holding `<class>/name.avi`.
    split_dir: the folder of the `<class>_test_split{1,2,3}.txt` files.
    split: 1, 2 or 3.
    subset: 'train' (k=1) or 'test' (k=2).
    labels: class list in index order, mapped by name (every split file's class must be in it); None: the
      sorted class names (`hmdb51_labels`).
    label_source: how error messages name `labels`.

  Returns:
    Entries in class-index order, then split-file order; ids are the file stems.

  Raises:
    ValueError: `split` or `subset` out of range.
    DatasetError: a split file's class is not in `labels`.
  """
  _check_split(split)
  _check_subset(subset)
  want = HMDB_TRAIN if subset == 'train' else HMDB_TEST
  split_classes = hmdb51_labels(split_dir)
  index = {n: i for i, n in enumerate(split_classes)} if labels is None else _class_index(labels, label_source)
  for cls in split_classes:
    if cls not in index:
      raise _unknown_class(cls, f'{cls}_test_split{split}.txt', label_source, len(index))
  entries = []
  for cls in sorted(split_classes, key=index.get):  # class-index order
    label = index[cls]
    with open(os.path.join(split_dir, f'{cls}_test_split{split}.txt')) as f:
      for line in f:
        parts = line.split()
        if len(parts) >= 2 and int(parts[1]) == want:
          entries.append(VideoEntry(_stem(parts[0]), os.path.join(video_dir, cls, parts[0]), label, cls))
  return entries


# ----- Kinetics -----
def read_label_map(path: str) -> List[str]:
  """The one reader of a class list (class names in class-index order), whatever file at `path` holds it.

  * A text file, one name per line, line index = class id (deepmind/kinetics-i3d `label_map.txt`); UCF-101's
    `classInd.txt` lines ('1 ApplyEyeMakeup', numbered 1..N or 0..N-1 in order) lose their numbers.
  * A JSON list of names, or an object with 'labels' / 'class_names' / 'label_map' (also under 'summary': a
    prepare_data `manifest.json`, e.g. the training data's), or {name: index}.

  Raises:
    DatasetError: a file that holds no class names (or is not JSON when named .json).
    OSError: an unreadable file.
  """
  with open(path, encoding='utf-8') as f:
    text = f.read()
  if path.endswith('.json'):
    import json  # pylint: disable=g-import-not-at-top
    try:
      obj = json.loads(text)
    except ValueError as e:
      raise DatasetError(f'{path}: not JSON ({e})') from None
    for where in (obj, obj.get('summary') if isinstance(obj, dict) else None):  # the object, then its summary
      found = [where[k] for k in ('labels', 'class_names', 'label_map')
               if isinstance(where, dict) and where.get(k) is not None]
      if found:
        obj = found[0]
        break
    if isinstance(obj, dict) and obj and all(isinstance(v, int) for v in obj.values()):  # {name: index}
      names = [n for n, _ in sorted(obj.items(), key=lambda kv: kv[1])]
    elif isinstance(obj, list):
      names = [str(n) for n in obj]
    else:
      names = []
    if not names:
      raise DatasetError(f'{path} holds no class list (a JSON list of names, a manifest.json with "labels", or '
                         '{name: index})')
    return names
  names = [line.strip() for line in text.splitlines() if line.strip()]
  numbered = [n.split(None, 1) for n in names]
  if names and all(len(p) == 2 and p[0].isdigit() for p in numbered):
    first = int(numbered[0][0])
    if first in (0, 1) and [int(p[0]) for p in numbered] == list(range(first, first + len(names))):
      names = [p[1] for p in numbered]  # classInd.txt
  if not names:
    raise DatasetError(f'{path} holds no class names (one per line)')
  return names


LABEL_MAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'label_maps')
KINETICS_LABEL_MAPS = {400: 'kinetics400.txt', 600: 'kinetics600.txt'}


def kinetics_class_names(num_classes: int = 400) -> List[str]:
  """The official Kinetics class names in class-index order (Sec. 3; deepmind/kinetics-i3d
  data/label_map.txt and label_map_600.txt, shipped inside this package; the order of the trained weights'
  logits).  Kinetics-400's equals the sorted labels of the official CSVs.

  Args:
    num_classes: 400 or 600.

  Raises:
    ValueError: a class count other than 400 or 600, or a shipped list of the wrong length.
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
  """File stem the official ActivityNet downloader writes: `<youtube_id>_<start:06d>_<end:06d>`.

  `time_start` and `time_end` are seconds (numbers or the CSV's strings), truncated to whole seconds.
  """
  return f'{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}'


def kinetics_entries(video_dir: str, csv_path: str, label_map: Optional[Sequence[str]] = None,
                     subset: Optional[str] = None, extension: str = '.mp4',
                     class_subdirs: Optional[bool] = None, label_source: str = 'the label map'
                     ) -> Tuple[List[VideoEntry], List[str]]:
  """Rows of a Kinetics CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`).

  Args:
    video_dir: where the clips are; either flat or `<video_dir>/<label>/<clip>.mp4` (auto-detected per
      clip unless `class_subdirs` is given).
    csv_path: the official annotation CSV.
    label_map: class names in index order (e.g. label_map.txt); default: the sorted labels of every row of
      the CSV (all splits, so that the subsets of one CSV share one class list).
    subset: keep the rows whose `split` column equals this (train/val/test); None keeps all.  A CSV without
      a `split` column is taken whole.
    extension: clip file extension.
    class_subdirs: force the layout: True nested, False flat; None detects it per clip.
    label_source: how error messages name `label_map`.

  Returns:
    (entries in CSV order, label names).  Rows without a label (test CSVs) get label index -1.

  Raises:
    DatasetError: a row's label is not in `label_map`, `label_map` lists a class twice, or (with `subset`) no
      row of the CSV has that split, or a row has an empty split (its subset is unknown).
    KeyError: the CSV lacks the youtube_id, time_start or time_end column.
  """
  with open(csv_path, newline='') as f:
    reader = csv.DictReader(f)
    rows = list(reader)
    columns = reader.fieldnames or []
  if label_map is None:
    label_map = sorted({r['label'] for r in rows if r.get('label')})
  if subset is not None and 'split' in columns:
    for line, r in enumerate(rows, 2):
      if not r.get('split'):
        raise DatasetError(f'{csv_path} line {line}: the row of {r.get("youtube_id")!r} has no split value, so '
                           f'it cannot be assigned to subset {subset!r}: fill in its split column')
    splits = sorted({r['split'] for r in rows})
    rows = [r for r in rows if r['split'] == subset]
    if not rows:
      raise DatasetError(f'{csv_path} has no row of split {subset!r} (its splits: {", ".join(splits)}): give the '
                         'subset the CSV holds (--subset), or the CSV of that subset (--csv)')
  index = _class_index(label_map, label_source)
  entries = []
  for r in rows:
    label = r.get('label') or ''
    if label and label not in index:
      raise _unknown_class(label, f'{os.path.basename(csv_path)}: {r["youtube_id"]}', label_source, len(index))
    stem = kinetics_clip_name(r['youtube_id'], r['time_start'], r['time_end'])
    flat = os.path.join(video_dir, stem + extension)
    nested = os.path.join(video_dir, label, stem + extension)
    if class_subdirs is None:
      path = nested if label and not os.path.exists(flat) and os.path.exists(nested) else flat
    else:
      path = nested if class_subdirs else flat
    entries.append(VideoEntry(stem, path, index.get(label, -1), label))
  return entries, list(label_map)


def kinetics_split(csv_path: str, subset: str) -> str:
  """The `split` value of a Kinetics CSV's rows that subset `subset` lists: `subset` itself, except 'test'
  on a CSV that holds 'val' rows and no 'test' row (the labelled stand-in for the test set, as the default
  CSV of subset 'test' is the val CSV when there is no test CSV).

  Args:
    csv_path: the annotation CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`).
    subset: the subset asked for (train, val, test, ...).

  Raises:
    OSError: an unreadable CSV.
  """
  if subset != 'test':
    return subset
  with open(csv_path, newline='') as f:
    splits = {r.get('split') for r in csv.DictReader(f)}
  return 'val' if 'test' not in splits and 'val' in splits else subset


# ----- folder per class -----
@dataclasses.dataclass
class DatasetListing:
  """What a reader found: entries, the class list, and what it left out (reported, never silently).

  Attributes:
    entries: the videos to convert, in class-index then path order.
    labels: the dataset's class names in index order.
    skipped_files: files left out because their extension is not a video's (README.txt), paths.
    loose_videos: videos directly in a folder dataset's root, outside any class folder (no label), paths.
  """
  entries: List[VideoEntry]
  labels: List[str]
  skipped_files: List[str] = dataclasses.field(default_factory=list)
  loose_videos: List[str] = dataclasses.field(default_factory=list)


def folder_labels(video_dir: str) -> List[str]:
  """The class folders of a folder dataset: the sorted sub-folders of `video_dir` (hidden ones excluded)."""
  return sorted(d for d in os.listdir(video_dir)
                if not d.startswith('.') and os.path.isdir(os.path.join(video_dir, d)))


def folder_video_id(path: str, video_dir: str) -> str:
  """The record id of a folder dataset's video: its path relative to `video_dir`, '/'-separated, extension
  included (`Class/sub/clip.avi`), so that two files never share an id."""
  return os.path.relpath(path, video_dir).replace(os.sep, '/')


def folder_dataset(video_dir: str, labels: Optional[Sequence[str]] = None,
                   extensions: Optional[Sequence[str]] = VIDEO_EXTENSIONS,
                   label_source: str = 'the class list') -> DatasetListing:
  """Videos under `<video_dir>/<class>/` (recursively), one class per sub-folder.

  Args:
    video_dir: the dataset's root folder.
    labels: the dataset's class list in index order (e.g. an earlier conversion's, or a label map); the
      class folders are mapped by name against it, so a folder holding a subset of the classes keeps the
      indices of the whole dataset.  None: the sorted class folders of `video_dir`.
    extensions: files taken as videos (`VIDEO_EXTENSIONS`); others are skipped and listed.  None takes
      every file (unreadable ones are then reported by the conversion).
    label_source: how error messages name `labels` (e.g. '--label_map=labels.txt').

  Returns:
    A DatasetListing; ids are `folder_video_id` (relative path with extension).  Hidden files and folders
    (names starting with '.') are ignored.

  Raises:
    FileNotFoundError: `video_dir` is not a folder.
    DatasetError: a class folder not in `labels`, or a class listed twice.
  """
  if not os.path.isdir(video_dir):
    raise FileNotFoundError(f'video_dir {video_dir!r} is not a folder: give the folder that holds one '
                            'sub-folder of videos per class')
  folders = folder_labels(video_dir)
  if labels is None:
    labels, label_source = folders, 'the class folders'
  index = _class_index(labels, label_source)
  for cls in folders:
    if cls not in index:
      raise _unknown_class(cls, f'folder {os.path.join(video_dir, cls)}', label_source, len(index))
  found = find_videos(video_dir, extensions if extensions else ('',))  # ('',): every file
  entries, loose = [], []
  for path in found.paths:
    parts = os.path.relpath(path, video_dir).split(os.sep)
    if len(parts) == 1:
      loose.append(path)
    else:
      entries.append(VideoEntry(folder_video_id(path, video_dir), path, index[parts[0]], parts[0]))
  entries.sort(key=lambda e: (e.label_index, e.path))  # class-index order, then path
  return DatasetListing(entries, list(labels), list(found.skipped), loose)


def folder_entries(video_dir: str, extensions: Optional[Sequence[str]] = VIDEO_EXTENSIONS,
                   labels: Optional[Sequence[str]] = None) -> List[VideoEntry]:
  """The entries of `folder_dataset(video_dir, labels, extensions)`, which also reports skipped files and
  videos outside class folders; raises as it does (FileNotFoundError, DatasetError)."""
  return folder_dataset(video_dir, labels, extensions).entries


def list_dataset(dataset: str, video_dir: str, split_dir: Optional[str] = None, split: int = 1,
                 subset: str = 'train', labels: Optional[Sequence[str]] = None,
                 csv_path: Optional[str] = None, label_source: str = 'the class list') -> DatasetListing:
  """One entry point for the binaries: the DatasetListing of a dataset name.

  Args:
    dataset: 'ucf101', 'hmdb51', 'kinetics400', 'kinetics600' or 'folder'.
    video_dir: the folder of the videos.
    split_dir: the split files' folder (UCF-101, HMDB-51) or the Kinetics CSVs' folder; unused for 'folder'.
    split: 1, 2 or 3 (UCF-101, HMDB-51).
    subset: 'train' or 'test' (UCF-101, HMDB-51); Kinetics: 'train', 'val' or 'test', which names the default
      CSV and selects its rows by their `split` column (`kinetics_split`: 'test' reads the 'val' rows of a CSV
      without test rows).
    labels: a class list in index order (`--label_map`, or the one an earlier conversion recorded), honoured
      by every dataset: classes are mapped by name against it.  None: classInd.txt (UCF-101), sorted class
      names (HMDB-51), sorted CSV labels (Kinetics), sorted class folders (folder).
    csv_path: Kinetics CSV; default `<split_dir>/kinetics-<N>_<subset>.csv`, the 'val' CSV for subset
      'test' when no test CSV exists.  Only its rows of `subset`'s split are listed.
    label_source: how error messages name `labels`.

  Returns:
    The DatasetListing; video ids are checked unique.

  Raises:
    ValueError: an unknown dataset, split or subset.
    DatasetError: a class not in `labels`, two videos with one id, or a Kinetics CSV without rows of `subset`.
    FileNotFoundError: a missing folder or split file.
  """
  if dataset == 'ucf101':
    entries = ucf101_entries(video_dir, split_dir, split, subset, labels, label_source)
    listing = DatasetListing(entries, list(labels) if labels is not None else ucf101_labels(split_dir))
  elif dataset == 'hmdb51':
    entries = hmdb51_entries(video_dir, split_dir, split, subset, labels, label_source)
    listing = DatasetListing(entries, list(labels) if labels is not None else hmdb51_labels(split_dir))
  elif dataset in ('kinetics400', 'kinetics600'):
    n = dataset[len('kinetics'):]
    if csv_path is None:
      csv_path = os.path.join(split_dir, f'kinetics-{n}_{subset}.csv')
      if subset == 'test' and not os.path.exists(csv_path):
        csv_path = os.path.join(split_dir, f'kinetics-{n}_val.csv')
    listing = DatasetListing(*kinetics_entries(video_dir, csv_path, labels, kinetics_split(csv_path, subset),
                                               label_source=label_source))
  elif dataset == 'folder':
    listing = folder_dataset(video_dir, labels, label_source=label_source)
  else:
    raise ValueError(f'Unknown dataset {dataset!r}; expected ucf101, hmdb51, kinetics400, kinetics600 or '
                     'folder.')
  check_unique_ids(listing.entries)
  return listing


def dataset_entries(dataset: str, video_dir: str, split_dir: Optional[str] = None, split: int = 1,
                    subset: str = 'train', label_map_path: Optional[str] = None,
                    csv_path: Optional[str] = None) -> Tuple[List[VideoEntry], List[str]]:
  """(entries, label names) of `list_dataset(dataset, video_dir, split_dir, split, subset, labels, csv_path)`,
  with `labels` read from `label_map_path` (`read_label_map`) when given; raises as `list_dataset` does."""
  labels = read_label_map(label_map_path) if label_map_path else None
  listing = list_dataset(dataset, video_dir, split_dir, split, subset, labels, csv_path,
                         f'--label_map={label_map_path}' if label_map_path else 'the class list')
  return listing.entries, listing.labels
