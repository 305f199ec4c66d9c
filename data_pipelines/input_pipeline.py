"""tf.data input pipelines shaped by the Table 1 spec of each model (paper Sec. 2.1-2.5).

`make_dataset` reads the SequenceExample shards of `tfrecord_format`, samples the clip the model needs
(`preprocessing.sample_indices`), gathers only those encoded frames and decodes them, augments, scales,
batches and prefetches.

Frame size (`record_resize_target`): the records hold frames at the conversion's short side (prepare_data's
default, the paper's 256).  Models whose Table 1 spec crops from that size (every model but C3D) crop the
stored frames as they are, JPEG decoded straight into the crop window.  A spec with another
`resize_short_side` (C3D: a 112 crop of a 128 short side) has each record whose stored short side differs
resized to it first (bilinear, as `data_pipelines.video` decodes a video file), then cropped (random crop at
training, center crop at test): the field of view the model sees from a video file (`streaming.video_steps`).

Outputs: `(inputs, labels)`; `inputs` float32 [B, T, H, W, C] (or the uint8 levels, `output_dtype`) for one
modality, a dict {'rgb': ..., 'flow': ...} for two; with several test views a view axis: [B, V, T, H, W, C];
labels int32 [B].
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from data_pipelines import constants
from data_pipelines import preprocessing as pp
from data_pipelines.shards import check_files, list_shards
from data_pipelines import tfrecord_format as fmt
from data_pipelines.input_specs import FLOW, RGB, ClipSpec, InputSpec, get_input_spec

AUTOTUNE = tf.data.AUTOTUNE
OUTPUT_DTYPES = ('float32', 'uint8')  # make_dataset: scaled to [-1, 1] here, or raw levels scaled on the device


def stored_size(path: str) -> Optional[Tuple[int, int]]:
  """(height, width) in pixels of the frames stored in the first record of the shard at `path` (None for an
  empty or unreadable shard: the pipeline's own checks report those)."""
  try:
    for serialized in tf.data.TFRecordDataset(path).take(1):
      context = tf.io.parse_single_sequence_example(serialized, {
          'image/height': tf.io.FixedLenFeature([], tf.int64, default_value=0),
          'image/width': tf.io.FixedLenFeature([], tf.int64, default_value=0)})[0]
      return int(context['image/height']), int(context['image/width'])
  except tf.errors.OpError:
    return None
  return None


class CropTooLargeError(ValueError):
  """The crop is larger than the stored frames: every record would fail; a setting to change, not data."""


def record_resize_target(spec: InputSpec) -> Optional[int]:
  """The short side the records path resizes stored frames to before cropping, for the model of `spec`.

  None (crop the frames as stored) when the spec's `resize_short_side` is the conversion default
  (`constants.RESIZE_SHORT_SIDE`, 256: records converted by prepare_data hold frames of that short side, and
  records converted smaller pair with a smaller `crop_size`); else the spec's `resize_short_side` (C3D: 128),
  and each record whose stored short side differs is resized to it (`parse_and_sample`).

  Args:
    spec: the model's Table 1 input spec.
  """
  if spec.resize_short_side == constants.RESIZE_SHORT_SIDE:
    return None
  return int(spec.resize_short_side)


def check_crop_fits(path: str, crop_size: int, resize_short_side: Optional[int] = None) -> None:
  """Refuses, when the pipeline is built, a crop larger than the frames it is taken from: the stored frames
  (read from the first record), or with `resize_short_side` the frames resized to that short side.

  Args:
    path: a TFRecord shard; an empty or unreadable one passes (the pipeline's own checks report it).
    crop_size: side of the square crop in pixels.
    resize_short_side: the records path resizes every record to this short side first
      (`record_resize_target`); None: the stored frames are cropped as they are.

  Raises:
    CropTooLargeError: one line naming the shard, the frame size, and which flag to change.
  """
  if resize_short_side is not None:
    if crop_size > resize_short_side:
      raise CropTooLargeError(f'{path}: the model crops from frames resized to short side {resize_short_side} '
                              f'(its Table 1 input spec), smaller than the {crop_size}x{crop_size} crop: pass '
                              f'--crop_size <= {resize_short_side}')
    return
  size = stored_size(path)
  if size is None or min(size) == 0 or min(size) >= crop_size:
    return
  raise CropTooLargeError(f'{path}: the stored frames are {size[0]}x{size[1]}, smaller than the {crop_size}x{crop_size} '
                   f'crop: convert with prepare_data --resize_short_side >= {crop_size} (the paper: 256), or pass '
                   f'--crop_size <= {min(size)}')


# ----- clip assembly, shared by the record pipeline and numpy evaluation -----
def resolve_clip(spec: InputSpec, training: bool, num_frames: Optional[int] = None) -> ClipSpec:
  """The spec's train clip (`training`) or test clip, with `num_frames` overriding T (a whole-video test
  becomes one clip).

  Raises:
    ValueError: the resulting clip is invalid (`ClipSpec.validate`).
  """
  clip = spec.train if training else spec.test
  if num_frames is not None:
    clip = dataclasses.replace(clip, num_frames=num_frames)
  clip.validate()
  return clip


def _assemble(num_frames_video, num_flow, height, width, get_rgb, get_flow, modalities, clip: ClipSpec,
              training, crop_size, seed, scale=True):
  """Samples, crops, flips and (with `scale`) maps to [-1, 1] one video.

  `height`, `width`: the size of the frames the crop is taken from (after any resize).
  get_rgb(flat_indices, (y, x)) -> uint8 [M, c, c, 3]; get_flow(flat_indices, (y, x)) -> uint8 [M, c, c, 2].
  """
  with_flow = FLOW in modalities
  if seed is None:
    seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
  seed = tf.cast(seed, tf.int32)
  seeds = tf.random.experimental.stateless_split(seed, 3)
  length = pp.num_positions(num_frames_video, clip.flow_stack, with_flow)
  pos = pp.sample_indices(length, clip.num_frames, clip.stride, training, 1 if training else clip.num_clips,
                          seeds[0])
  views, steps = tf.shape(pos)[0], tf.shape(pos)[1]
  # Frames smaller than the crop would fail deep inside (random crop bounds, JPEG crop window): say so here.
  short = tf.minimum(tf.cast(height, tf.int32), tf.cast(width, tf.int32))
  with tf.control_dependencies([tf.debugging.assert_greater_equal(
      short, tf.constant(crop_size, tf.int32),
      message=f'stored frames are smaller than the {crop_size}x{crop_size} crop: convert with prepare_data '
              f'--resize_short_side >= {crop_size} (the paper: 256), or pass --crop_size <= the stored short side')]):
    height = tf.identity(tf.cast(height, tf.int32))
  y, x = pp.crop_offsets(height, width, crop_size, training, seeds[1])
  flip = pp.random_flip(seeds[2]) if training else tf.constant(False)
  out = {}
  # A static index count (fixed-length clips) lets the decoders unroll (tfrecord_format._decode_each).
  count = -1 if clip.num_frames is None else clip.num_frames * (1 if training else clip.num_clips)
  if RGB in modalities:
    idx = tf.reshape(pp.rgb_indices(pos, num_frames_video), [count])
    rgb = tf.reshape(get_rgb(idx, (y, x)), [views, steps, crop_size, crop_size, 3])
    rgb = tf.cond(flip, lambda: pp.flip_rgb(rgb), lambda: rgb)
    out[RGB] = rgb
  if with_flow:
    # The check must run before the gather that would fail with a cryptic index error.
    with tf.control_dependencies([tf.debugging.assert_positive(
        num_flow, message='record has no flow fields; convert with --flow')]):
      num_flow = tf.identity(num_flow)
    idx = tf.reshape(pp.flow_indices(pos, num_flow, clip.flow_stack), [max(count * clip.flow_stack, -1)])
    flow = tf.reshape(get_flow(idx, (y, x)), [views, steps, clip.flow_stack, crop_size, crop_size, 2])
    flow = pp.stack_flow(flow)
    flow = tf.cond(flip, lambda: pp.flip_flow(flow), lambda: flow)
    out[FLOW] = flow
  single_view = training or clip.num_clips == 1
  if single_view:
    out = {k: v[0] for k, v in out.items()}
  if scale:
    out = pp.to_model_range(out)
  return out[modalities[0]] if len(modalities) == 1 else out


def clip_from_decoded(frames, flow, spec: InputSpec, training: bool, crop_size: int,
                      num_frames: Optional[int] = None, seed=None):
  """Decoded frames -> one model input example, sampled as the spec's clip (Sec. 2.5).

  Args:
    frames: uint8 tensor [N, H, W, 3] RGB, H, W >= `crop_size`.
    flow: uint8 tensor [N - 1, H, W, 2] quantized flow (needed by flow models), or None.
    spec: the model's Table 1 input spec.
    training: random start, crop and flip; else center crop and the test clip's views.
    crop_size: square crop side in pixels.
    num_frames: T override (`resolve_clip`).
    seed: int32 [2] stateless seed; None draws one.

  Returns:
    float32 in [-1, 1], [T, c, c, C] (c = crop_size) or [V, T, c, c, C] with several test views; a dict {'rgb', 'flow'}
    for two-stream models.

  Raises:
    ValueError: an invalid clip override.
    tf.errors.InvalidArgumentError: frames smaller than the crop, or a flow model without flow fields.
  """
  clip = resolve_clip(spec, training, num_frames)
  shape = tf.shape(frames)

  def get_rgb(idx, yx):
    return pp.crop(tf.gather(frames, idx), yx[0], yx[1], crop_size)

  def get_flow(idx, yx):
    return pp.crop(tf.gather(flow, idx), yx[0], yx[1], crop_size)

  num_flow = tf.shape(flow)[0] if flow is not None else 0
  return _assemble(shape[0], num_flow, shape[1], shape[2], get_rgb, get_flow, spec.modalities, clip,
                   training, crop_size, seed)


def eval_input_from_numpy(frames, model_name, flow=None, crop_size=None, num_frames=None):
  """Decoded numpy video -> the model's eval input (for feature extraction and serving).

  Args:
    frames: uint8 [N, H, W, 3] RGB with the smaller side already resized to the spec's `resize_short_side`
      (256; 128 for c3d: `decode_video(path, resize_short_side=128)`, as classification decodes it).
    model_name: a registered model name (the Table 1 spec decides sampling).
    flow: quantized uint8 [N - 1, H, W, 2] flow for flow models.
    crop_size, num_frames: overrides of the spec.

  Returns:
    float32 [1, T, h, w, C] (or [1, V, T, h, w, C] with several views), or a dict {'rgb', 'flow'} for
    two-stream models; same ops as the test branch of `make_dataset`.

  Raises:
    ValueError: frames or flow that are not uint8 with 3 / 2 channels, or flow not of N - 1 fields.
  """
  spec = get_input_spec(model_name)
  frames = frames if tf.is_tensor(frames) else np.asarray(frames)
  pp.check_frames(frames, 3, 'frames')
  if flow is not None:
    flow = flow if tf.is_tensor(flow) else np.asarray(flow)
    pp.check_frames(flow, 2, 'flow (quantized, data_pipelines.flow.quantize_flow)')
    if flow.shape[0] != frames.shape[0] - 1 or tuple(flow.shape[1:3]) != tuple(frames.shape[1:3]):
      raise ValueError(f'flow must be [N - 1, H, W, 2] for frames [N, H, W, 3] (field i: frame i -> i + 1); got '
                       f'flow {list(flow.shape)} for frames {list(frames.shape)}')
  frames = tf.convert_to_tensor(frames)
  flow_t = None if flow is None else tf.convert_to_tensor(flow)
  inputs = clip_from_decoded(frames, flow_t, spec, training=False,
                             crop_size=crop_size or spec.crop_size, num_frames=num_frames)
  return tf.nest.map_structure(lambda x: x[tf.newaxis], inputs)


def parse_and_sample(serialized, seed, spec: InputSpec, clip: ClipSpec, training: bool, crop_size: int,
                     dct_method: str = '', scale: bool = True, with_video_id: bool = False):
  """One serialized record -> (inputs, label[, video_id]): gathers the needed encoded frames, then decodes
  them: JPEG straight into the crop window, or, for a spec that resizes (`record_resize_target`: C3D) a
  record stored at another short side, whole frames resized bilinearly to the spec's short side, then cropped.

  Args:
    serialized: string scalar, a `tfrecord_format` SequenceExample.
    seed: int32 [2] stateless seed for sampling, crop and flip; None draws one.
    spec: the model's Table 1 input spec (modalities).
    clip: the clip to sample (`resolve_clip`).
    training: random start, crop and flip; else center crop and test views.
    crop_size: square crop side in pixels.
    dct_method: JPEG IDCT ('' or 'INTEGER_FAST').
    scale: map to float32 [-1, 1]; False keeps the uint8 levels.
    with_video_id: also return the record's `video/id` string.

  Returns:
    inputs as in `clip_from_decoded` (uint8 without `scale`), label int32 scalar, and the video id.

  Raises:
    tf.errors.InvalidArgumentError (when run): a flow model whose spec resizes, on a record stored at another
      short side (stored flow is not resized: its vectors are in stored pixels).
  """
  parsed = fmt.parse_sequence_example(serialized, with_flow=FLOW in spec.modalities)
  encoded = parsed[fmt.IMAGE_KEY]
  height = tf.cast(parsed['image/height'], tf.int32)
  width = tf.cast(parsed['image/width'], tf.int32)
  target = record_resize_target(spec)
  if target is not None:  # C3D: crop from frames at the spec's short side, as from a video file
    height, width = pp.resized_size(height, width, target)
    resize = tf.logical_or(tf.not_equal(height, tf.cast(parsed['image/height'], tf.int32)),
                           tf.not_equal(width, tf.cast(parsed['image/width'], tf.int32)))

  def get_rgb(idx, yx):
    frames = tf.gather(encoded, idx)
    window = tf.stack([yx[0], yx[1], crop_size, crop_size])
    in_window = lambda: fmt.decode_frames(frames, crop_window=window, dct_method=dct_method)
    if target is None:
      return in_window()
    resized = lambda: pp.crop(pp.resize_frames(fmt.decode_frames(frames, dct_method=dct_method), height, width),
                              yx[0], yx[1], crop_size)
    return tf.cond(resize, resized, in_window)

  def get_flow(idx, yx):
    checks = []
    if target is not None:
      checks.append(tf.debugging.Assert(tf.logical_not(resize), [
          f'stored flow cannot be resized to the model\'s short side {target} (its vectors are in stored '
          f'pixels): convert the records with prepare_data --resize_short_side={target}. Stored size:',
          parsed['image/height'], parsed['image/width']]))
    with tf.control_dependencies(checks):
      flow = fmt.decode_flow(tf.gather(parsed[fmt.FLOW_X_KEY], idx), tf.gather(parsed[fmt.FLOW_Y_KEY], idx))
    return pp.crop(flow, yx[0], yx[1], crop_size)

  num_flow = tf.shape(parsed[fmt.FLOW_X_KEY])[0] if FLOW in spec.modalities else 0
  inputs = _assemble(tf.shape(encoded)[0], num_flow, height, width, get_rgb,
                     get_flow, spec.modalities, clip, training, crop_size, seed, scale)
  label = tf.cast(parsed[fmt.LABEL_KEY], tf.int32)
  return (inputs, label, parsed['video/id']) if with_video_id else (inputs, label)


# ----- the dataset -----
class RecordCounts:
  """Records that entered decoding and records that came out, for `skip_corrupt` datasets.

  `skipped` = read - delivered: exact once a finite dataset is exhausted; while an endless training
  stream runs it also counts the few records still in flight (parallel map, batch, prefetch).
  """

  def __init__(self):
    with tf.init_scope():  # plain host variables, also when built inside a strategy's dataset_fn
      self.read = tf.Variable(0, dtype=tf.int64, trainable=False, name='records_read')
      self.delivered = tf.Variable(0, dtype=tf.int64, trainable=False, name='records_delivered')

  def count_read(self, *element):
    """Identity on a dataset element (`ds.map(counts.count_read)`) that adds 1 to `read` as it passes."""
    with tf.control_dependencies([self.read.assign_add(1)]):
      return tf.nest.map_structure(tf.identity, element)

  def count_delivered(self, *element):
    """Identity on a dataset element that adds 1 to `delivered` (mapped after failing records are dropped)."""
    with tf.control_dependencies([self.delivered.assign_add(1)]):
      return tf.nest.map_structure(tf.identity, element)

  def as_dict(self):
    """{'records_read', 'records_delivered', 'records_skipped'} as Python ints (read eagerly)."""
    read, delivered = int(self.read.numpy()), int(self.delivered.numpy())
    return {'records_read': read, 'records_delivered': delivered, 'records_skipped': read - delivered}


def make_dataset(file_pattern, model_name: str, training: bool, batch_size: int, *, seed: Optional[int] = None,
                 deterministic: bool = False, crop_size: Optional[int] = None,
                 num_frames: Optional[int] = None, skip_corrupt: bool = False, repeat=None,
                 input_context: Optional[tf.distribute.InputContext] = None, shuffle_buffer: int = 64,
                 cycle_length: int = 8, verify_data: Optional[bool] = None,
                 drop_remainder: Optional[bool] = None,
                 dct_method: str = '', output_dtype: str = 'float32', with_video_ids: bool = False):
  """Batches of `(inputs, labels)` for the model named, sampled as its Table 1 spec says.

  Args:
    file_pattern: glob (or list of globs / files) of TFRecord shards.
    model_name: i3d_rgb, i3d_flow, two_stream_i3d, convnet_lstm, c3d, two_stream or fused_3d.
    training: random clip / crop / flip, shuffled, repeated; else center crop and test views.
    batch_size: global batch size (divided by the replica count when `input_context` is given).
    seed: makes shuffling and augmentation reproducible (per-record stateless seeds); with
      `deterministic=True` the element order is reproducible too.
    deterministic: keep the order of parallel interleave / map.
    crop_size: spatial size override (e.g. 64 or 112 for tests and demos).
    num_frames: T override; at test it replaces the whole video by one centered clip of T frames.
    skip_corrupt: skip (and count, in `dataset.skipped_files` and a warning) shards with a corrupt framing,
      and drop records that fail to parse or decode, each with a logged warning and counted in
      `dataset.record_counts` (a `RecordCounts`); otherwise a corrupt shard raises naming the file.
      It implies `verify_data` unless that is set False: a payload CRC error met while reading ends the
      shard's reading (TFRecordDataset stops there, logged) and its remaining records could not be counted.
    repeat: passes over the records: None: forever at training, one at test; an int n >= 1: n passes; -1:
      forever.  0 and other negative values raise (0 meant one pass, -5 too).
    input_context: tf.distribute.InputContext for per-replica sharding.
    shuffle_buffer: records in the shuffle buffer at training.
    cycle_length: shards read in parallel.
    verify_data: also check payload CRCs of every shard up front (one extra read of the data); default:
      the value of `skip_corrupt`.
    drop_remainder: default True at training, False at test.
    dct_method: JPEG IDCT, '' (libjpeg default, accurate) or 'INTEGER_FAST' (faster, within a few levels).
    output_dtype: 'float32' (in [-1, 1]) or 'uint8' (the raw levels, 4x fewer bytes to batch and copy to
      the accelerator; the consumer applies `preprocessing.to_model_range`, as the trainer's step does).
      The float conversion costs 15-40% of the CPU pipeline here (docs/data.md, section 6).
    with_video_ids: elements become `(inputs, labels, video_ids)` (string [B], the records' `video/id`),
      so a consumer can name every video, and every dropped one.

  Returns:
    tf.data.Dataset of (inputs, labels int32 [B]) (plus video_ids); inputs float32 [B, T, H, W, C] in [-1, 1] (uint8 levels
    with output_dtype='uint8'), a dict
    {'rgb', 'flow'} for two-stream models, [B, V, T, H, W, C] with V > 1 test views.  A whole-video test
    (T None) needs batch_size 1 (videos differ in length; no padding is done).

  Raises:
    ValueError: no file matches, no record in the matched shards (training), bad sizes, whole-video batching,
      a `repeat` other than None, -1 or an int >= 1.
    shards.NotATFRecordError: a matched file is not a TFRecord file (e.g. a glob matching manifest.json).
    shards.CorruptShardError: a shard with broken framing (names the file) unless `skip_corrupt`.
  """
  if output_dtype not in OUTPUT_DTYPES:
    raise ValueError(f'output_dtype must be one of {OUTPUT_DTYPES}. Received: output_dtype={output_dtype!r}')
  if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer))
                             or not (repeat == -1 or repeat >= 1)):
    raise ValueError('repeat must be None (forever at training, one pass at test), -1 (forever) or the number '
                     f'of passes, >= 1. Received: repeat={repeat!r}')
  spec = get_input_spec(model_name)
  crop_size = int(crop_size or spec.crop_size)
  clip = resolve_clip(spec, training, num_frames)
  files = list_shards(file_pattern)
  if input_context is not None:
    batch_size = input_context.get_per_replica_batch_size(batch_size)
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1. Received: batch_size={batch_size}')
  if clip.num_frames is None and batch_size != 1:
    raise ValueError('Whole-video testing (num_frames=None) needs batch_size=1: videos differ in length. '
                     f'Received: batch_size={batch_size}')
  files, bad, num_records = check_files(files, skip_corrupt, skip_corrupt if verify_data is None else verify_data)
  if not files:
    raise ValueError(f'Every shard matching {file_pattern!r} is corrupt: {bad}')
  if training and not num_records:  # e.g. every video failed to convert: the repeated dataset would end at once
    raise ValueError(f'the shards matching {file_pattern!r} hold no records (did every video fail to convert? '
                     'see the manifest.json beside them): nothing to train on')
  check_crop_fits(files[0], crop_size, record_resize_target(spec))

  ds = tf.data.Dataset.from_tensor_slices(files)
  shard_records = False
  if input_context is not None and input_context.num_input_pipelines > 1:
    if len(files) >= input_context.num_input_pipelines:
      ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    else:
      shard_records = True
  # Fewer files than pipelines: every pipeline reads every file and keeps every n-th record, so they must all
  # see one record order (no per-pipeline file shuffle, an ordered interleave) or their shares would overlap
  # and miss records; the record shuffle below still mixes each share.
  if training and not shard_records:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(files)),
                     num_parallel_calls=AUTOTUNE, deterministic=deterministic or shard_records)
  if shard_records:
    ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat is None:
    repeat = -1 if training else 1
  if repeat == -1:
    ds = ds.repeat()
  elif repeat > 1:
    ds = ds.repeat(int(repeat))
  ds = ds.enumerate()
  base = None if seed is None else int(seed)
  counts = RecordCounts() if skip_corrupt else None
  if counts:
    ds = ds.map(counts.count_read)

  def process(i, serialized):
    element_seed = None if base is None else tf.stack([tf.constant(base, tf.int32), tf.cast(i, tf.int32)])
    return parse_and_sample(serialized, element_seed, spec, clip, training, crop_size, dct_method,
                            scale=output_dtype == 'float32', with_video_id=with_video_ids)

  ds = ds.map(process, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
  if counts:
    ds = ds.ignore_errors(log_warning=True).map(counts.count_delivered)
  ds = ds.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder)
  ds = ds.prefetch(AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = deterministic
  ds = ds.with_options(options)
  ds.skipped_files = bad
  ds.record_counts = counts
  return ds
