"""Conversion to shards: bad inputs reported, good videos present, resumable, CLI exit status, Beam."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import conversion, datasets
from data_pipelines import tfrecord_format as fmt
from data_pipelines.testing import write_video

REPO = os.path.join(os.path.dirname(__file__), '..')
OPTIONS = conversion.ConversionOptions(resize_short_side=32, flow='tvl1')
BAD = {'bad/truncated': 'truncated', 'bad/zero': 'empty file', 'bad/text': 'not a readable video',
       'bad/one': '1 frame(s) decoded'}


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
  status = {v['id']: v for v in manifest['videos']}
  assert sorted(status) == ['bad/one', 'bad/text', 'bad/truncated', 'bad/zero', 'good/a', 'good/b']
  for vid, reason in BAD.items():
    assert status[vid]['status'] == 'failed' and reason in status[vid]['error'], status[vid]
  assert status['good/a']['frames'] == 8 and status['good/a']['flow_frames'] == 7
  assert status['good/b']['frames'] == 5 and status['good/b']['flow_frames'] == 4  # 6 frames at 30 fps
  s = manifest['summary']
  assert (s['videos'], s['ok'], s['failed'], s['frames'], s['flow_frames']) == (6, 2, 4, 13, 11)
  names = sorted(f for f in os.listdir(out_dir) if f.endswith('.tfrecord'))
  assert names == [conversion.shard_name(subset, k, num_shards) for k in range(num_shards)]
  assert not [f for f in os.listdir(out_dir) if f.startswith('.tmp-')]
  records = [r for n in names for r in _records(os.path.join(out_dir, n))]
  assert sorted(r['video/id'] for r in records) == ['good/a', 'good/b']
  a = [r for r in records if r['video/id'] == 'good/a'][0]
  assert a['frames'].shape == (8, 32, 43, 3) and a['flow'].shape == (7, 32, 43, 2)
  assert a['clip/label/text'] == 'good' and a['clip/label/index'] == 1
  # The square moves right 2 px a frame at 64 px width = ~1 px at 43: x flow > 0 on the square.
  fx = a['flow'][..., 0].astype(np.float32) * 40 / 255 - 20
  assert fx.max() > 0.5 and np.median(fx) < 0.3
  return manifest, records


def test_local_pool_reports_failures_and_resumes(video_dir, tmp_path):
  entries = datasets.folder_entries(video_dir)
  out = str(tmp_path / 'out')
  summary = conversion.run_conversion(entries, out, 'train', 3, OPTIONS, workers=2, progress=False)
  assert (summary['failed'], summary['skipped_shards']) == (4, 0)
  manifest, _ = _check_output(out, 'train', 3)
  mtimes = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out) if f.endswith('.tfrecord')}
  # Rerun: every shard complete -> skipped, shards untouched, same manifest videos.
  again = conversion.run_conversion(entries, out, 'train', 3, OPTIONS, workers=1, progress=False)
  assert again['skipped_shards'] == 3 and again['failed'] == 4
  assert mtimes == {f: os.path.getmtime(os.path.join(out, f)) for f in mtimes}
  # An interrupted shard (no sidecar) is redone; a stray temporary file is replaced.
  victim = os.path.join(out, conversion.shard_name('train', 1, 3))
  os.remove(victim + '.manifest.json')
  stray = os.path.join(out, '.tmp-0badc0de-' + os.path.basename(victim))  # a killed writer's leftover
  open(stray, 'wb').write(b'partial')
  third = conversion.run_conversion(entries, out, 'train', 3, OPTIONS, workers=1, progress=False)
  assert third['skipped_shards'] == 2 and third['videos'] == 6
  assert not os.path.exists(stray)
  _check_output(out, 'train', 3)
  strip = lambda videos: [{k: v for k, v in x.items() if k != 'seconds'} for x in videos]
  assert strip(json.load(open(os.path.join(out, 'manifest.json')))['videos']) == strip(manifest['videos'])


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
  assert proc.returncode == 3, proc.stderr[-2000:]
  assert 'demo: 3/6 videos converted, 3 failed' in proc.stdout
  assert sum(line.startswith('FAILED bad/') for line in proc.stdout.splitlines()) == 3
  manifest = json.load(open(os.path.join(out, 'manifest.json')))
  assert {v['id']: v['frames'] for v in manifest['videos'] if v['status'] == 'ok'} == {
      'good/a': 7, 'good/b': 5, 'bad/truncated': 7}
  assert manifest['summary']['labels'] == ['bad', 'good']
  assert manifest['summary']['options']['flow_params'] == {'warps': 3, 'gamma': 0.1}
  # A bad parameter stops the job before any video is read.
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'experiments', 'prepare_data.py'), '--dataset=folder',
                         f'--video_dir={video_dir}', '--subset=demo', f'--output_dir={out}_bad', '--flow=tvl1',
                         '--flow_params=warp=3'], capture_output=True, text=True, env=env, timeout=240, check=False)
  assert proc.returncode == 1 and "--flow_params: Unknown DualTVL1 parameter 'warp'" in proc.stderr, proc.stderr[-800:]
  assert not os.path.exists(f'{out}_bad')


def test_beam_direct_runner_writes_the_same_shards(video_dir, tmp_path):
  try:
    from data_pipelines import beam_pipeline
    import apache_beam  # noqa: F401
  except ImportError as e:
    pytest.skip(f'apache-beam not importable: {e!r}')
  entries = datasets.folder_entries(video_dir)
  out = str(tmp_path / 'beam')
  summary = beam_pipeline.run_beam(entries, out, 'train', 3, OPTIONS, runner='DirectRunner')
  assert summary['runner'] == 'DirectRunner' and summary['failed'] == 4
  _, beam_records = _check_output(out, 'train', 3)
  local = str(tmp_path / 'local')
  conversion.run_conversion(entries, local, 'train', 3, OPTIONS, workers=1, progress=False)
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
  status = {v['id']: (v['status'], v['frames']) for v in manifest['videos']}
  assert status == {'c/a': ('ok', 5), 'c/b': ('failed', 0), 'c/c': ('ok', 4), 'c/d': ('ok', 6)}
  assert 'crashed' in [v for v in manifest['videos'] if v['id'] == 'c/b'][0]['error']
  assert summary['failed'] == 1


def test_remote_output_dir_through_gfile(video_dir):
  """A URL output_dir (here TF's in-memory ram:// file system) goes through tf.io.gfile."""
  entries = [e for e in datasets.folder_entries(video_dir) if e.label_text == 'good']
  out = 'ram://data_test_out'
  options = conversion.ConversionOptions(resize_short_side=16, flow='none')
  summary = conversion.run_conversion(entries, out, 'train', 2, options, workers=1, progress=False)
  assert (summary['ok'], summary['failed'], summary['frames']) == (2, 0, 13)
  assert sorted(tf.io.gfile.listdir(out)) == sorted(
      [conversion.shard_name('train', k, 2) + ext for k in range(2) for ext in ('', '.manifest.json')] +
      ['manifest.json'])
  assert [r['video/id'] for r in _records(os.path.join(out, conversion.shard_name('train', 0, 2)))] == ['good/a']
  again = conversion.run_conversion(entries, out, 'train', 2, options, workers=1, progress=False)
  assert again['skipped_shards'] == 2
