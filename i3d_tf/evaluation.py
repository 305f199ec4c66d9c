"""Evaluation: whole-video convolutional testing, stream fusion, metrics and result files (Sec. 2.4-2.5, 4, 5).

Test protocol (Sec. 2.5): "at test time the models are applied convolutionally over the whole video taking
224 x 224 center crops, and the predictions are averaged".  The I3D head already averages per-time logits
over time, so a whole video `[1, T, 224, 224, C]` gives one score vector.  Models that sample several clips
(views) per video get a view axis `[B, V, T, H, W, C]`: views are folded into the batch and their softmax
averaged.  Two-Stream I3D adds the streams' logits (the official release) or averages their softmax.  These
rules live in `i3d_tf.scoring`, shared with the trainer's validation and with classification.

Metrics are pure numpy functions of `(labels [N], scores [N, K])`:
  * top-k accuracy: the label is among the k highest scores;
  * mean per-class accuracy: top-1 accuracy averaged over the classes present in `labels` (the
    UCF-101 / HMDB-51 convention reported next to top-1 in Sec. 4-5).
Result files (all written atomically): `results.json`, `predictions.csv`, `confusion_matrix.png`.
"""

import csv
import io
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from i3d_tf import scoring
from data_pipelines.io_utils import atomic_write, atomic_write_json, save_figure

# ----------------------------------------------------------------------------------------------- metrics


def _check(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels).astype(np.int64).reshape(-1)
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
    raise ValueError(f'scores must be [N, num_classes] with N = len(labels). Received: scores.shape='
                     f'{scores.shape}, len(labels)={labels.shape[0]}')
  if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
    raise ValueError(f'labels must be in [0, {scores.shape[1]}). Received: labels in '
                     f'[{labels.min()}, {labels.max()}]')
  return labels, scores


def top_k_accuracy(labels, scores, k: int = 1) -> float:
  """Fraction of rows whose label is among the k highest scores (ties broken by the lower class index)."""
  labels, scores = _check(labels, scores)
  if k < 1:
    raise ValueError(f'k must be >= 1. Received: k={k}')
  if labels.size == 0:
    return float('nan')
  k = min(k, scores.shape[1])
  order = np.argsort(-scores, axis=1, kind='stable')[:, :k]
  return float(np.mean(np.any(order == labels[:, None], axis=1)))


def predictions_from_scores(scores) -> np.ndarray:
  return np.argmax(np.asarray(scores), axis=1)


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
  """int64 [num_classes, num_classes]; row = true class, column = predicted class."""
  labels = np.asarray(labels, np.int64).reshape(-1)
  predictions = np.asarray(predictions, np.int64).reshape(-1)
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (labels, predictions), 1)
  return cm


def per_class_accuracy(labels, scores) -> np.ndarray:
  """Top-1 accuracy of every class; NaN for classes absent from `labels`."""
  labels, scores = _check(labels, scores)
  cm = confusion_matrix(labels, predictions_from_scores(scores), scores.shape[1])
  support = cm.sum(axis=1)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(labels, scores) -> float:
  """Mean over the classes present in `labels` of their top-1 accuracy."""
  acc = per_class_accuracy(labels, scores)
  return float(np.nanmean(acc)) if np.any(~np.isnan(acc)) else float('nan')


def compute_metrics(labels, scores, top_k: Sequence[int] = (1, 5)) -> Dict[str, float]:
  """{'top1', 'top5', 'mean_class_accuracy', 'num_videos', 'num_classes'} from labels and scores."""
  labels, scores = _check(labels, scores)
  out = {f'top{k}': top_k_accuracy(labels, scores, k) for k in top_k}
  out['mean_class_accuracy'] = mean_class_accuracy(labels, scores)
  out['num_videos'] = int(labels.shape[0])
  out['num_classes'] = int(scores.shape[1])
  return out


def average_results(results: Sequence[Dict], keys: Sequence[str] = ('top1', 'top5', 'mean_class_accuracy')
                    ) -> Dict:
  """Table 5 protocol: the mean (and std) of each metric over splits' results.json dicts."""
  if not results:
    raise ValueError('average_results needs at least one results dict.')
  out = {'num_splits': len(results)}
  for key in keys:
    values = [float(r['metrics'][key] if 'metrics' in r else r[key]) for r in results
              if key in r.get('metrics', r)]
    if len(values) != len(results):
      continue
    out[key] = float(np.mean(values))
    out[f'{key}_std'] = float(np.std(values))
    out[f'{key}_per_split'] = values
  return out


# ------------------------------------------------------------------------------------------- prediction


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
  """A retrace-free `predict_fn` for any video length (None time/space dims), dict or array inputs."""
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


# ------------------------------------------------------------------------------------------ result files


def write_json(path: str, obj):
  """Result JSON (numpy scalars and arrays allowed), written atomically."""
  atomic_write_json(path, obj, sort_keys=True, default=_json_default)


def _json_default(o):
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(f'not JSON serializable: {type(o)}')


def predictions_csv(video_ids, labels, probs, class_names: Optional[Sequence[str]] = None, top_k: int = 5
                    ) -> str:
  """CSV text: video_id, label, predicted, confidence, correct, top-k classes with probabilities."""
  probs = np.asarray(probs)
  k = min(top_k, probs.shape[1])
  name = (lambda c: class_names[c]) if class_names else str
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(['video_id', 'label', 'label_name', 'predicted', 'predicted_name', 'confidence', 'correct',
              f'top{k}'])
  for vid, y, p in zip(video_ids, labels, probs):
    order = np.argsort(-p, kind='stable')[:k]
    w.writerow([vid, int(y), name(int(y)), int(order[0]), name(int(order[0])), f'{p[order[0]]:.6f}',
                int(order[0] == y), ' '.join(f'{name(int(c))}:{p[c]:.4f}' for c in order)])
  return buf.getvalue()


def plot_confusion_matrix(cm: np.ndarray, path: str, class_names: Optional[Sequence[str]] = None,
                          max_named_classes: int = 30, title: str = 'Confusion matrix'):
  """Row-normalised confusion matrix PNG (matplotlib Agg); class names on the axes when few classes."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  cm = np.asarray(cm, np.float64)
  n = cm.shape[0]
  norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
  size = min(4 + 0.35 * n, 16)
  fig, ax = plt.subplots(figsize=(size, size))
  im = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1, interpolation='nearest')
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title)
  if class_names and n <= max_named_classes:
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(class_names, rotation=90, fontsize=8)
    ax.set_yticklabels(class_names, fontsize=8)
    if n <= 12:
      for i in range(n):
        for j in range(n):
          if cm[i, j]:
            ax.text(j, i, int(cm[i, j]), ha='center', va='center', fontsize=8,
                    color='white' if norm[i, j] > 0.5 else 'black')
  fig.tight_layout()
  save_figure(path, fig, format='png', dpi=100)
  plt.close(fig)


def write_results(output_dir: str, labels, probs, video_ids, num_classes: int,
                  class_names: Optional[Sequence[str]] = None, extra: Optional[Dict] = None) -> Dict:
  """Writes results.json, predictions.csv and confusion_matrix.png into `output_dir`; returns the results."""
  labels = np.asarray(labels, np.int64)
  probs = np.asarray(probs, np.float64)
  if probs.shape[1] != num_classes:
    raise ValueError(f'probabilities have {probs.shape[1]} classes, expected {num_classes}.')
  metrics = compute_metrics(labels, probs)
  cm = confusion_matrix(labels, predictions_from_scores(probs), num_classes)
  results = {'metrics': metrics, 'per_class_accuracy': per_class_accuracy(labels, probs).tolist(),
             'class_names': list(class_names) if class_names else None}
  results.update(extra or {})
  os.makedirs(output_dir, exist_ok=True)
  atomic_write(os.path.join(output_dir, 'predictions.csv'), predictions_csv(video_ids, labels, probs, class_names))
  plot_confusion_matrix(cm, os.path.join(output_dir, 'confusion_matrix.png'), class_names)
  write_json(os.path.join(output_dir, 'results.json'), results)
  return results


def format_metrics(metrics: Dict) -> str:
  return (f"top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%  "
          f"mean-class {100 * metrics['mean_class_accuracy']:.2f}%  ({metrics['num_videos']} videos)")


# -------------------------------------------------------------------------------------------- class lists


class records_with_video_ids:  # pylint: disable=invalid-name  (used like the generator function it was)
  """Whole-video test batches `(inputs, labels, [video_id])` from TFRecords, in file and record order.

  One deterministic `data_pipelines.make_dataset(..., training=False, batch_size=1, with_video_ids=True)`
  per shard.  A shard that cannot be read (or, with `skip_corrupt=True`, fails its CRC checks) is reported
  and kept in `self.skipped_shards` as `(shard, reason)`; with `skip_corrupt=True` a record that fails to
  decode is dropped by the pipeline, and its video id (read from the shard first) is reported and kept in
  `self.skipped` as `(shard, video_id)`.  `run_predictions` counts those videos as failed and lists both.
  """

  def __init__(self, file_pattern: str, model_name: str, **make_dataset_kwargs):
    from data_pipelines.input_pipeline import list_shards  # pylint: disable=g-import-not-at-top
    self.file_pattern = file_pattern
    self.files = list_shards(file_pattern)  # every file a TFRecord (a matched manifest.json is named)
    self.model_name, self.kwargs = model_name, make_dataset_kwargs
    self.class_names: Optional[List[str]] = None
    self.skipped: List[Tuple[str, str]] = []
    self.skipped_shards: List[Tuple[str, str]] = []

  def check_class_names(self, class_names: Sequence[str], source: str = "the model's class names"):
    """Refuses records whose class list differs from `class_names`: at once against the manifest.json next
    to the shards, then record by record (label index vs label text) as the shards are read."""
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
  than `class_names` (nothing is checked when there is no manifest or it lists no classes)."""
  recorded = manifest_class_names(file_pattern)
  if recorded is None or list(recorded) == list(class_names):
    return
  path = os.path.join(os.path.dirname(file_pattern), 'manifest.json')
  raise ClassListMismatchError(
      f'the records\' class list ({path}) differs from {source}: {_first_difference(recorded, class_names)}; '
      'convert the data with prepare_data --label_map=<the training data\'s manifest.json>, or pass the '
      'model\'s --class_names')


def manifest_class_names(file_pattern: str) -> Optional[List[str]]:
  """The class list in the `manifest.json` that prepare_data writes next to the records of `file_pattern`
  (read by `datasets.read_label_map`), or None when there is none."""
  from data_pipelines import conversion, datasets  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(file_pattern), conversion.MANIFEST)
  try:
    return datasets.read_label_map(path)
  except (OSError, ValueError):
    return None


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


def evaluate(model, dataset: Iterable, num_classes: int, output_dir: Optional[str] = None,
             class_names: Optional[Sequence[str]] = None, max_videos: Optional[int] = None,
             extra: Optional[Dict] = None, progress: bool = True) -> Dict:
  """Whole-video evaluation of `model` on `(inputs, labels)` batches; writes result files to `output_dir`.

  With `class_names` and a `records_with_video_ids` dataset, records labelled with another class list are
  refused (`ClassListMismatchError`) before they are scored.

  Returns the results dict (`metrics`: top1, top5, mean_class_accuracy, num_videos, num_classes).
  """
  if class_names is not None and hasattr(dataset, 'check_class_names'):
    dataset.check_class_names(class_names)
  out = run_predictions(make_predict_fn(model), dataset, max_videos=max_videos, progress=progress)
  extra = dict(extra or {}, num_failed=out['num_failed'])
  for key in ('skipped_videos', 'skipped_shards'):
    if out[key]:
      extra[key] = out[key]
  if output_dir is None:
    results = {'metrics': compute_metrics(out['labels'], out['probabilities'])}
    results.update(extra)
  else:
    results = write_results(output_dir, out['labels'], out['probabilities'], out['video_ids'], num_classes,
                            class_names, extra)
  results['_predictions'] = out  # In memory only (not in results.json).
  return results


def recalibrate_batch_norm(model, batches: Iterable, num_batches: int = 20) -> int:
  """"Precise BN": replaces every BatchNorm's moving statistics by their average over `num_batches` batches.

  Official I3D batch norm keeps moving averages with decay 0.999, which need thousands of steps to forget
  their initial values; a model trained for a few hundred steps (the demo) predicts from stale statistics
  at test.  This re-estimates them with the weights frozen (running `model(x, training=True)` with momentum
  k / (k + 1) at batch k, i.e. an exact mean of the batch statistics).  Returns the number of batches used.
  Paper runs (110k steps) do not need it.
  """
  import keras  # pylint: disable=g-import-not-at-top
  bns = [l for l in model._flatten_layers(include_self=False, recursive=True)  # pylint: disable=protected-access
         if isinstance(l, keras.layers.BatchNormalization)]
  if not bns:
    return 0
  saved = [bn.momentum for bn in bns]
  count = 0
  try:
    for element in batches:
      x = element[0] if isinstance(element, (tuple, list)) else element
      for bn in bns:
        bn.momentum = count / (count + 1.0)
      model(x, training=True)
      count += 1
      if count >= num_batches:
        break
  finally:
    for bn, m in zip(bns, saved):
      bn.momentum = m
  return count
