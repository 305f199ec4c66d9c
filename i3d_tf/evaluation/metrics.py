"""Metrics of Sec. 4-5: pure numpy functions of `(labels [N], scores [N, K])` (top-k, mean per-class accuracy, confusion matrix).

  * top-k accuracy: the label is among the k highest scores;
  * mean per-class accuracy: top-1 accuracy averaged over the classes present in `labels` (the
    UCF-101 / HMDB-51 convention reported next to top-1 in Sec. 4-5).

Label -1 (`UNLABELLED`: what a record without a label stores, e.g. every Kinetics test video) has no metric:
`labelled_metrics` computes them on the labelled rows and counts the others.
"""

from typing import Dict, Sequence, Tuple

import numpy as np

UNLABELLED = -1  # tfrecord_format: clip/label/index of a video without a label (Kinetics test)


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
  """Top-k accuracy: fraction of rows whose label is among the k highest scores (ties broken by the lower
  class index); NaN for no row.

  Args:
    labels: int [N] true classes in [0, K).
    scores: float [N, K] logits or probabilities.
    k: >= 1; capped at K.

  Raises:
    ValueError: mismatched shapes, labels outside [0, K), or k < 1.
  """
  labels, scores = _check(labels, scores)
  if k < 1:
    raise ValueError(f'k must be >= 1. Received: k={k}')
  if labels.size == 0:
    return float('nan')
  k = min(k, scores.shape[1])
  order = np.argsort(-scores, axis=1, kind='stable')[:, :k]
  return float(np.mean(np.any(order == labels[:, None], axis=1)))


def predictions_from_scores(scores) -> np.ndarray:
  """Top-1 class of each row of `scores` [N, K]: int [N] (ties: the lower class index)."""
  return np.argmax(np.asarray(scores), axis=1)


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
  """Counts of (true, predicted) pairs: int64 [num_classes, num_classes], row = true class, column = predicted.

  `labels` and `predictions` are int [N] in [0, num_classes) (not checked: a negative index counts in the
  last row / column).
  """
  labels = np.asarray(labels, np.int64).reshape(-1)
  predictions = np.asarray(predictions, np.int64).reshape(-1)
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (labels, predictions), 1)
  return cm


def per_class_accuracy(labels, scores) -> np.ndarray:
  """Top-1 accuracy of every class, float [K]; NaN for classes absent from `labels` (int [N]); `scores`
  float [N, K].  Raises ValueError as `top_k_accuracy`."""
  labels, scores = _check(labels, scores)
  cm = confusion_matrix(labels, predictions_from_scores(scores), scores.shape[1])
  support = cm.sum(axis=1)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(labels, scores) -> float:
  """Mean per-class accuracy (Sec. 4-5): mean over the classes present in `labels` (int [N]) of their top-1
  accuracy under `scores` (float [N, K]); NaN for no row."""
  acc = per_class_accuracy(labels, scores)
  return float(np.nanmean(acc)) if np.any(~np.isnan(acc)) else float('nan')


def compute_metrics(labels, scores, top_k: Sequence[int] = (1, 5)) -> Dict[str, float]:
  """{'top1', 'top5', 'mean_class_accuracy', 'num_videos', 'num_classes'} from `labels` int [N] and `scores`
  float [N, K]; `top_k` names the 'top<k>' entries (default 1 and 5).

  Raises:
    ValueError: as `top_k_accuracy` (e.g. a label -1 of an unlabelled record).
  """
  labels, scores = _check(labels, scores)
  out = {f'top{k}': top_k_accuracy(labels, scores, k) for k in top_k}
  out['mean_class_accuracy'] = mean_class_accuracy(labels, scores)
  out['num_videos'] = int(labels.shape[0])
  out['num_classes'] = int(scores.shape[1])
  return out


def labelled_metrics(labels, scores, top_k: Sequence[int] = (1, 5)) -> Dict:
  """`compute_metrics` on the rows whose label is not `UNLABELLED` (-1), plus 'num_unlabelled', the rows left out.

  With no labelled row at all (an unlabelled test set, e.g. Kinetics test) the accuracies ('top<k>',
  'mean_class_accuracy') are None, 'num_videos' 0: accuracy cannot be computed, there is nothing to compare.

  Args:
    labels: int [N] true classes in [0, K), or -1 for a video without a label.
    scores: float [N, K] logits or probabilities.
    top_k: the 'top<k>' entries (default 1 and 5).

  Raises:
    ValueError: mismatched shapes, or a label outside [0, K) other than -1 (another class list: no metric).
  """
  labels = np.asarray(labels).astype(np.int64).reshape(-1)
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
    _check(labels, scores)  # raises, naming the shapes
  labelled = labels != UNLABELLED
  if labelled.any():  # compute_metrics refuses any other label outside [0, K)
    out = compute_metrics(labels[labelled], scores[labelled], top_k)
  else:
    out = {f'top{k}': None for k in top_k}
    out.update(mean_class_accuracy=None, num_videos=0, num_classes=int(scores.shape[1]))
  out['num_unlabelled'] = int((~labelled).sum())
  return out


def average_results(results: Sequence[Dict], keys: Sequence[str] = ('top1', 'top5', 'mean_class_accuracy')
                    ) -> Dict:
  """Table 5 protocol: the mean (and std) of each metric over splits' results.json dicts.

  Args:
    results: one results dict per split (`write_results`; the metrics under 'metrics' or at the top).
    keys: the metrics to average; a metric missing from any split is left out.

  Returns:
    {'num_splits', '<key>', '<key>_std' (population std), '<key>_per_split'}.

  Raises:
    ValueError: `results` is empty, or a split has a metric but no value for it (null: its test records carry
      no labels, `labelled_metrics`).
  """
  if not results:
    raise ValueError('average_results needs at least one results dict.')
  out = {'num_splits': len(results)}
  for key in keys:
    for i, r in enumerate(results):
      metrics = r['metrics'] if 'metrics' in r else r
      if key in metrics and metrics[key] is None:
        raise ValueError(f'split {i + 1} has no {key}: its test records carry no labels (label -1), so there is no '
                         'accuracy to average; average the results of labelled test sets only')
    values = [float(r['metrics'][key] if 'metrics' in r else r[key]) for r in results
              if key in r.get('metrics', r)]
    if len(values) != len(results):
      continue
    out[key] = float(np.mean(values))
    out[f'{key}_std'] = float(np.std(values))
    out[f'{key}_per_split'] = values
  return out
