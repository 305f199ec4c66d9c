"""TFDS builders over local files (manual_dir), on a tiny generated UCF-101-like tree."""


import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets', reason='tensorflow-datasets not importable')

from data_pipelines import tfds_builders  # noqa: E402
from data_pipelines.testing import write_video  # noqa: E402


@pytest.fixture(scope='module')
def manual_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('ucf_manual')
  (root / 'splits').mkdir()
  (root / 'splits' / 'classInd.txt').write_text('1 Archery\n2 Bowling\n')
  train, test = [], []
  for cls, label in [('Archery', 1), ('Bowling', 2)]:
    (root / 'videos' / cls).mkdir(parents=True)
    for g in (1, 2):
      name = f'{cls}/v_{cls}_g0{g}_c01.avi'
      write_video(str(root / 'videos' / name), 4 + g, step=2 * label)
      (train if g == 1 else test).append(name)
  (root / 'splits' / 'trainlist01.txt').write_text(''.join(f'{n} {i + 1}\n' for i, n in enumerate(train)))
  (root / 'splits' / 'testlist01.txt').write_text(''.join(f'{n}\n' for n in test))
  open(root / 'videos' / 'Bowling' / 'v_Bowling_g02_c01.avi', 'wb').close()  # a broken test video
  return str(root)


def test_ucf101_local_builder(manual_dir, tmp_path):
  config = tfds_builders.small_config(resize_short_side=32, flow='tvl1', num_classes=2)
  builder = tfds_builders.Ucf101Local(data_dir=str(tmp_path), config=config)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  train = list(tfds.as_numpy(builder.as_dataset(split='train')))
  test = list(tfds.as_numpy(builder.as_dataset(split='test')))
  assert len(train) == 2 and len(test) == 1  # the zero-byte test video is skipped
  by_id = {ex['video_id'].decode(): ex for ex in train}
  ex = by_id['v_Archery_g01_c01']
  assert ex['video'].shape == (5, 32, 43, 3) and ex['video'].dtype == np.uint8
  assert ex['flow_x'].shape == (4, 32, 43, 1) and ex['flow_y'].shape == (4, 32, 43, 1)
  assert ex['label'] == 0 and by_id['v_Bowling_g01_c01']['label'] == 1
  assert test[0]['video_id'] == b'v_Archery_g02_c01' and test[0]['video'].shape[0] == 6
  # The square moves right: positive x flow (q > 128) somewhere, quantized like data_pipelines.flow.
  assert ex['flow_x'].max() > 131
  assert builder.info.features['label'].num_classes == 2
