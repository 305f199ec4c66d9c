"""The class list of evaluated records against the model's: a mismatch is an error, never shifted labels.
"""

from typing import List, Optional, Sequence


class ClassListMismatchError(ValueError):
  """Records labelled with another class list than the model's: their metrics would be meaningless."""

def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
  for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
      return f'class {i} is {x!r} in the records but {y!r} for the model'
  return f'{len(a)} classes in the records, {len(b)} for the model'


def check_records_class_list(file_pattern: str, class_names: Sequence[str],
                             source: str = "the model's class names") -> None:
  """Raises ClassListMismatchError when the manifest.json next to the shards records another class list
  than `class_names` (nothing is checked when there is no manifest or it lists no classes).

  Args:
    file_pattern: the records' glob; manifest.json is looked for in each folder it matches
      (`data_pipelines.conversion.records_class_list`).
    class_names: the model's class names in logit order.
    source: how the message names `class_names` (e.g. '--class_names=labels.txt').
  """
  from data_pipelines import conversion  # pylint: disable=g-import-not-at-top
  found = conversion.records_class_list(file_pattern)
  recorded = found.labels
  if recorded is None or list(recorded) == list(class_names):
    return
  path = found.manifests[0]
  raise ClassListMismatchError(
      f'the records\' class list ({path}) differs from {source}: {_first_difference(recorded, class_names)}; '
      'convert the data with prepare_data --label_map=<the training data\'s manifest.json>, or pass the '
      'model\'s --class_names')


def manifest_class_names(file_pattern: str) -> Optional[List[str]]:
  """The class list in the `manifest.json` files that prepare_data writes next to the records of `file_pattern`
  (`data_pipelines.conversion.records_class_list`: every folder the glob matches, wildcards in the folder part
  included), or None when none records one.

  Args:
    file_pattern: the records' glob (or a list of globs).

  Raises:
    data_pipelines.datasets.DatasetError: folders of the glob recording different class lists, or a
      manifest.json that is not JSON (one line naming the files).
  """
  from data_pipelines import conversion  # pylint: disable=g-import-not-at-top
  return conversion.records_class_list(file_pattern).labels


def training_class_names(checkpoint: Optional[str]) -> Optional[List[str]]:
  """The class list of the data a checkpoint was trained on: its model_dir's config.json names the training
  records, whose manifest.json lists the classes (None when either is missing)."""
  if not checkpoint or checkpoint == 'kinetics400':
    return None
  from i3d_tf.checkpoints.restore import config_next_to, resolve_checkpoint  # pylint: disable=g-import-not-at-top
  try:
    config = config_next_to(resolve_checkpoint(checkpoint)) or {}
  except (FileNotFoundError, ValueError):
    return None
  train_data = config.get('train_data')
  if not train_data or train_data.startswith('synthetic'):
    return None
  return manifest_class_names(train_data)
