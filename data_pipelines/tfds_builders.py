"""tensorflow-datasets builders for UCF-101, HMDB-51 and Kinetics from the user's local files (manual_dir).

TFDS ships no offline builders for these datasets; these read videos and official split files from
`manual_dir` and run the same decode (25 fps, short side 256) and TV-L1 flow code as
`experiments/prepare_data.py` (`conversion.decode_with_flow`).  Videos that fail to decode are skipped with
a warning (use prepare_data.py for a manifest of failures).

manual_dir layout:
  ucf101_local:    videos/<Class>/v_*.avi,  splits/classInd.txt, trainlist0N.txt, testlist0N.txt
  hmdb51_local:    videos/<class>/*.avi,    splits/<class>_test_splitN.txt
  kinetics_local:  videos/{train,val}/...,  splits/kinetics-<400|600>_{train,val}.csv,
                   optional splits/label_map.txt

Features: 'video' (uint8 [T, H, W, 3], JPEG frames), 'flow_x' / 'flow_y' (uint8 [T - 1, H, W, 1], PNG,
quantized as in data_pipelines.flow; absent with flow='none'), 'label' (ClassLabel), 'label_text',
'video_id'.
"""

import logging
import os
from typing import Optional

import tensorflow_datasets as tfds

from data_pipelines import constants, conversion, datasets


class LocalVideoConfig(tfds.core.BuilderConfig):
  """split: official split number (UCF/HMDB) or Kinetics version (400/600); conversion options."""

  def __init__(self, *, split: int = 1, resize_short_side: int = constants.RESIZE_SHORT_SIDE, flow: str = 'tvl1',
               max_frames: Optional[int] = None, num_classes: Optional[int] = None,
               flow_pad_multiple: Optional[int] = None, **kwargs):
    kwargs.setdefault('version', tfds.core.Version('1.0.0'))
    super().__init__(**kwargs)
    self.split = split
    self.options = conversion.ConversionOptions(  # flow padding: prepare_data's default for `flow`
        resize_short_side=resize_short_side, flow=flow, max_frames=max_frames,
        flow_pad_multiple=conversion.default_flow_pad_multiple(flow, flow_pad_multiple))
    self.num_classes = num_classes


class _LocalVideoBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared generator: entries from `datasets` readers -> decode + flow -> examples."""
  VERSION = tfds.core.Version('1.0.0')
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  NUM_CLASSES = 0

  def _info(self):
    cfg = self.builder_config
    video_shape = (None, None, None, 3)
    features = {'video': tfds.features.Video(video_shape, encoding_format='jpeg'),
                'label': tfds.features.ClassLabel(num_classes=cfg.num_classes or self.NUM_CLASSES),
                'label_text': tfds.features.Text(), 'video_id': tfds.features.Text()}
    if cfg.options.flow != 'none':
      features['flow_x'] = tfds.features.Video((None, None, None, 1), encoding_format='png')
      features['flow_y'] = tfds.features.Video((None, None, None, 1), encoding_format='png')
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features),
                                          supervised_keys=('video', 'label'))

  _SUBSETS = ('train', 'test')
  _SPLIT_READER = None  # UCF-101 / HMDB-51: the datasets reader, (video_dir, split_dir, split, subset) -> entries

  def _entries(self, manual_dir, subset):
    """The VideoEntry list of `subset`: by default `_SPLIT_READER` over videos/ and splits/ at the config's split."""
    if self._SPLIT_READER is None:
      raise NotImplementedError
    return self._SPLIT_READER(os.path.join(manual_dir, 'videos'), os.path.join(manual_dir, 'splits'),
                              self.builder_config.split, subset)

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    splits = {subset: self._entries(manual_dir, subset) for subset in self._SUBSETS}
    for entries in splits.values():
      datasets.check_unique_ids(entries)  # example keys are the video ids: two videos, one key -> refuse now
    return {subset: self._generate_examples(entries) for subset, entries in splits.items()}

  def _generate_examples(self, entries):
    options = self.builder_config.options
    for entry in entries:
      try:
        decoded, flow_q = conversion.decode_with_flow(entry.path, options)
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('skipped %s: %s', entry.path, e)
        continue
      example = {'video': decoded.frames, 'label': entry.label_index, 'label_text': entry.label_text,
                 'video_id': entry.video_id}
      if flow_q is not None:
        example['flow_x'] = flow_q[..., :1]
        example['flow_y'] = flow_q[..., 1:]
      yield entry.video_id, example


def _split_configs():
  return [LocalVideoConfig(name=f'split{k}', description=f'official split {k}', split=k) for k in (1, 2, 3)]


class Ucf101Local(_LocalVideoBuilder):
  """UCF-101 from local files (official splits 1-3)."""
  NUM_CLASSES = 101
  BUILDER_CONFIGS = _split_configs()
  _SPLIT_READER = staticmethod(datasets.ucf101_entries)


class Hmdb51Local(_LocalVideoBuilder):
  """HMDB-51 from local files (official splits 1-3)."""
  NUM_CLASSES = 51
  BUILDER_CONFIGS = _split_configs()
  _SPLIT_READER = staticmethod(datasets.hmdb51_entries)


class KineticsLocal(_LocalVideoBuilder):
  """Kinetics-400 / -600 from locally downloaded clips (train and val)."""
  BUILDER_CONFIGS = [LocalVideoConfig(name='400', split=400, num_classes=400),
                     LocalVideoConfig(name='600', split=600, num_classes=600)]
  _SUBSETS = ('train', 'val')

  def _entries(self, manual_dir, subset):
    n = self.builder_config.split
    splits = os.path.join(manual_dir, 'splits')
    label_map = os.path.join(splits, 'label_map.txt')
    labels = datasets.read_label_map(label_map) if os.path.exists(label_map) else None
    entries, _ = datasets.kinetics_entries(os.path.join(manual_dir, 'videos', subset),
                                           os.path.join(splits, f'kinetics-{n}_{subset}.csv'), labels)
    return entries


def small_config(base: str = 'split1', split: int = 1, **kwargs) -> LocalVideoConfig:
  """A config with other conversion options (tests, demos): e.g. small_config(resize_short_side=32).

  Args:
    base: the config is named `<base>_custom`.
    split: official split 1-3 (UCF-101, HMDB-51) or Kinetics version 400 / 600.
    **kwargs: other `LocalVideoConfig` arguments (resize_short_side, flow, max_frames, num_classes).
  """
  return LocalVideoConfig(name=f'{base}_custom', split=split, **kwargs)


__all__ = ['LocalVideoConfig', 'Ucf101Local', 'Hmdb51Local', 'KineticsLocal', 'small_config']
