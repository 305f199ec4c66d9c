"""A tiny synthetic action dataset whose classes differ only in temporal order (the demo's data).

The paper's argument for 3D ConvNets (Sec. 1, 2.1): a model that looks at frames independently and
averages its predictions cannot tell "opening a door" from "closing a door".  Here every class has a twin
made of *exactly the same frames in reverse order*:

  move_down  <-> move_up       a textured square crossing the frame vertically (left-right flips, the
                               training augmentation, would swap a horizontal pair's labels)
  grow       <-> shrink        a textured square changing size around a fixed centre
  appear     <-> disappear     a textured square fading in from the background

Videos are written as real files (MJPG in .avi, OpenCV only, no H.264), one folder per class, so the
regular pipeline (`experiments/prepare_data.py --dataset=folder`) converts them.  MJPG encodes each frame
independently, so a video and its reversed twin decode to the same multiset of frames: any frame-averaging
model gives both the same score, i.e. exactly chance (50%) on every pair.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from data_pipelines.io_utils import atomic_path

SYNTHETIC_FRAMES, SYNTHETIC_SIZE = 4, 32  # `learnable_dataset_fn` defaults (the trainer's smoke runs)

PAIRS = (('move_down', 'move_up'), ('grow', 'shrink'), ('appear', 'disappear'))
CLASSES = tuple(c for pair in PAIRS for c in pair)


def _texture(rng, size: int) -> np.ndarray:
  """A random striped / checkered colour texture, float32 [size, size, 3] in [0, 255]."""
  c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
  if np.abs(c1 - c2).sum() < 150:
    c2 = 255 - c1
  period = int(rng.integers(3, 6))
  yy, xx = np.mgrid[:size, :size]
  if rng.random() < 0.5:
    mask = ((yy // period + xx // period) % 2).astype(bool)
  else:
    mask = (((yy + xx) // period) % 2).astype(bool)
  return np.where(mask[..., None], c1, c2).astype(np.float32)


def _background(rng, height: int, width: int) -> np.ndarray:
  base = rng.uniform(40, 215, 3)
  noise = rng.normal(0, 12, (height // 4 + 1, width // 4 + 1, 3))
  noise = cv2.resize(noise.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
  return np.clip(base + noise, 0, 255).astype(np.float32)


def _paste(frame, patch, cy, cx, alpha=1.0):
  """Alpha-blends `patch` centred at (cy, cx) into `frame` (clipped at the borders)."""
  h, w = patch.shape[:2]
  y0, x0 = int(round(cy - h / 2)), int(round(cx - w / 2))
  fy0, fx0 = max(y0, 0), max(x0, 0)
  fy1, fx1 = min(y0 + h, frame.shape[0]), min(x0 + w, frame.shape[1])
  if fy1 <= fy0 or fx1 <= fx0:
    return
  region = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
  frame[fy0:fy1, fx0:fx1] = (1 - alpha) * frame[fy0:fy1, fx0:fx1] + alpha * region


MIN_FRAMES = 2  # a motion needs a start and an end frame; prepare_data refuses 1-frame videos too


def check_num_frames(num_frames) -> int:
  """`num_frames` if a synthetic video can have that many frames (an int >= MIN_FRAMES).

  Args:
    num_frames: frames per video.

  Raises:
    ValueError: one line naming the value and why: a 1-frame video shows no motion, its reversed twin is
      the same video, and prepare_data reports it as failed.
  """
  if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < MIN_FRAMES:
    raise ValueError(f'num_frames must be an integer >= {MIN_FRAMES}: a synthetic video shows a motion from its '
                     'first to its last frame (one frame has no motion, and its reversed twin would be the same '
                     f'video; prepare_data reports 1-frame videos as failed). Received: num_frames={num_frames!r}')
  return int(num_frames)


def base_sequence(kind: str, rng, num_frames: int = 16, size: int = 40) -> np.ndarray:
  """The forward sequence of a pair: uint8 RGB [num_frames, size, size, 3].

  Args:
    kind: 'move' (the square crosses downwards), 'grow' or 'appear' (fades in).
    rng: a `np.random.Generator` (texture, background, positions).
    num_frames: frames T, >= 2: the first frame is the start of the motion, the last its end, so one frame
      has no motion (its reversed twin would be the same video: two classes of identical content), and
      prepare_data reports a 1-frame video as failed (`ConversionOptions.min_frames`).
    size: frame side in pixels.

  Raises:
    ValueError: an unknown `kind`, or `num_frames` < 2.
  """
  check_num_frames(num_frames)
  bg = _background(rng, size, size)
  frames = []
  if kind == 'move':
    side = int(rng.integers(size // 4, size // 3 + 1))
    tex = _texture(rng, side)
    span = rng.uniform(0.45, 0.6) * size
    cx = rng.uniform(0.4, 0.6) * size
    y_start = size / 2 - span / 2 + rng.uniform(-2, 2)
    for t in range(num_frames):
      f = bg.copy()
      _paste(f, tex, y_start + span * t / (num_frames - 1), cx)
      frames.append(f)
  elif kind == 'grow':
    big = int(rng.integers(int(0.55 * size), int(0.7 * size) + 1))
    small = max(4, int(0.15 * size))
    tex = _texture(rng, big)
    cy, cx = rng.uniform(0.42, 0.58, 2) * size
    for t in range(num_frames):
      s = int(round(small + (big - small) * t / (num_frames - 1)))
      f = bg.copy()
      _paste(f, cv2.resize(tex, (s, s), interpolation=cv2.INTER_NEAREST), cy, cx)
      frames.append(f)
  elif kind == 'appear':
    side = int(rng.integers(int(0.35 * size), int(0.5 * size) + 1))
    tex = _texture(rng, side)
    cy, cx = rng.uniform(0.4, 0.6, 2) * size
    for t in range(num_frames):
      f = bg.copy()
      _paste(f, tex, cy, cx, alpha=t / (num_frames - 1))
      frames.append(f)
  else:
    raise ValueError(f'kind must be move, grow or appear. Received: kind={kind}')
  return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def write_video(path: str, frames_rgb: np.ndarray, fps: float = 25.0, fourcc: str = 'MJPG'):
  """Writes RGB uint8 frames [T, H, W, 3] with cv2.VideoWriter (atomically: temp name + rename).

  Args:
    path: the video file; its extension must suit `fourcc` (e.g. .avi for MJPG).
    frames_rgb: uint8 [T, H, W, 3] RGB.
    fps: the container's frame rate.
    fourcc: four-character codec code.

  Raises:
    RuntimeError: OpenCV cannot open a writer for `fourcc` at `path`.
  """
  h, w = frames_rgb.shape[1:3]
  with atomic_path(path) as tmp:
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
      raise RuntimeError(f'cv2.VideoWriter cannot write {fourcc} to {tmp}')
    try:
      for f in frames_rgb:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
      writer.release()


def generate_dataset(output_dir: str, videos_per_class: int, seed: int = 0, num_frames: int = 16,
                     size: int = 40, fps: float = 25.0) -> Dict[str, List[Tuple[str, int]]]:
  """Writes the six classes' MJPG videos `<output_dir>/<class>/<class>_<seed>_<k:03d>.avi`.

  Each pair id k has one forward and one reversed video (the same frames), so the two classes of a pair
  always have the same number of videos and the same frame content.

  Args:
    output_dir: the dataset's root folder (one sub-folder per class, created).
    videos_per_class: videos per class (pair ids 0 .. videos_per_class - 1).
    seed: seed of the random textures and motions; also part of the file names.
    num_frames: frames per video, >= 2 (`check_num_frames`).
    size: frame side in pixels (square frames).
    fps: the containers' frame rate.

  Returns:
    {class: [(path, pair_id), ...]}.

  Raises:
    ValueError: `num_frames` < 2, before any file or folder is written.
  """
  check_num_frames(num_frames)
  rng = np.random.default_rng(seed)
  out: Dict[str, List[Tuple[str, int]]] = {c: [] for c in CLASSES}
  for (fwd, bwd), kind in zip(PAIRS, ('move', 'grow', 'appear')):
    for k in range(videos_per_class):
      frames = base_sequence(kind, rng, num_frames, size)
      for cls, seq in ((fwd, frames), (bwd, frames[::-1])):
        folder = os.path.join(output_dir, cls)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f'{cls}_{seed}_{k:03d}.avi')
        write_video(path, np.ascontiguousarray(seq), fps)
        out[cls].append((path, k))
  return out


def pairwise_order_accuracy(labels, scores, class_names: Optional[List[str]] = None) -> float:
  """Accuracy of choosing between the two twins of each video's pair (chance = 0.5; ties count 0.5).

  Isolates temporal order from "which pair".

  Args:
    labels: int [N] class indices into `class_names`.
    scores: float [N, C] per-class scores (logits or probabilities), columns in `class_names` order.
    class_names: the column order; default CLASSES.  Every labelled class must belong to a `PAIRS` pair.

  Returns:
    The mean in [0, 1]; NaN for no example.
  """
  names = list(class_names or CLASSES)
  index = {c: i for i, c in enumerate(names)}
  labels = np.asarray(labels)
  scores = np.asarray(scores, np.float64)
  correct = []
  for y, s in zip(labels, scores):
    name = names[int(y)]
    twin = next(b if a == name else a for a, b in PAIRS if name in (a, b))
    own, other = s[int(y)], s[index[twin]]
    correct.append(1.0 if own > other else 0.5 if own == other else 0.0)
  return float(np.mean(correct)) if correct else float('nan')


# ----------------------------------------------------------------------------------------------------------
# In-memory learnable videos: the trainer's `--train_data=synthetic[:N]` source (smoke runs and tests).


def learnable_videos(num_examples: int, num_classes: int, num_frames: int, size: int, channels: int, seed: int,
                     labels: Optional[np.ndarray] = None):
  """(videos float32 [N, T, size, size, channels] in [-1, 1], labels int32 [N]): a class-dependent brightness
  ramp over time plus Gaussian noise (std 0.2), so a few SGD steps lower the loss.  Labels are balanced.

  Args:
    num_examples: N.
    num_classes: classes, labels 0 .. num_classes - 1 in shuffled order.
    num_frames: T.
    size: frame side in pixels.
    channels: 3 (RGB) or 2 (flow).
    seed: NumPy RandomState seed (label order and noise).
    labels: int [N] labels to draw videos for (another modality's, so that the streams of one example
      share its class); default: balanced, shuffled with `seed`.
  """
  rng = np.random.RandomState(seed)
  if labels is None:
    labels = (np.arange(num_examples) % num_classes).astype(np.int32)
    rng.shuffle(labels)
  labels = np.asarray(labels, np.int32)
  t = np.linspace(-1, 1, num_frames, dtype=np.float32)[:, None, None, None]
  slope = (labels.astype(np.float32) / max(num_classes - 1, 1) - 0.5)[:, None, None, None, None]
  noise = rng.normal(0, 0.2, (num_examples, num_frames, size, size, channels)).astype(np.float32)
  videos = np.clip(slope * t[None] + noise, -1, 1).astype(np.float32)
  return videos, labels


def learnable_dataset_fn(source: str, modalities: Sequence[str], num_classes: int, batch_size: int,
                         training: bool, num_frames: Optional[int] = None, size: Optional[int] = None,
                         seed: int = 0):
  """`(tf.distribute.InputContext) -> tf.data.Dataset` of per-replica batches of `learnable_videos`.

  Args:
    source: 'synthetic' (32 training / 16 evaluation examples) or 'synthetic:N'.
    modalities: ('rgb',), ('flow',) or both (a dict of inputs, the same labels).
    num_classes: number of classes.
    batch_size: the global batch; each replica gets its share (`ctx.get_per_replica_batch_size`).
    training: repeat and shuffle, drop the remainder; else one pass.
    num_frames, size: clip length and square size (default SYNTHETIC_FRAMES, SYNTHETIC_SIZE).
    seed: data seed (evaluation data uses seed + 1000, so it differs from the training data).

  Raises:
    ValueError: a `source` that is not 'synthetic' or 'synthetic:N' with N >= 1.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  name, _, count = source.partition(':')
  if name != 'synthetic' or (count and not (count.isdigit() and int(count) >= 1)):
    raise ValueError(f"A synthetic source is 'synthetic' or 'synthetic:N' (N >= 1). Received: {source}")
  n = int(count) if count else (32 if training else 16)
  frames, size = num_frames or SYNTHETIC_FRAMES, size or SYNTHETIC_SIZE
  seed = seed + (0 if training else 1000)

  def fn(ctx):
    per_replica = ctx.get_per_replica_batch_size(batch_size)
    arrays, labels = {}, None
    for i, m in enumerate(modalities):  # one label per example for every stream; each stream its own noise
      arrays[m], labels = learnable_videos(n, num_classes, frames, size, 3 if m == 'rgb' else 2, seed + i, labels)
    inputs = arrays[modalities[0]] if len(modalities) == 1 else arrays
    ds = tf.data.Dataset.from_tensor_slices((inputs, labels))
    ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    if training:
      ds = ds.repeat().shuffle(64, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(per_replica, drop_remainder=training)

  return fn
