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
Videos without a label (label -1, the Kinetics test set) are predicted and left out of the metrics, counted.
Result files (all written atomically): `results.json`, `predictions.csv`, `confusion_matrix.png`.

One module per concept: `metrics`, `predict` (the prediction loop and `evaluate`), `results` (files),
`class_lists` (records against the model's classes), `batch_norm` (precise BN); their names are here too.
"""

from i3d_tf.evaluation.metrics import (top_k_accuracy, predictions_from_scores, confusion_matrix, per_class_accuracy,
                                       mean_class_accuracy, compute_metrics, labelled_metrics, UNLABELLED,
                                       average_results)
from i3d_tf.evaluation.predict import (predict_video_batch, make_predict_fn, run_predictions, records_with_video_ids,
                                       evaluate)
from i3d_tf.evaluation.results import (write_json, predictions_csv, plot_confusion_matrix, write_results,
                                       format_metrics, unlabelled_message)
from i3d_tf.evaluation.class_lists import (ClassListMismatchError, check_records_class_list, manifest_class_names,
                                           training_class_names)
from i3d_tf.evaluation.batch_norm import (recalibrate_batch_norm)

__all__ = [
    'top_k_accuracy', 'predictions_from_scores', 'confusion_matrix', 'per_class_accuracy',
    'mean_class_accuracy', 'compute_metrics', 'labelled_metrics', 'UNLABELLED', 'average_results', 'predict_video_batch', 'make_predict_fn',
    'run_predictions', 'records_with_video_ids', 'evaluate', 'write_json', 'predictions_csv',
    'plot_confusion_matrix', 'write_results', 'format_metrics', 'unlabelled_message', 'ClassListMismatchError',
    'check_records_class_list', 'manifest_class_names', 'training_class_names', 'recalibrate_batch_norm'
]
