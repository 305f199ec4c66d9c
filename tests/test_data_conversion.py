"""Conversion to shards: bad inputs reported, good videos present, resumable, CLI exit status, Beam; reruns
refused or resumed by their key, one class list per dataset, unique ids, layout (docs/reruns.md)."""

import dataclasses
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import conversion, datasets
from data_pipelines import tfrecord_format as fmt
from data_pipelines.testing import write_video

REPO = os.path.join(os.path.dirname(__file__), '..')
OPTIONS = conversion.ConversionOptions(resize_short_side=32, flow='tvl1')
BAD = {'bad/truncated.avi': 'truncated', 'bad/zero.mp4': 'empty file', 'bad/text.mp4': 'not a readable video',
       'bad/one.avi': '1 frame(s) decoded'}


@pytest.fixture(scope='module')
def video_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('videos')
  for d in ['good', 'bad']:
    (root / d).mkdir()
  write_video(str(root / 'good' / 'a.avi'), 8)
  write_video(str(root / 'good' / 'b.avi'), 6, fps=30, step=3)
  tmp = write_video(str(root / 'full.avi'), 40)
  data = open(tmp, 'rb').read()
  os.remove(tmp)
  (root / 'bad' / 'truncated.avi').write_bytes(data[:len(data) // 2])
  (root / 'bad' / 'zero.mp4').write_bytes(b'')
  (root / 'bad' / 'text.mp4').write_text('not a video\n' * 100)
  write_video(str(root / 'bad' / 'one.avi'), 1)
  return str(root)


def _records(path):
  return [fmt.decode_record_numpy(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def _check_output(out_dir, subset, num_shards):
  manifest = json.load(open(os.path.join(out_dir, 'manifest.json')))
  assert manifest['format_version'] == 2 and manifest['labels'] == ['bad', 'good']
  status = {v['id']: v for v in manifest['subsets'][subset]['videos']}
  assert sorted(status) == ['bad/one.avi', 'bad/text.mp4', 'bad/truncated.avi', 'bad/zero.mp4', 'good/a.avi',
                            'good/b.avi']
  for vid, reason in BAD.items():
    assert status[vid]['status'] == 'failed' and reason in status[vid]['error'], status[vid]
  assert status['good/a.avi']['frames'] == 8 and status['good/a.avi']['flow_frames'] == 7
  assert status['good/b.avi']['frames'] == 5 and status['good/b.avi']['flow_frames'] == 4  # 6 frames at 30 fps
  s = manifest['subsets'][subset]['summary']
  assert (s['videos'], s['ok'], s['failed'], s['frames'], s['flow_frames'], s['complete']) == (6, 2, 4, 13, 11, True)
  names = sorted(f for f in os.listdir(out_dir) if f.endswith('.tfrecord'))
  assert names == [conversion.shard_name(subset, k, num_shards) for k in range(num_shards)]
  assert sorted(os.listdir(out_dir)) == sorted(names + ['manifest.json', 'manifests'])
  assert sorted(os.listdir(os.path.join(out_dir, 'manifests'))) == sorted(
      [f'shard-{n[:-len(".tfrecord")]}.json' for n in names] + [f'subset-{subset}.json'])
  records = [r for n in names for r in _records(os.path.join(out_dir, n))]
  assert sorted(r['video/id'] for r in records) == ['good/a.avi', 'good/b.avi']
  a = [r for r in records if r['video/id'] == 'good/a.avi'][0]
  assert a['frames'].shape == (8, 32, 43, 3) and a['flow'].shape == (7, 32, 43, 2)
  assert a['clip/label/text'] == 'good' and a['clip/label/index'] == 1
  # The square moves right 2 px a frame at 64 px width = ~1 px at 43: x flow > 0 on the square.
  fx = a['flow'][..., 0].astype(np.float32) * 40 / 255 - 20
  assert fx.max() > 0.5 and np.median(fx) < 0.3
  return manifest, records


def test_local_pool_reports_failures_and_resumes(video_dir, tmp_path):
  listing = datasets.folder_dataset(video_dir)
  entries, labels = listing.entries, listing.labels
  out = str(tmp_path / 'out')
  summary = conversion.run_conversion(entries, out, 'train', 3, OPTIONS, workers=2, labels=labels, progress=False)
  assert (summary['failed'], summary['skipped_shards']) == (4, 0)
  manifest, _ = _check_output(out, 'train', 3)
  mtimes = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out) if f.endswith('.tfrecord')}
  # Rerun: every shard complete; the 4 failed videos (shards 0 and 1) are retried and fail again, so the
  # shards are untouched, the same manifest videos.
  again = conversion.run_conversion(entries, out, 'train', 3, OPTIONS, workers=1, labels=labels, progress=False)
  assert (again['skipped_shards'], again['retried_shards'], again['retried_videos'], again['recovered_videos'],
          again['failed']) == (1, 2, 4, 0, 4)
  assert mtimes == {f: os.path.getmtime(os.path.join(out, f)) for f in mtimes}
  # Without retrying: every shard skipped, the 4 earlier failures counted as such.
  kept = conversion.run_conversion(entries, out, 'train', 3, OPTIONS, labels=labels, progress=False,
                                   retry_failed=False)
  assert (kept['skipped_shards'], kept['retried_videos'], kept['earlier_failures_not_retried'], kept['failed']) == (
      3, 0, 4, 4)
  assert mtimes == {f: os.path.getmtime(os.path.join(out, f)) for f in mtimes}
  # An interrupted shard (no shard manifest) is redone whole; a stray temporary file is replaced; shard 0's
  # failures are retried, shard 2 skipped.
  victim = os.path.join(out, conversion.shard_name('train', 1, 3))
  os.remove(os.path.join(out, conversion.shard_manifest_name('train', 1, 3)))
  stray = os.path.join(out, '.tmp-0badc0de-' + os.path.basename(victim))  # a killed writer's leftover
  open(stray, 'wb').write(b'partial')
  third = conversion.run_conversion(entries, out, 'train', 3, OPTIONS, workers=1, labels=labels, progress=False)
  assert (third['skipped_shards'], third['retried_shards'], third['retried_videos'], third['videos']) == (1, 1, 2, 6)
  assert not os.path.exists(stray)
  _check_output(out, 'train', 3)
  strip = lambda videos: [{k: v for k, v in x.items() if k != 'seconds'} for x in videos]
  videos = lambda m: m['subsets']['train']['videos']
  assert strip(videos(json.load(open(os.path.join(out, 'manifest.json'))))) == strip(videos(manifest))


def test_cli_exit_status_and_summary(video_dir, tmp_path):
  out = str(tmp_path / 'cli')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'experiments', 'prepare_data.py'), '--dataset=folder',
                         f'--video_dir={video_dir}', '--subset=demo', f'--output_dir={out}', '--num_shards=2',
                         '--flow=tvl1', '--flow_params=warps=3,gamma=0.1', '--workers=1', '--resize_short_side=32',
                         '--max_frames=7'],
                        capture_output=True, text=True, env=env, timeout=240, check=False)
  # --max_frames reads only the needed prefix of each file, so the half-truncated file's first 7 frames
  # convert; the three other bad files fail.
  assert proc.returncode == 1, proc.stderr[-2000:]  # some failed (it was their count: 2 failures read as 'usage')
  assert 'demo: 3/6 videos converted, 3 failed' in proc.stdout
  assert sum(line.startswith('FAILED bad/') for line in proc.stdout.splitlines()) == 3
  manifest = json.load(open(os.path.join(out, 'manifest.json')))
  assert {v['id']: v['frames'] for v in manifest['subsets']['demo']['videos'] if v['status'] == 'ok'} == {
      'good/a.avi': 7, 'good/b.avi': 5, 'bad/truncated.avi': 7}
  assert manifest['labels'] == ['bad', 'good']
  assert manifest['subsets']['demo']['summary']['options']['flow_params'] == {'warps': 3, 'gamma': 0.1}
  assert manifest['subsets']['demo']['summary']['flow_engine'] is None  # OpenCV's tvl1: no engine to record
  # A bad parameter stops the job before any video is read.
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'experiments', 'prepare_data.py'), '--dataset=folder',
                         f'--video_dir={video_dir}', '--subset=demo', f'--output_dir={out}_bad', '--flow=tvl1',
                         '--flow_params=warp=3'], capture_output=True, text=True, env=env, timeout=240, check=False)
  assert proc.returncode == 2, proc.stderr[-800:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("prepare_data: --flow_params: Unknown DualTVL1 parameter 'warp'"), last
  assert not os.path.exists(f'{out}_bad')


def test_beam_direct_runner_writes_the_same_shards(video_dir, tmp_path):
  beam_pipeline = pytest.importorskip('data_pipelines.beam_pipeline')
  pytest.importorskip('apache_beam')
  listing = datasets.folder_dataset(video_dir)
  entries, labels = listing.entries, listing.labels
  out = str(tmp_path / 'beam')
  summary = beam_pipeline.run_beam(entries, out, 'train', 3, OPTIONS, runner='DirectRunner', labels=labels)
  assert summary['runner'] == 'DirectRunner' and summary['failed'] == 4
  _, beam_records = _check_output(out, 'train', 3)
  local = str(tmp_path / 'local')
  conversion.run_conversion(entries, local, 'train', 3, OPTIONS, workers=1, labels=labels, progress=False)
  for k in range(3):  # same shard contents, in the same order
    name = conversion.shard_name('train', k, 3)
    a, b = _records(os.path.join(out, name)), _records(os.path.join(local, name))
    assert [r['video/id'] for r in a] == [r['video/id'] for r in b]
    for ra, rb in zip(a, b):
      np.testing.assert_array_equal(ra['frames'], rb['frames'])
      np.testing.assert_array_equal(ra['flow'], rb['flow'])


def test_crashing_worker_is_reported_and_the_run_goes_on(tmp_path):
  root = tmp_path / 'v'
  (root / 'c').mkdir(parents=True)
  for name, n in [('a', 5), ('b', 3), ('c', 4), ('d', 6)]:
    write_video(str(root / 'c' / f'{name}.avi'), n)
  options = conversion.ConversionOptions(resize_short_side=16, flow='data_pipelines.testing:crash_on_three_frames')
  summary = conversion.run_conversion(datasets.folder_entries(str(root)), str(tmp_path / 'out'), 'train', 2,
                                      options, workers=2, progress=False)
  manifest = json.load(open(tmp_path / 'out' / 'manifest.json'))
  videos = manifest['subsets']['train']['videos']
  status = {v['id']: (v['status'], v['frames']) for v in videos}
  assert status == {'c/a.avi': ('ok', 5), 'c/b.avi': ('failed', 0), 'c/c.avi': ('ok', 4), 'c/d.avi': ('ok', 6)}
  assert 'crashed' in [v for v in videos if v['id'] == 'c/b.avi'][0]['error']
  assert summary['failed'] == 1


def test_remote_output_dir_through_gfile(video_dir):
  """A URL output_dir (here TF's in-memory ram:// file system) goes through tf.io.gfile."""
  entries = [e for e in datasets.folder_entries(video_dir) if e.label_text == 'good']
  out = 'ram://data_test_out'
  options = conversion.ConversionOptions(resize_short_side=16, flow='none')
  summary = conversion.run_conversion(entries, out, 'train', 2, options, workers=1, progress=False)
  assert (summary['ok'], summary['failed'], summary['frames']) == (2, 0, 13)
  assert sorted(n.rstrip('/') for n in tf.io.gfile.listdir(out)) == sorted(
      [conversion.shard_name('train', k, 2) for k in range(2)] + ['manifest.json', 'manifests'])
  assert sorted(tf.io.gfile.listdir(out + '/manifests')) == [
      'shard-train-00000-of-00002.json', 'shard-train-00001-of-00002.json', 'subset-train.json']
  assert [r['video/id'] for r in _records(os.path.join(out, conversion.shard_name('train', 0, 2)))] == ['good/a.avi']
  again = conversion.run_conversion(entries, out, 'train', 2, options, workers=1, progress=False)
  assert again['skipped_shards'] == 2


# ----- reruns, one class list per dataset, unique ids, layout (issue 13 items 1, 2, 4, 6) -----
FAST = conversion.ConversionOptions(resize_short_side=16, flow='none')


def _videos(root, rel_frames):
  for rel, n in rel_frames.items():
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(path, n)
  return str(root)


def _glob_records(pattern):
  return [fmt.decode_record_numpy(r.numpy()) for r in tf.data.TFRecordDataset(sorted(glob.glob(pattern)))]


def test_rerun_is_refused_naming_what_differs_and_overwrite_leaves_no_stale_shard(tmp_path):
  root = _videos(tmp_path / 'v', {'c/a.avi': 5, 'c/b.avi': 4, 'c/c.avi': 6, 'c/d.avi': 3})
  out = str(tmp_path / 'out')
  four = datasets.folder_entries(root)
  first = conversion.run_conversion(four, out, 'train', 2, FAST, labels=['c'], progress=False)
  assert (first['ok'], first['videos'], first['num_shards']) == (4, 4, 2)
  # A video added: the old code kept both shards and reported "4/4 converted" for 5 videos.
  write_video(os.path.join(root, 'c', 'e.avi'), 7)
  five = datasets.folder_entries(root)
  with pytest.raises(conversion.OutputConflictError) as e:
    conversion.run_conversion(five, out, 'train', 2, FAST, labels=['c'], progress=False)
  assert str(e.value) == (
      f"{out} holds subset 'train' converted from other videos or settings: 1 video(s) added: c/e.avi. "
      "Rerun with --overwrite to convert subset 'train' again (its previous shards are removed first), or "
      "choose another --output_dir")
  # Flow asked for after a run without it: refused (the manifest would have claimed tvl1 without flow).
  with pytest.raises(conversion.OutputConflictError, match="settings: flow 'none' -> 'tvl1'. Rerun"):
    conversion.run_conversion(four, out, 'train', 2, dataclasses.replace(FAST, flow='tvl1'), labels=['c'],
                              progress=False)
  # Another shard count: refused; with overwrite the old 2 shards go, so the glob reads 5 records, not 9.
  with pytest.raises(conversion.OutputConflictError, match=r'num_shards 2 -> 3; 1 video\(s\) added: c/e.avi\.'):
    conversion.run_conversion(five, out, 'train', 3, FAST, labels=['c'], progress=False)
  again = conversion.run_conversion(five, out, 'train', 3, FAST, labels=['c'], progress=False, overwrite=True)
  assert (again['ok'], again['videos'], again['skipped_shards'], again['removed_files']) == (5, 5, 0, 5)
  assert sorted(os.listdir(out)) == ['manifest.json', 'manifests'] + [
      conversion.shard_name('train', k, 3) for k in range(3)]
  assert sorted(r['video/id'] for r in _glob_records(os.path.join(out, 'train-*'))) == [
      'c/a.avi', 'c/b.avi', 'c/c.avi', 'c/d.avi', 'c/e.avi']
  # The same run again resumes: every shard complete.
  assert conversion.run_conversion(five, out, 'train', 3, FAST, labels=['c'], progress=False)['skipped_shards'] == 3
  # A video rewritten in place (same name, new content and time) is seen.
  write_video(os.path.join(root, 'c', 'b.avi'), 9)
  os.utime(os.path.join(root, 'c', 'b.avi'), ns=(time.time_ns(), time.time_ns() + 10**9))
  with pytest.raises(conversion.OutputConflictError,
                     match=r'1 video\(s\) changed \(size or modification time\): c/b.avi\.'):
    conversion.run_conversion(datasets.folder_entries(root), out, 'train', 3, FAST, labels=['c'], progress=False)
  # The key is in manifest.json: format version, shards, options, and the video list's digest.
  key = json.load(open(os.path.join(out, 'manifest.json')))['subsets']['train']['key']
  assert (key['format_version'], key['num_shards'], key['num_videos'], key['options']['flow']) == (2, 3, 5, 'none')
  assert len(key['videos_sha256']) == 64


def test_shard_manifests_match_no_shard_glob(tmp_path):
  root = _videos(tmp_path / 'v', {'c/a.avi': 4, 'c/b.avi': 3})
  out = str(tmp_path / 'out')
  conversion.run_conversion(datasets.folder_entries(root), out, 'train', 2, FAST, labels=['c'], progress=False)
  shards = [os.path.join(out, conversion.shard_name('train', k, 2)) for k in range(2)]
  for pattern in ('train-*', '*.tfrecord*', 'train*'):  # what users write (README, WORKSPACE.md)
    assert sorted(tf.io.gfile.glob(os.path.join(out, pattern))) == shards, pattern
    assert sorted(glob.glob(os.path.join(out, '**', pattern), recursive=True)) == shards, pattern
  for pattern in ('*/train-*', '*/*.tfrecord*', '*/train*'):  # TF reads '**' as '*': one folder down
    assert tf.io.gfile.glob(os.path.join(out, pattern)) == [], pattern
  from data_pipelines import make_dataset
  ds = make_dataset(os.path.join(out, 'train-*'), 'i3d_rgb', False, 1, crop_size=16, deterministic=True)
  assert [int(x.shape[1]) for x, _ in ds] == [4, 3]


def test_subsets_share_one_class_list_and_keep_their_summaries(tmp_path):
  train = datasets.folder_dataset(_videos(tmp_path / 'train', {'a/1.avi': 3, 'b/2.avi': 3, 'c/3.avi': 3}))
  out = str(tmp_path / 'out')
  conversion.run_conversion(train.entries, out, 'train', 1, FAST, labels=train.labels, progress=False)
  assert conversion.dataset_class_list(out) == (['a', 'b', 'c'], ['train'])
  # A test folder holding two of the three classes keeps the dataset's indices (the old code gave 0 and 1).
  test = datasets.folder_dataset(_videos(tmp_path / 'test', {'b/4.avi': 3, 'c/5.avi': 4}),
                                 conversion.dataset_class_list(out)[0])
  conversion.run_conversion(test.entries, out, 'test', 1, FAST, labels=test.labels, progress=False)
  records = _glob_records(os.path.join(out, 'test-*'))
  assert [(r['video/id'], r['clip/label/index'], r['clip/label/text']) for r in records] == [
      ('b/4.avi', 1, 'b'), ('c/5.avi', 2, 'c')]
  manifest = json.load(open(os.path.join(out, 'manifest.json')))
  assert manifest['labels'] == ['a', 'b', 'c']
  assert {s: (m['summary']['videos'], m['summary']['frames']) for s, m in manifest['subsets'].items()} == {
      'train': (3, 9), 'test': (2, 7)}
  # Another class list for a subset of the same dataset is refused, whatever overwrite says.
  with pytest.raises(conversion.OutputConflictError, match="holds subset 'train' converted with another class "
                     r"list \(class list differs at class 0 \('a' -> 'b'\)\)"):
    conversion.run_conversion(test.entries, out, 'test', 1, FAST, labels=['b', 'c'], progress=False, overwrite=True)


def test_two_videos_never_share_an_id_and_duplicates_stop_before_any_work(tmp_path):
  root = _videos(tmp_path / 'v', {'c/clip.avi': 3, 'c/clip.mp4': 4, 'c/sub/x.avi': 3, 'c/sub__x.avi': 5})
  out = str(tmp_path / 'out')
  summary = conversion.run_conversion(datasets.folder_entries(root), out, 'train', 1, FAST, labels=['c'],
                                      progress=False)
  assert (summary['ok'], summary['videos']) == (4, 4)
  assert [(r['video/id'], r['video/num_frames']) for r in _glob_records(os.path.join(out, 'train-*'))] == [
      ('c/clip.avi', 3), ('c/clip.mp4', 4), ('c/sub/x.avi', 3), ('c/sub__x.avi', 5)]
  # Any reader's entries (e.g. a CSV listing one clip twice) are checked before anything is written.
  a = datasets.VideoEntry('k_000001_000011', os.path.join(root, 'c', 'clip.avi'), 0, 'c')
  b = datasets.VideoEntry('k_000001_000011', os.path.join(root, 'c', 'clip.mp4'), 0, 'c')
  with pytest.raises(datasets.DatasetError) as e:
    conversion.run_conversion([a, b], str(tmp_path / 'dup'), 'train', 1, FAST, progress=False)
  assert str(e.value) == (f"two videos map to the record id 'k_000001_000011': {a.path} and {b.path}; rename one "
                          'of them (or fix the split file that lists it twice)')
  assert not os.path.exists(tmp_path / 'dup')


def test_first_layout_is_read_and_refused_for_resume(tmp_path):
  """A folder written before (sidecars beside the shards, one summary): shards still read, the sidecar left
  out of the glob; a rerun is refused with the fix; --overwrite rewrites it in the current layout."""
  root = _videos(tmp_path / 'v', {'c/a.avi': 4})
  out = tmp_path / 'old'
  out.mkdir()
  from data_pipelines.testing import write_records
  frames = np.zeros((4, 16, 21, 3), np.uint8)
  shard = out / 'train-00000-of-00001.tfrecord'
  write_records(str(shard), [fmt.encode_video(frames, None, video_id='c/a', label_index=0, label_text='c')])
  old_record = dict(id='c/a', label=0, label_text='c', path='x', frames=4, flow_frames=0, status='ok', error='',
                    shard=shard.name, seconds=0.1)
  (out / (shard.name + '.manifest.json')).write_text(json.dumps([old_record]))
  (out / 'manifest.json').write_text(json.dumps({'summary': {'subset': 'train', 'labels': ['c'], 'videos': 1},
                                                 'videos': [old_record]}))
  from data_pipelines import make_dataset
  ds = make_dataset(str(out / 'train-*'), 'i3d_rgb', False, 1, crop_size=16)
  assert [int(x.shape[1]) for x, _ in ds] == [4]
  assert conversion.dataset_class_list(str(out)) == (['c'], ['train'])
  assert conversion.failure_lines(str(out), 'train') == []
  with pytest.raises(conversion.OutputConflictError, match="written by an older prepare_data .*Rerun with "
                     "--overwrite to convert subset 'train' again"):
    conversion.run_conversion(datasets.folder_entries(root), str(out), 'train', 1, FAST, labels=['c'],
                              progress=False)
  # Another subset goes into the old folder; the old subset's summary is kept, marked as the first layout.
  conversion.run_conversion(datasets.folder_entries(root), str(out), 'test', 1, FAST, labels=['c'], progress=False)
  manifest = json.load(open(out / 'manifest.json'))
  assert (manifest['subsets']['train']['layout'], manifest['subsets']['test']['summary']['ok']) == ('first', 1)
  summary = conversion.run_conversion(datasets.folder_entries(root), str(out), 'train', 1, FAST, labels=['c'],
                                      progress=False, overwrite=True)
  assert (summary['ok'], summary['removed_files']) == (1, 2)  # the old shard and its sidecar
  assert sorted(os.listdir(out)) == ['manifest.json', 'manifests', 'test-00000-of-00001.tfrecord',
                                     'train-00000-of-00001.tfrecord']
  assert 'layout' not in json.load(open(out / 'manifest.json'))['subsets']['train']


def test_cli_class_list_skipped_files_and_refusal(tmp_path):
  train = _videos(tmp_path / 'train', {'a/1.avi': 3, 'b/2.avi': 3, 'c/3.avi': 3, 'loose.avi': 3})
  (tmp_path / 'train' / 'README.txt').write_text('about these videos\n')
  (tmp_path / 'train' / 'a' / 'notes.md').write_text('notes\n')
  test = _videos(tmp_path / 'test', {'b/4.avi': 3, 'c/5.avi': 3})
  out = str(tmp_path / 'out')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  run = lambda *args: subprocess.run(
      [sys.executable, os.path.join(REPO, 'experiments', 'prepare_data.py'), '--dataset=folder', '--flow=none',
       '--resize_short_side=16', *args], capture_output=True, text=True, env=env, timeout=240, check=False)
  proc = run(f'--video_dir={train}', '--subset=train', f'--output_dir={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  assert lines[0] == (f'skipped 2 file(s) that are not videos by their extension: {train}/README.txt, '
                      f'{train}/a/notes.md')
  assert lines[1] == (f'NOT CONVERTED: 1 video(s) directly in {train}, outside any class folder (no label): '
                      f'{train}/loose.avi; move them into a class folder')
  assert lines[2].startswith('train: 3/3 videos converted, 0 failed')
  # The test subset, with two of the three classes, is mapped by name against the recorded class list.
  proc = run(f'--video_dir={test}', '--subset=test', f'--output_dir={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert [(r['video/id'], r['clip/label/index']) for r in _glob_records(os.path.join(out, 'test-*'))] == [
      ('b/4.avi', 1), ('c/5.avi', 2)]
  manifest = json.load(open(os.path.join(out, 'manifest.json')))
  assert manifest['labels'] == ['a', 'b', 'c'] and sorted(manifest['subsets']) == ['test', 'train']
  train_summary = manifest['subsets']['train']['summary']
  assert (train_summary['videos'], train_summary['unlabelled_videos'], len(train_summary['non_video_files'])) == (
      3, [f'{train}/loose.avi'], 2)
  # A rerun with another option: one line naming the difference, exit status 2, nothing rewritten.
  proc = run(f'--video_dir={test}', '--subset=test', f'--output_dir={out}', '--fps=12.5')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f"prepare_data: {out} holds subset 'test' converted from other videos or settings: fps 25.0 -> 12.5. Rerun "
      "with --overwrite to convert subset 'test' again (its previous shards are removed first), or choose another "
      "--output_dir"]
  # A subset name that cannot name shards: '-' (train-hard would sit inside the glob train-*), '/', empty.
  for bad in ('train-hard', '../evil', ''):
    proc = run(f'--video_dir={test}', f'--subset={bad}', f'--output_dir={out}')
    assert proc.returncode == 2, proc.stderr[-1000:]
    assert proc.stderr.strip().splitlines() == [
        f"prepare_data: --subset={bad!r} cannot name shards: use letters, digits and \"_\" only (e.g. train, test, val, "
        'train_hard), so that the glob <subset>-* matches this subset alone']
  assert not glob.glob(os.path.join(tmp_path, 'evil*')) and not glob.glob(os.path.join(out, '*hard*'))
  # A class the recorded list does not have: one line naming it, before any video is read.
  _videos(tmp_path / 'test', {'d/6.avi': 3})
  proc = run(f'--video_dir={test}', '--subset=test2', f'--output_dir={out}')
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f"prepare_data: class 'd' (folder {test}/d) is not in the class list of {out}/manifest.json (3 classes): one "
      'dataset has one class list; fix the list or the data, or convert into a new --output_dir']
  assert not glob.glob(os.path.join(out, 'test2*')) and sorted(manifest['subsets']) == ['test', 'train']
  # --label_map is honoured (it was ignored for folder datasets).
  os.remove(os.path.join(test, 'd', '6.avi'))
  os.rmdir(os.path.join(test, 'd'))
  labels = tmp_path / 'labels.txt'
  labels.write_text('c\nb\na\nd\n')
  proc = run(f'--video_dir={test}', '--subset=test', f'--output_dir={out}_2', f'--label_map={labels}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert [(r['video/id'], r['clip/label/index']) for r in _glob_records(os.path.join(f'{out}_2', 'test-*'))] == [
      ('c/5.avi', 0), ('b/4.avi', 1)]  # class-index order
  assert json.load(open(os.path.join(f'{out}_2', 'manifest.json')))['labels'] == ['c', 'b', 'a', 'd']


def test_write_manifest_checks_its_shard_count_against_the_recorded_one(tmp_path):
  """write_manifest ignored num_shards: a run whose subset state another run (--overwrite, another shard
  count) had replaced meanwhile got that run's summary with its own fields (skipped_shards, seconds)."""
  root = _videos(tmp_path / 'v', {'c/a.avi': 3, 'c/b.avi': 4})
  out = str(tmp_path / 'out')
  entries = datasets.folder_entries(root)
  summary = conversion.run_conversion(entries, out, 'train', 2, FAST, labels=['c'], progress=False)
  assert (summary['num_shards'], summary['ok'], summary['complete']) == (2, 2, True)
  # This run's fields recorded with the matching count: the summary counts the 2 shards.
  again = conversion.write_manifest(out, 'train', 2, dict(skipped_shards=2, seconds=0.5))
  assert (again['num_shards'], again['videos'], again['skipped_shards'], again['seconds']) == (2, 2, 2, 0.5)
  # Another run replaces the subset with 3 shards (state written, nothing converted yet) ...
  conversion.prepare_output(entries, out, 'train', 3, FAST, ['c'], overwrite=True)
  state = open(os.path.join(out, conversion.subset_state_name('train'))).read()
  # ... then the 2-shard run records its summary: refused, naming both counts; the state is left as it was.
  with pytest.raises(conversion.OutputConflictError) as e:
    conversion.write_manifest(out, 'train', 2, dict(skipped_shards=2, seconds=0.5))
  assert str(e.value).startswith(f"{out}/manifests/subset-train.json records subset 'train' in 3 shard(s), but "
                                 'this run wrote 2: another run')
  assert open(os.path.join(out, conversion.subset_state_name('train'))).read() == state
  assert conversion.write_manifest(out, 'train', 3)['num_shards'] == 3


def test_records_class_list_expands_a_wildcard_in_the_folder_part(tmp_path):
  """The manifest beside a records glob was looked for in os.path.dirname(pattern): for 'tfr/*/test-*' that is
  the folder 'tfr/*', which does not exist, so records of any class list passed unchecked."""
  root = _videos(tmp_path / 'v', {'a/1.avi': 3, 'b/2.avi': 3})
  tfr = tmp_path / 'tfr'
  entries = datasets.folder_entries(root, labels=['a', 'b'])
  for name in ('s1', 's2'):
    conversion.run_conversion(entries, str(tfr / name), 'test', 1, FAST, labels=['a', 'b'], progress=False)
  (tfr / 'loose').mkdir()  # records without a manifest: reported as unchecked
  (tfr / 'loose' / 'test-00000-of-00001.tfrecord').write_bytes(b'')
  found = conversion.records_class_list(str(tfr / '*' / 'test-*'))
  assert found == conversion.RecordedClassList(['a', 'b'], [str(tfr / 's1' / 'manifest.json'),
                                                            str(tfr / 's2' / 'manifest.json')], [str(tfr / 'loose')])
  # No wildcard in the folder: that folder, as before; a list of patterns; a folder without manifest.
  assert conversion.records_class_list(str(tfr / 's1' / 'test-*')).labels == ['a', 'b']
  assert conversion.records_class_list([str(tfr / 's1' / 'test-*'), str(tfr / 'loose' / '*')]).unrecorded == [
      str(tfr / 'loose')]
  assert conversion.records_class_list(str(tfr / 'x*' / 'test-*')) == conversion.RecordedClassList(None, [], [])
  # One folder converted with another class order: the same index means another class there.
  conversion.run_conversion(datasets.folder_entries(root, labels=['b', 'a']), str(tfr / 's3'), 'test', 1, FAST,
                            labels=['b', 'a'], progress=False)
  with pytest.raises(datasets.DatasetError) as e:
    conversion.records_class_list(str(tfr / 's*' / 'test-*.tfrecord'))
  assert str(e.value) == (
      f"the records of '{tfr}/s*/test-*.tfrecord' were converted with different class lists: {tfr}/s1/manifest.json "
      f"and {tfr}/s3/manifest.json (class list differs at class 0 ('a' -> 'b')), so one label index names different "
      'classes: read them separately, or convert them into one dataset with one --label_map')
  (tfr / 's2' / 'manifest.json').write_text('{')
  with pytest.raises(datasets.DatasetError, match=r's2/manifest.json is not a readable manifest.json'):
    conversion.records_class_list(str(tfr / 's2' / 'test-*'))


# ----- reruns retry the videos earlier runs recorded as failed (docs/reruns.md) -----
SHARED_CLIP = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data', 'videos',
                           'v_ApplyEyeMakeup_g01_c01.avi')
TINY = conversion.ConversionOptions(resize_short_side=16, flow='none', max_frames=4)


def _raw_records(path):
  return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def _broken_then_fixed(tmp_path):
  """c/a.avi and c/c.avi good, c/b.avi a text file named .avi; 2 shards: [a], [b, c]."""
  root = _videos(tmp_path / 'v', {'c/a.avi': 5, 'c/c.avi': 6})
  (tmp_path / 'v' / 'c' / 'b.avi').write_text('not a video\n')
  return root


@pytest.mark.skipif(not os.path.exists(SHARED_CLIP), reason=f'shared clip missing: {SHARED_CLIP}')
def test_rerun_converts_a_replaced_failed_video_and_keeps_the_rest(tmp_path):
  """A failed video kept its failure forever: its shard was complete, so a rerun skipped it, and a good copy
  put in its place changed the key, so the rerun was refused; only --overwrite (everything again) helped."""
  root = _broken_then_fixed(tmp_path)
  out = str(tmp_path / 'out')
  first = conversion.run_conversion(datasets.folder_entries(root), out, 'train', 2, TINY, labels=['c'],
                                    progress=False)
  assert (first['ok'], first['failed']) == (2, 1)
  shard0, shard1 = (os.path.join(out, conversion.shard_name('train', k, 2)) for k in range(2))
  before = {p: (os.path.getmtime(p), _raw_records(p)) for p in (shard0, shard1)}
  # The user replaces the broken file with a good copy.
  with open(SHARED_CLIP, 'rb') as src, open(os.path.join(root, 'c', 'b.avi'), 'wb') as dst:
    dst.write(src.read())
  entries = datasets.folder_entries(root)
  # Not retrying: refused like any other change, saying how to convert just that video.
  with pytest.raises(conversion.OutputConflictError) as e:
    conversion.run_conversion(entries, out, 'train', 2, TINY, labels=['c'], progress=False, retry_failed=False)
  assert ("converted from other videos or settings: 1 video(s) changed (size or modification time): c/b.avi (only "
          "videos that failed in an earlier run changed: a rerun without --noretry_failed converts just them "
          "again). Rerun with --overwrite") in str(e.value)
  # The rerun converts just that video: shard 0 untouched, shard 1 keeps c/c.avi's record byte for byte.
  second = conversion.run_conversion(entries, out, 'train', 2, TINY, labels=['c'], progress=False)
  assert (second['ok'], second['failed'], second['videos'], second['complete']) == (3, 0, 3, True)
  assert (second['skipped_shards'], second['retried_shards'], second['retried_videos'],
          second['recovered_videos'], second['removed_files']) == (1, 1, 1, 1, 0)
  assert conversion.summary_line(second).startswith(
      'train: 3/3 videos converted, 0 failed, 12 frames, 0 flow fields, 2 shards (1 already complete, 1 with earlier '
      'failures: 1 video(s) retried, 1 converted now), ')
  assert (os.path.getmtime(shard0), _raw_records(shard0)) == before[shard0]
  records = [fmt.decode_record_numpy(r) for r in _raw_records(shard1)]
  assert [(r['video/id'], r['frames'].shape) for r in records] == [('c/b.avi', (4, 16, 21, 3)),
                                                                    ('c/c.avi', (4, 16, 21, 3))]
  assert _raw_records(shard1)[1] == before[shard1][1][0]
  manifest = json.load(open(os.path.join(out, 'manifest.json')))['subsets']['train']
  assert [(v['id'], v['status'], v['frames'], v['shard']) for v in manifest['videos']] == [
      ('c/a.avi', 'ok', 4, os.path.basename(shard0)), ('c/b.avi', 'ok', 4, os.path.basename(shard1)),
      ('c/c.avi', 'ok', 4, os.path.basename(shard1))]
  # The recorded key has the new file's size: the next rerun resumes with nothing to do.
  third = conversion.run_conversion(entries, out, 'train', 2, TINY, labels=['c'], progress=False)
  assert (third['skipped_shards'], third['retried_videos'], third['ok']) == (2, 0, 3)
  assert not [n for n in os.listdir(out) + os.listdir(os.path.join(out, 'manifests')) if n.startswith('.tmp-')]


def test_rerun_retries_a_transient_failure_and_a_killed_retry_redoes_its_shard(tmp_path, monkeypatch):
  """The same files, a cause outside them fixed between runs (here a flow backend that fails while a marker
  file exists: a missing codec, an unwritable cache).  The old code reported the rerun 'already complete'
  with the failure kept."""
  root = _videos(tmp_path / 'v', {'c/a.avi': 4, 'c/b.avi': 3, 'c/c.avi': 5})
  marker = tmp_path / 'broken'
  marker.write_text('')

  def flaky(gray):
    if gray.shape[0] == 3 and marker.exists():
      raise RuntimeError('codec missing')
    return np.zeros((gray.shape[0] - 1,) + gray.shape[1:] + (2,), np.float32)

  from data_pipelines import flow as flow_lib
  monkeypatch.setitem(flow_lib.FLOW_BACKENDS, 'test_flaky', flaky)
  options = conversion.ConversionOptions(resize_short_side=16, flow='test_flaky')
  entries = datasets.folder_entries(root)
  out = str(tmp_path / 'out')
  run = lambda **kw: conversion.run_conversion(entries, out, 'train', 2, options, labels=['c'], progress=False, **kw)
  assert (run()['failed'], conversion.failure_lines(out, 'train')) == (
      1, [f'FAILED c/b.avi ({root}/c/b.avi): RuntimeError: codec missing'])
  # Still broken, not retried: the failure is counted as an earlier run's, never 'all done'.
  kept = run(retry_failed=False)
  assert (kept['failed'], kept['earlier_failures_not_retried'], kept['skipped_shards']) == (1, 1, 2)
  assert 'train: 2/3 videos converted, 1 failed (1 in an earlier run, not retried: rerun without ' \
         '--noretry_failed once the cause is fixed)' in conversion.summary_line(kept)
  marker.unlink()  # the cause is fixed
  # A retry killed while rewriting its shard: the shard's manifest went first, so the shard is incomplete.
  real_write = fmt.write_tfrecord
  monkeypatch.setattr(fmt, 'write_tfrecord', lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
  with pytest.raises(KeyboardInterrupt):
    run()
  assert conversion.shard_complete(out, 'train', 0, 2) and not conversion.shard_complete(out, 'train', 1, 2)
  monkeypatch.setattr(fmt, 'write_tfrecord', real_write)
  done = run()
  assert (done['ok'], done['failed'], done['skipped_shards'], done['retried_videos']) == (3, 0, 1, 0)
  assert [(r['video/id'], r['video/num_frames'], r['flow/num_frames']) for r in _glob_records(
      os.path.join(out, 'train-*'))] == [('c/a.avi', 4, 3), ('c/b.avi', 3, 2), ('c/c.avi', 5, 4)]


@pytest.mark.skipif(not os.path.exists(SHARED_CLIP), reason=f'shared clip missing: {SHARED_CLIP}')
def test_beam_rerun_retries_failed_videos_like_the_pool(tmp_path):
  beam_pipeline = pytest.importorskip('data_pipelines.beam_pipeline')
  pytest.importorskip('apache_beam')
  root = _broken_then_fixed(tmp_path)
  out = str(tmp_path / 'beam')
  first = beam_pipeline.run_beam(datasets.folder_entries(root), out, 'train', 2, TINY, labels=['c'])
  assert (first['ok'], first['failed']) == (2, 1)
  shard0 = os.path.join(out, conversion.shard_name('train', 0, 2))
  mtime = os.path.getmtime(shard0)
  with open(SHARED_CLIP, 'rb') as src, open(os.path.join(root, 'c', 'b.avi'), 'wb') as dst:
    dst.write(src.read())
  second = beam_pipeline.run_beam(datasets.folder_entries(root), out, 'train', 2, TINY, labels=['c'])
  assert (second['ok'], second['failed'], second['skipped_shards'], second['retried_videos'],
          second['recovered_videos']) == (3, 0, 1, 1, 1)
  assert os.path.getmtime(shard0) == mtime
  assert [r['video/id'] for r in _glob_records(os.path.join(out, 'train-*'))] == ['c/a.avi', 'c/b.avi', 'c/c.avi']


@pytest.mark.skipif(not os.path.exists(SHARED_CLIP), reason=f'shared clip missing: {SHARED_CLIP}')
def test_cli_rerun_reports_and_retries_earlier_failures(tmp_path):
  root = _broken_then_fixed(tmp_path)
  out = str(tmp_path / 'out')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  run = lambda *args: subprocess.run(
      [sys.executable, os.path.join(REPO, 'experiments', 'prepare_data.py'), '--dataset=folder', '--flow=none',
       '--resize_short_side=16', '--max_frames=4', '--num_shards=2', f'--video_dir={root}', '--subset=train',
       f'--output_dir={out}', *args], capture_output=True, text=True, env=env, timeout=240, check=False)
  proc = run('--noretry_failed')  # (a first run has nothing to retry; the flag is accepted)
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert proc.stdout.splitlines()[:1] == [
      f'FAILED c/b.avi ({root}/c/b.avi): VideoDecodeError: not a readable video: {root}/c/b.avi']
  assert proc.stdout.splitlines()[-1].startswith('train: 2/3 videos converted, 1 failed, 8 frames')
  with open(SHARED_CLIP, 'rb') as src, open(os.path.join(root, 'c', 'b.avi'), 'wb') as dst:
    dst.write(src.read())
  proc = run()
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.splitlines()[-1].startswith(
      'train: 3/3 videos converted, 0 failed, 12 frames, 0 flow fields, 2 shards (1 already complete, 1 with '
      'earlier failures: 1 video(s) retried, 1 converted now), ')
