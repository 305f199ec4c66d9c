"""Result files, all written atomically: `results.json`, `predictions.csv`, `confusion_matrix.png`.
"""

import csv
import io
import os
from typing import Dict, Optional, Sequence

import numpy as np

from data_pipelines.io_utils import atomic_write, atomic_write_json, save_figure
from i3d_tf.evaluation.metrics import (UNLABELLED, confusion_matrix, labelled_metrics, per_class_accuracy,
                                       predictions_from_scores)


def write_json(path: str, obj):
  """Writes `obj` to `path` as JSON (sorted keys), atomically; numpy scalars and arrays become numbers and lists.

  Raises:
    TypeError: a value JSON cannot hold.
  """
  atomic_write_json(path, obj, sort_keys=True, default=_json_default)


def _json_default(o):
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(f'not JSON serializable: {type(o)}')


def predictions_csv(video_ids, labels, probs, class_names: Optional[Sequence[str]] = None, top_k: int = 5
                    ) -> str:
  """CSV text: video_id, label, predicted, confidence, correct, top-k classes with probabilities.

  Args:
    video_ids: N ids.
    labels: N true class indices; -1 (a Kinetics test row without a label) writes empty label_name and
      correct cells, never a class (Python's index -1 would name the last one).
    probs: [N, K] class probabilities; ties rank the lower class index first.
    class_names: K names for the *_name and top-k columns; None writes indices there.
    top_k: classes listed per row (at most K), as 'name:probability'.
  """
  probs = np.asarray(probs)
  k = min(top_k, probs.shape[1])
  name = (lambda c: class_names[c]) if class_names else str
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(['video_id', 'label', 'label_name', 'predicted', 'predicted_name', 'confidence', 'correct',
              f'top{k}'])
  for vid, y, p in zip(video_ids, labels, probs):
    order = np.argsort(-p, kind='stable')[:k]
    labelled = 0 <= int(y) < probs.shape[1]
    w.writerow([vid, int(y), name(int(y)) if labelled else '', int(order[0]), name(int(order[0])),
                f'{p[order[0]]:.6f}', int(order[0] == y) if labelled else '',
                ' '.join(f'{name(int(c))}:{p[c]:.4f}' for c in order)])
  return buf.getvalue()


def plot_confusion_matrix(cm: np.ndarray, path: str, class_names: Optional[Sequence[str]] = None,
                          max_named_classes: int = 30, title: str = 'Confusion matrix'):
  """Row-normalised confusion matrix PNG (matplotlib Agg); class names on the axes when few classes.

  Args:
    cm: [K, K] counts, rows true and columns predicted (`metrics.confusion_matrix`).
    path: the PNG, written atomically.
    class_names: K names, shown when K <= `max_named_classes` (with the counts in the cells when K <= 12).
    max_named_classes: above this K the axes carry no names.
    title: the figure's title.
  """
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


def unlabelled_message(metrics: Dict) -> Optional[str]:
  """One line on the videos without a label (`labelled_metrics`' 'num_unlabelled'), or None when every video has one.

  Args:
    metrics: a `labelled_metrics` dict ('num_videos', 'num_unlabelled').
  """
  unlabelled, labelled = metrics.get('num_unlabelled', 0), metrics['num_videos']
  if not unlabelled:
    return None
  if not labelled:
    return (f'accuracy cannot be computed: none of the {unlabelled} videos has a label (label -1 in the records, as '
            'in the Kinetics test set); their predictions are written (predictions.csv)')
  return (f'{unlabelled} of {unlabelled + labelled} videos have no label (label -1 in the records): metrics on the '
          f'{labelled} labelled ones, predictions.csv lists all {unlabelled + labelled}')


def write_results(output_dir: str, labels, probs, video_ids, num_classes: int,
                  class_names: Optional[Sequence[str]] = None, extra: Optional[Dict] = None) -> Dict:
  """Writes results.json, predictions.csv and confusion_matrix.png into `output_dir`; returns the results.

  Videos without a label (label -1: Kinetics test) get their predictions in predictions.csv and are left
  out of the metrics, the per-class accuracies and the confusion matrix (`labelled_metrics`; results.json
  counts them in `metrics.num_unlabelled` and says so in `unlabelled`).  With no labelled video the metrics'
  accuracies are null, `per_class_accuracy` is null and no confusion matrix is drawn (a stale
  confusion_matrix.png of an earlier run in `output_dir` is removed).

  Args:
    output_dir: the folder (created).
    labels: int [N] true classes in [0, num_classes), or -1 for a video without a label.
    probs: float [N, num_classes] class probabilities (averaged over views / streams).
    video_ids: N ids for predictions.csv.
    num_classes: K.
    class_names: K names, or None.
    extra: more entries for results.json.

  Returns:
    {'metrics' (`labelled_metrics`), 'per_class_accuracy', 'class_names', 'num_predictions', ['unlabelled'],
    ...`extra`}.

  Raises:
    ValueError: `probs` has another class count, or labels outside [0, K) other than -1 (nothing is written then).
  """
  labels = np.asarray(labels, np.int64)
  probs = np.asarray(probs, np.float64)
  if probs.shape[1] != num_classes:
    raise ValueError(f'probabilities have {probs.shape[1]} classes, expected {num_classes}.')
  metrics = labelled_metrics(labels, probs)
  labelled = labels != UNLABELLED
  results = {'metrics': metrics, 'class_names': list(class_names) if class_names else None,
             'per_class_accuracy': per_class_accuracy(labels[labelled], probs[labelled]).tolist()
             if labelled.any() else None, 'num_predictions': int(labels.shape[0])}
  message = unlabelled_message(metrics)
  if message:
    results['unlabelled'] = message
  results.update(extra or {})
  os.makedirs(output_dir, exist_ok=True)
  atomic_write(os.path.join(output_dir, 'predictions.csv'), predictions_csv(video_ids, labels, probs, class_names))
  png = os.path.join(output_dir, 'confusion_matrix.png')
  if labelled.any():
    cm = confusion_matrix(labels[labelled], predictions_from_scores(probs[labelled]), num_classes)
    plot_confusion_matrix(cm, png, class_names)
  elif os.path.exists(png):
    os.remove(png)
  write_json(os.path.join(output_dir, 'results.json'), results)
  return results


def format_metrics(metrics: Dict) -> str:
  """One line of `compute_metrics` / `labelled_metrics` output: top-1, top-5, mean per-class accuracy (%) and
  the video count, with the videos left out for want of a label; 'no accuracy' when none has one.

  Args:
    metrics: the metrics dict ('top1', 'top5', 'mean_class_accuracy', 'num_videos', optional 'num_unlabelled').

  Raises:
    KeyError: `metrics` lacks 'top1', 'top5', 'mean_class_accuracy' or 'num_videos'.
  """
  unlabelled = metrics.get('num_unlabelled', 0)
  if metrics['top1'] is None:
    return f'no accuracy: none of the {unlabelled} videos has a label (label -1 in the records)'
  left_out = f'; {unlabelled} without a label left out' if unlabelled else ''
  return (f"top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%  "
          f"mean-class {100 * metrics['mean_class_accuracy']:.2f}%  ({metrics['num_videos']} videos{left_out})")
