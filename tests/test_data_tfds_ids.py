"""TFDS builders: two videos with one example key (video id) are refused before any video is decoded."""

import pytest

tfds = pytest.importorskip('tensorflow_datasets', reason='tensorflow-datasets not importable')

from data_pipelines import datasets, tfds_builders  # noqa: E402
from data_pipelines.testing import write_video  # noqa: E402


def test_duplicate_video_ids_stop_the_build_before_any_decode(tmp_path, monkeypatch):
  root = tmp_path / 'manual'
  (root / 'splits').mkdir(parents=True)
  (root / 'videos' / 'Archery').mkdir(parents=True)
  (root / 'videos' / 'Bowling').mkdir(parents=True)
  (root / 'splits' / 'classInd.txt').write_text('1 Archery\n2 Bowling\n')
  write_video(str(root / 'videos' / 'Archery' / 'v_x.avi'), 4)
  write_video(str(root / 'videos' / 'Bowling' / 'v_x.avi'), 4)
  # Two class folders hold a clip of the same name: UCF ids are file stems, so both would be 'v_x'.
  (root / 'splits' / 'trainlist01.txt').write_text('Archery/v_x.avi 1\nBowling/v_x.avi 2\n')
  (root / 'splits' / 'testlist01.txt').write_text('')
  decoded = []
  monkeypatch.setattr(tfds_builders.conversion, 'decode_with_flow',
                      lambda path, options: decoded.append(path) or pytest.fail('decoded a video'))
  builder = tfds_builders.Ucf101Local(data_dir=str(tmp_path / 'tfds'), config=tfds_builders.small_config(
      resize_short_side=16, flow='none', num_classes=2))
  with pytest.raises(datasets.DatasetError) as e:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  assert str(e.value) == (f"two videos map to the record id 'v_x': {root}/videos/Archery/v_x.avi and "
                          f'{root}/videos/Bowling/v_x.avi; rename one of them (or fix the split file that lists it '
                          'twice)')
  assert decoded == []
