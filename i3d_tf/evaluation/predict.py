"""Whole-video convolutional testing (Sec. 2.5): the prediction loop over TFRecords and `evaluate`.

Views are folded into the batch and their softmax averaged (`i3d_tf.scoring`).
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from i3d_tf import scoring
from i3d_tf.evaluation.class_lists import ClassListMismatchError, check_records_class_list
from i3d_tf.evaluation.metrics import labelled_metrics
from i3d_tf.evaluation.results import unlabelled_message, write_results


def _as_numpy_inputs(inputs):
  if isinstance(inputs, dict):
    return {k: np.asarray(v) for k, v in inputs.items()}
  return np.asarray(inputs)


def _fold_views(x):
  """[B, V, T, H, W, C] -> ([B * V, T, H, W, C], V); [B, T, H, W, C] -> (x, 1)."""
  if x.ndim == 6:
    b, v = x.shape[:2]
    return x.reshape((b * v,) + x.shape[2:]), v
  if x.ndim != 5:
    raise ValueError(f'Video inputs must be [B, T, H, W, C] or [B, V, T, H, W, C]. Received: {x.shape}')
  return x, 1


def predict_video_batch(predict_fn, inputs) -> np.ndarray:
  """Per-video class probabilities [B, K]: views folded into the batch, softmax averaged over views.

  `predict_fn(inputs) -> logits [B', K]` (or per-step [B', T, K], scored on the last step as Sec. 2.1);
  `inputs` an array or a dict of arrays (two-stream).
  """
  if isinstance(inputs, dict):
    folded, views = {}, set()
    for k, v in inputs.items():
      folded[k], nv = _fold_views(np.asarray(v))
      views.add(nv)
    if len(views) != 1:
      raise ValueError(f'All streams need the same number of views. Received: {views}')
    num_views = views.pop()
    batch = next(iter(inputs.values())).shape[0]
  else:
    folded, num_views = _fold_views(np.asarray(inputs))
    batch = inputs.shape[0]
  logits = scoring.last_step(np.asarray(predict_fn(folded), np.float64))  # per-step outputs: the last step
  if logits.ndim != 2 or logits.shape[0] != batch * num_views:
    raise ValueError(f'The model must return logits [B * V, K] = [{batch * num_views}, K]. Received: '
                     f'{logits.shape}')
  return scoring.average_views(logits.reshape(batch, num_views, -1))


def make_predict_fn(model):
  """A retrace-free `predict_fn` for any video length (None time/space dims), dict or array inputs.

  Args:
    model: a Keras model returning logits [B, K] (or per-step [B, T, K]); any compute precision (its
      outputs are cast to float32).

  Returns:
    predict_fn(x) -> float32 numpy logits, for x a [B, T, H, W, C] array or a {'rgb', 'flow'} dict.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  @tf.function(reduce_retracing=True)
  def _call(x):
    return tf.cast(model(x, training=False), tf.float32)

  def predict_fn(x):
    if isinstance(x, dict):
      x = {k: tf.convert_to_tensor(v, tf.float32) for k, v in x.items()}
    else:
      x = tf.convert_to_tensor(x, tf.float32)
    return _call(x).numpy()

  return predict_fn


def run_predictions(predict_fn, dataset: Iterable, max_videos: Optional[int] = None, progress: bool = True
                    ) -> Dict[str, np.ndarray]:
  """Iterates `(inputs, labels)` (or `(inputs, labels, video_ids)`) batches; returns labels, probs, ids.

  A batch that fails is reported on stderr and skipped (its videos are counted in 'num_failed'), as are
  the records a `records_with_video_ids` dataset lists in its `skipped` (named in 'skipped_videos').

  Args:
    predict_fn: inputs -> logits (`make_predict_fn`).
    dataset: the batches.
    max_videos: stop after this many videos.
    progress: a progress bar on stderr.
  """
  import sys  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  labels, probs, ids = [], [], []
  failed = 0
  bar = tqdm(total=max_videos, unit='video', disable=not progress, desc='evaluate')
  try:
    for element in dataset:
      inputs, batch_labels = element[0], element[1]
      batch_ids = element[2] if len(element) > 2 else None
      if isinstance(inputs, dict) and 'video_id' in inputs:
        inputs = dict(inputs)
        batch_ids = inputs.pop('video_id')
      batch_labels = np.asarray(batch_labels).reshape(-1)
      try:
        p = predict_video_batch(predict_fn, _as_numpy_inputs(inputs))
      except Exception as e:  # pylint: disable=broad-except
        failed += len(batch_labels)
        print(f'evaluate: skipped a batch of {len(batch_labels)} video(s): {e!r}', file=sys.stderr)
        continue
      if batch_ids is None:
        batch_ids = [f'video_{len(ids) + i:06d}' for i in range(len(batch_labels))]
      batch_ids = [i.decode() if isinstance(i, bytes) else str(i) for i in np.asarray(batch_ids).reshape(-1)]
      labels.append(batch_labels)
      probs.append(p)
      ids.extend(batch_ids)
      bar.update(len(batch_labels))
      if max_videos and len(ids) >= max_videos:
        break
  finally:
    bar.close()
  skipped = [v for _, v in getattr(dataset, 'skipped', ())]  # records the input pipeline dropped
  skipped_shards = [f'{p}: {r}' for p, r in getattr(dataset, 'skipped_shards', ())]
  failed += len(skipped)
  if not probs:
    raise RuntimeError(f'No video could be evaluated ({failed} failed, {len(skipped_shards)} shard(s) '
                       'unreadable).')
  return {'labels': np.concatenate(labels).astype(np.int64), 'probabilities': np.concatenate(probs),
          'video_ids': np.asarray(ids), 'num_failed': failed, 'skipped_videos': skipped,
          'skipped_shards': skipped_shards}


class records_with_video_ids:  # pylint: disable=invalid-name  (used like the generator function it was)
  """Whole-video test batches `(inputs, labels, [video_id])` from TFRecords, in file and record order.

  One deterministic `data_pipelines.make_dataset(..., training=False, batch_size=1, with_video_ids=True)`
  per shard.  A shard that cannot be read (or, with `skip_corrupt=True`, fails its CRC checks) is reported
  and kept in `self.skipped_shards` as `(shard, reason)`; with `skip_corrupt=True` a record that fails to
  decode is dropped by the pipeline, and its video id (read from the shard first) is reported and kept in
  `self.skipped` as `(shard, video_id)`.  `run_predictions` counts those videos as failed and lists both.
  """

  def __init__(self, file_pattern: str, model_name: str, **make_dataset_kwargs):
    from data_pipelines.shards import list_shards  # pylint: disable=g-import-not-at-top
    self.file_pattern = file_pattern
    self.files = list_shards(file_pattern)  # every file a TFRecord (a matched manifest.json is named)
    self.model_name, self.kwargs = model_name, make_dataset_kwargs
    self.class_names: Optional[List[str]] = None
    self.skipped: List[Tuple[str, str]] = []
    self.skipped_shards: List[Tuple[str, str]] = []

  def check_class_names(self, class_names: Sequence[str], source: str = "the model's class names"):
    """Refuses records whose class list differs from `class_names`: at once against the manifest.json next
    to the shards, then record by record (label index vs label text) as the shards are read.

    Args:
      class_names: the model's K names.
      source: where they came from, for the error message.

    Raises:
      ClassListMismatchError: the manifest's class list differs (later records: when they are read).
    """
    check_records_class_list(self.file_pattern, class_names, source)
    self.class_names = list(class_names)

  def _check_record(self, path, video_id, index, text):
    names = self.class_names
    if names is None or index < 0 or not text:
      return
    if index >= len(names) or names[index] != text:
      model = repr(names[index]) if index < len(names) else f'out of range ({len(names)} classes)'
      raise ClassListMismatchError(
          f'record {video_id!r} in {path} has label {index} {text!r}, but the model\'s class {index} is {model}: '
          'the records were converted with another class list; convert them with prepare_data '
          '--label_map=<the training data\'s manifest.json>, or pass the model\'s --class_names')

  def __iter__(self):
    import sys  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
    from data_pipelines import make_dataset  # pylint: disable=g-import-not-at-top
    spec = {'video/id': tf.io.FixedLenFeature([], tf.string, default_value=''),
            'clip/label/index': tf.io.FixedLenFeature([], tf.int64, default_value=-1),
            'clip/label/text': tf.io.FixedLenFeature([], tf.string, default_value='')}
    self.skipped, self.skipped_shards = [], []
    for path in self.files:
      try:
        contexts = [tf.io.parse_single_sequence_example(r, spec)[0] for r in tf.data.TFRecordDataset(path)]
        ids = [c['video/id'].numpy().decode() for c in contexts]
        for vid, c in zip(ids, contexts):
          self._check_record(path, vid, int(c['clip/label/index']), c['clip/label/text'].numpy().decode())
        dataset = make_dataset(path, self.model_name, training=False, batch_size=1, deterministic=True,
                               with_video_ids=True, **self.kwargs)
      except ClassListMismatchError:
        raise
      except input_pipeline.CropTooLargeError:  # a setting, not a bad shard: every shard would be skipped
        raise
      except (tf.errors.OpError, ValueError) as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        print(f'evaluate: skipped shard {path}: {reason}', file=sys.stderr)
        self.skipped_shards.append((path, reason))
        continue
      seen = set()
      for inputs, labels, video_ids in dataset:
        video_ids = [v.decode() for v in video_ids.numpy()]
        seen.update(video_ids)
        yield inputs, labels, video_ids
      missing = [v for v in ids if v not in seen]
      if missing:
        self.skipped.extend((path, v) for v in missing)
        print(f'evaluate: {path}: {len(missing)} of {len(ids)} records failed to decode and were skipped: '
              f'{", ".join(missing[:20])}{" ..." if len(missing) > 20 else ""}', file=sys.stderr)


def evaluate(model, dataset: Iterable, num_classes: int, output_dir: Optional[str] = None,
             class_names: Optional[Sequence[str]] = None, max_videos: Optional[int] = None,
             extra: Optional[Dict] = None, progress: bool = True) -> Dict:
  """Whole-video evaluation of `model` on `(inputs, labels)` batches; writes result files to `output_dir`.

  With `class_names` and a `records_with_video_ids` dataset, records labelled with another class list are
  refused (`ClassListMismatchError`) before they are scored.  Videos without a label (label -1: the Kinetics
  test set) are predicted and written, left out of the metrics and counted (`labelled_metrics`), with one
  line on stderr; with none labelled the accuracies are None ("accuracy cannot be computed").

  Args:
    model: the model (`restore.restore_stream_models`); its compute precision is its own.
    dataset: `(inputs, labels[, video_ids])` batches of whole test videos (Sec. 2.5).
    num_classes: K.
    output_dir: where results.json, predictions.csv and the confusion matrix go (None: nothing written).
    class_names: K names (checked against the records' class list).
    max_videos: evaluate at most this many videos.
    extra: more entries for results.json (the binary's settings).
    progress: a progress bar on stderr.

  Returns the results dict (`metrics`: top1, top5, mean_class_accuracy, num_videos (the labelled videos),
  num_classes, num_unlabelled).

  Raises:
    ClassListMismatchError: records labelled with another class list than `class_names`.
    RuntimeError: no video could be evaluated.
    ValueError: a label outside [0, num_classes) other than -1 (nothing is written).
  """
  if class_names is not None and hasattr(dataset, 'check_class_names'):
    dataset.check_class_names(class_names)
  out = run_predictions(make_predict_fn(model), dataset, max_videos=max_videos, progress=progress)
  extra = dict(extra or {}, num_failed=out['num_failed'])
  for key in ('skipped_videos', 'skipped_shards'):
    if out[key]:
      extra[key] = out[key]
  if output_dir is None:
    results = {'metrics': labelled_metrics(out['labels'], out['probabilities'])}
    results.update(extra)
  else:
    results = write_results(output_dir, out['labels'], out['probabilities'], out['video_ids'], num_classes,
                            class_names, extra)
  message = unlabelled_message(results['metrics'])
  if message:
    import sys  # pylint: disable=g-import-not-at-top
    print(f'evaluate: {message}', file=sys.stderr)
  results['_predictions'] = out  # In memory only (not in results.json).
  return results
