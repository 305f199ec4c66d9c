"""Pure preprocessing ops for training, evaluation and serving (paper Sec. 2.5, Table 1).

Training: random temporal crop among the valid starts (looping videos shorter than the clip), random
crop_size x crop_size spatial crop of the 256-short-side frames (of the spec's `resize_short_side` frames:
C3D crops 112 from a 128 short side, `resized_size` / `resize_frames`), random left-right flip consistent over the
clip (flow: mirror and negate x, i.e. q -> 255 - q in quantized space, exact), RGB and flow scaled to
[-1, 1].  Test: center crop, the whole video or evenly spaced views, no flip.

Temporal indexing (one rule for every model, see data_pipelines/input_specs.py): a clip of T time steps at
`stride` starting at position p uses RGB frame (p + t * stride) mod N and the flow fields
(p + t * stride + j) mod (N - 1), j < flow_stack (flow field i = frame i -> i + 1).  Starts are drawn from
[0, L - F] where F = (T - 1) * stride + 1 and L = N for RGB-only models, N - flow_stack with flow, so no
index wraps unless the video is shorter than the clip (then it loops).

Shapes: video [T, H, W, C] uint8 in, float32 out (or uint8, scaled later by `to_model_range`); views are a leading axis [V, T, H, W, C].
All functions take explicit arguments and a stateless `seed` (int32 [2]) where random.
"""

import numpy as np

from data_pipelines.constants import CROP_SIZE


class _TensorFlow:
  """`tf`, imported on first use: the numpy paths (`center_crop`, `crop`, `center_offsets` on decoded frames)
  run without it, so a binary reads its first video while TensorFlow loads (`i3d_tf.cli.load_tensorflow`)."""

  def __getattr__(self, name):
    import tensorflow  # pylint: disable=g-import-not-at-top
    return getattr(tensorflow, name)


tf = _TensorFlow()

FLOW_CENTER = 127.5


def num_positions(num_frames_video, flow_stack=1, with_flow=False):
  """L: positions a clip may start from without wrapping (>= 1).

  Args:
    num_frames_video: N, RGB frames in the video (int or scalar int tensor).
    flow_stack: flow fields stacked per time step.
    with_flow: the model reads flow: L = N - flow_stack (N - 1 flow fields); else L = N.

  Returns:
    int32 scalar tensor max(L, 1).
  """
  n = tf.cast(num_frames_video, tf.int32)
  length = n - flow_stack if with_flow else n
  return tf.maximum(length, 1)


def sample_indices(num_positions_, num_frames, stride=1, training=True, num_clips=1, seed=None):
  """Start positions of each time step, int32 [V, T] (not yet wrapped; wrap with `tf.math.floormod`).

  Args:
    num_positions_: L (scalar int), see `num_positions`.
    num_frames: T, or None for every position (V = 1, T = L).
    stride: positions between time steps.
    training: a random start in [0, max(L - F, 0)] (V = 1); else `num_clips` evenly spaced starts
      round(v * (L - F) / (V - 1)) (the center start (L - F) // 2 when V = 1).
    num_clips: V at test time.
    seed: int32 [2] stateless seed (training only).
  """
  length = tf.cast(num_positions_, tf.int32)
  if num_frames is None:
    return tf.range(length)[tf.newaxis]
  footprint = (num_frames - 1) * stride + 1
  room = tf.maximum(length - footprint, 0)
  if training:
    if seed is None:
      seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    starts = tf.random.stateless_uniform([1], seed, minval=0, maxval=room + 1, dtype=tf.int32)
  elif num_clips == 1:
    starts = (room // 2)[tf.newaxis]
  else:
    v = tf.range(num_clips, dtype=tf.float64)
    starts = tf.cast(tf.round(v * tf.cast(room, tf.float64) / (num_clips - 1)), tf.int32)
  return starts[:, tf.newaxis] + tf.range(num_frames, dtype=tf.int32)[tf.newaxis] * stride


def rgb_indices(positions, num_frames_video):
  """int32 positions (e.g. [V, T] from `sample_indices`) -> RGB frame indices mod `num_frames_video`, same shape."""
  return tf.math.floormod(positions, tf.maximum(tf.cast(num_frames_video, tf.int32), 1))


def flow_indices(positions, num_flow_fields, flow_stack=1):
  """int32 [V, T] positions -> [V, T, flow_stack] flow field indices (position + j), wrapped modulo
  `num_flow_fields` (the video's N - 1 fields)."""
  idx = positions[..., tf.newaxis] + tf.range(flow_stack, dtype=tf.int32)
  return tf.math.floormod(idx, tf.maximum(tf.cast(num_flow_fields, tf.int32), 1))


def center_offsets(height, width, crop_size):
  """(y, x) of the test-time center crop: ((height - crop_size) // 2, (width - crop_size) // 2) in pixels;
  ints or int tensors."""
  return (height - crop_size) // 2, (width - crop_size) // 2


def crop_offsets(height, width, crop_size, training=True, seed=None):
  """(y, x) int32 offsets of the crop: uniform over valid offsets at training, centered at test.

  Args:
    height, width: the frames' size in pixels (ints or int tensors), >= `crop_size`.
    crop_size: square crop side in pixels.
    training: random offsets; else `center_offsets`.
    seed: int32 [2] stateless seed (training only); None draws one.
  """
  if not training:
    return center_offsets(tf.cast(height, tf.int32), tf.cast(width, tf.int32), crop_size)
  room_y = tf.cast(height, tf.int32) - crop_size
  room_x = tf.cast(width, tf.int32) - crop_size
  if seed is None:
    seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
  y = tf.random.stateless_uniform([], seed, 0, room_y + 1, dtype=tf.int32)
  x = tf.random.stateless_uniform([], seed + [0, 1], 0, room_x + 1, dtype=tf.int32)
  return y, x


def resized_size(height, width, short_side):
  """(new_height, new_width) int32 tensors for frames of `height` x `width` resized to smaller side `short_side`
  with the aspect ratio kept: the rule of `data_pipelines.video.resized_shape` (float64 scale, round half to
  even as Python's `round`, >= 1), so the records path and the video-file path agree on every size.

  Args:
    height: the frames' height in pixels (int or int tensor).
    width: the frames' width in pixels (int or int tensor).
    short_side: the smaller side after resizing, in pixels (int > 0).
  """
  h = tf.cast(height, tf.float64)
  w = tf.cast(width, tf.float64)
  scale = tf.constant(float(short_side), tf.float64) / tf.minimum(h, w)
  side = tf.constant(int(short_side), tf.int32)
  long_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), 1)
  long_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), 1)
  portrait = h > w
  return tf.where(portrait, long_h, side), tf.where(portrait, side, long_w)


def resize_frames(frames, height, width):
  """Bilinear resize of uint8 `frames` [N, H, W, C] to [N, height, width, C] uint8: half-pixel centers, no
  antialiasing, rounded, i.e. OpenCV's `cv2.INTER_LINEAR` (what `data_pipelines.video` decodes with) within
  one level.

  Args:
    frames: uint8 tensor [N, H, W, C].
    height: output height in pixels (int or int32 scalar tensor).
    width: output width in pixels (int or int32 scalar tensor).
  """
  resized = tf.image.resize(frames, tf.stack([height, width]), method='bilinear', antialias=False)
  return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


def random_flip(seed):
  """Scalar bool tensor: flip or not (probability 1/2), one draw per clip from the int32 [2] stateless `seed`."""
  return tf.random.stateless_uniform([], seed, 0, 2, dtype=tf.int32) > 0


def crop(video, y, x, crop_size):
  """`video` [..., H, W, C] -> [..., crop_size, crop_size, C] with top-left corner (y, x) in pixels."""
  return video[..., y:y + crop_size, x:x + crop_size, :]


def flip_rgb(video):
  """Mirrors an RGB `video` [..., H, W, C] left-right (for flow use `flip_flow`)."""
  return tf.reverse(video, axis=[-2])


def flip_flow(flow_q):
  """Mirrors quantized flow `flow_q` uint8 [..., H, W, 2k] (x0, y0, x1, ...) left-right: reverses W and negates
  x (q -> 255 - q, exact in dequantized space)."""
  flow_q = tf.reverse(flow_q, axis=[-2])
  channels = tf.shape(flow_q)[-1]
  is_x = tf.equal(tf.math.floormod(tf.range(channels), 2), 0)
  return tf.where(is_x, tf.cast(255, flow_q.dtype) - flow_q, flow_q)


def stack_flow(flow_q):
  """Stacks k flow fields on channels: `flow_q` [..., k, H, W, 2] (static rank) -> [..., H, W, 2k],
  channels (x0, y0, x1, y1, ...)."""
  rank = flow_q.shape.rank
  perm = list(range(rank - 4)) + [rank - 3, rank - 2, rank - 4, rank - 1]
  flow_q = tf.transpose(flow_q, perm)
  shape = tf.shape(flow_q)
  return tf.reshape(flow_q, tf.concat([shape[:-2], [shape[-2] * 2]], 0))


def to_model_range(x):
  """uint8 levels -> float32 in [-1, 1]: x / 127.5 - 1, for RGB and quantized flow alike (flow within
  1/255 of f / 20).  Nested structures (the two-stream dict) map leaf by leaf; float leaves pass through,
  so a step can call this on whatever `make_dataset(..., output_dtype=...)` shipped.  numpy uint8 arrays
  give numpy float32 arrays (the same float32 arithmetic, bit-identical)."""
  def one(t):
    if isinstance(t, np.ndarray):
      return t.astype(np.float32) / np.float32(FLOW_CENTER) - np.float32(1.0) if t.dtype == np.uint8 else t
    t = tf.convert_to_tensor(t)
    if t.dtype != tf.uint8:
      return t
    return tf.cast(t, tf.float32) / FLOW_CENTER - 1.0
  return tf.nest.map_structure(one, x)


def center_crop(video, crop_size):
  """`video` [..., H, W, C] -> [..., crop_size, crop_size, C] at `center_offsets` (numpy array or tensor).

  Raises:
    ValueError: frames smaller than the crop (a numpy array, or a tensor of static size).
  """
  height, width = video.shape[-3], video.shape[-2]
  if height is not None and width is not None and (height < crop_size or width < crop_size):
    raise ValueError(f'frames of {height}x{width} are smaller than the {crop_size}x{crop_size} crop: decode with '
                     f'a larger short side (paper: 256) or pass a smaller crop size')
  if height is None or width is None:
    shape = tf.shape(video)
    height, width = shape[-3], shape[-2]
  y, x = center_offsets(height, width, crop_size)
  return crop(video, y, x, crop_size)


def check_frames(frames, channels=None, what: str = 'frames', ndim: int = 4):
  """Raises ValueError unless `frames` is uint8 levels of rank `ndim` ([N, H, W, channels] for 4), numpy
  array or tensor, with `channels` last channels (None: any).  `what` names `frames` in the message.

  The check every public entry that takes decoded frames runs first: float frames already scaled to
  [0, 1] or [-1, 1] would otherwise be cast to a constant uint8 video without a word.
  """
  dtype = frames.dtype
  if dtype not in (np.uint8, tf.uint8):
    lo_hi = ''
    if isinstance(frames, np.ndarray) and frames.size:
      lo_hi = f' with values in [{float(np.nanmin(frames)):.3g}, {float(np.nanmax(frames)):.3g}]'
    raise ValueError(f'{what} must be uint8 levels in [0, 255] (decoded video); got {dtype}{lo_hi}. Pass the '
                     'decoder\'s uint8 frames (floats in [0, 1]: multiply by 255 and round to uint8).')
  shape = tuple(frames.shape)
  if len(shape) != ndim or (channels is not None and shape[-1] != channels):
    want = ', '.join(['N', 'H', 'W', str(channels or 'C')][-ndim:] if ndim <= 4 else ['...', 'H', 'W', str(channels)])
    raise ValueError(f'{what} must be [{want}] ({channels or "any"} channels); got shape {list(shape)}')


def test_frames(frames, crop_size=CROP_SIZE):
  """The test-time preprocessing of Sec. 2.5 after decoding: center crop, then [-1, 1].

  The one function classification, feature extraction, the export checks and the test pipeline share
  (decode first with `data_pipelines.video.iter_frames` / `decode_video`: 25 fps, smaller side 256).

  Args:
    frames: uint8 [..., H, W, C] (RGB, or quantized flow with C = 2), numpy or tensor, H, W >= crop_size.
    crop_size: the square crop (224).

  Returns:
    float32 [..., crop_size, crop_size, C] in [-1, 1], numpy for numpy input.

  Raises:
    ValueError: frames that are not uint8 (e.g. floats already in [0, 1] or [-1, 1]), or smaller than the crop.
  """
  if not hasattr(frames, 'dtype'):
    frames = np.asarray(frames)
  check_frames(frames, ndim=len(frames.shape))
  return to_model_range(center_crop(frames, crop_size))
