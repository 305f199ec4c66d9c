"""TFRecord format: one `tf.train.SequenceExample` per video (writers and parsers in one place).

Context features
  video/id            bytes   unique id (official name / youtube clip name; folder datasets: relative path)
  video/fps           float   frame rate of the stored frames (25)
  video/num_frames    int64   N stored RGB frames
  image/height, image/width  int64  stored frame size (smaller side 256 by default)
  clip/label/index    int64   class index (TF Model Garden key), -1 when unknown
  clip/label/text     bytes   class name
  video/source        bytes   original path
  image/format        bytes   'jpeg'
  flow/format         bytes   'png' | 'jpeg' | '' (no flow)
  flow/num_frames     int64   N - 1 flow fields (0 without flow)
  flow/bound          float   truncation bound in px (20)
Sequence features
  image/encoded       bytes   one JPEG per frame, RGB (TF Model Garden key)
  flow/x/encoded      bytes   one 8-bit grayscale PNG (or JPEG) per flow field, x component, quantized
  flow/y/encoded      bytes   same for the y component
Flow field i is the motion from frame i to frame i + 1 (see data_pipelines/flow.py for the quantization).

Encoding uses OpenCV (no TensorFlow), so worker processes stay light; the proto is built where it is written.
"""

import dataclasses
from typing import List, Optional

import cv2
import numpy as np

from data_pipelines import constants
from data_pipelines.flow import FLOW_BOUND
from data_pipelines.io_utils import atomic_path

# The version of what prepare_data writes for given videos and options (records, shard and manifest
# layout).  Recorded in every output's manifest: a rerun by a version that writes something else refuses
# to resume (docs/reruns.md).  2: folder ids keep the extension; manifests/ folder; per-subset summaries.
FORMAT_VERSION = 2

IMAGE_KEY = 'image/encoded'
FLOW_X_KEY = 'flow/x/encoded'
FLOW_Y_KEY = 'flow/y/encoded'
UNROLL_MAX = 256  # decode_frames unrolls static frame counts up to this
LABEL_KEY = 'clip/label/index'
LABEL_TEXT_KEY = 'clip/label/text'


@dataclasses.dataclass
class EncodedVideo:
  """A video ready to serialize: encoded frames plus metadata (plain Python, picklable across processes)."""
  video_id: str
  label_index: int
  label_text: str
  source: str
  fps: float
  height: int
  width: int
  images: List[bytes]
  flow_x: List[bytes] = dataclasses.field(default_factory=list)
  flow_y: List[bytes] = dataclasses.field(default_factory=list)
  flow_format: str = ''
  flow_bound: float = FLOW_BOUND

  @property
  def num_frames(self):
    """N, the stored RGB frames."""
    return len(self.images)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
  """uint8 [H, W, 3] RGB (or [H, W] gray) `image` -> JPEG bytes at `quality` (0-100).

  Raises:
    ValueError: OpenCV fails to encode.
  """
  if image.ndim == 3:
    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  if not ok:
    raise ValueError('JPEG encoding failed')
  return buf.tobytes()


def encode_png(image: np.ndarray, compression: int = 1) -> bytes:
  """uint8 [H, W] `image` -> lossless PNG bytes; `compression` 0-9 (OpenCV's level: size against speed).

  Raises:
    ValueError: OpenCV fails to encode.
  """
  ok, buf = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
  if not ok:
    raise ValueError('PNG encoding failed')
  return buf.tobytes()


def encode_video(frames: np.ndarray, flow_q: Optional[np.ndarray], *, video_id: str, label_index: int = -1,
                 label_text: str = '', source: str = '', fps: float = constants.FPS, jpeg_quality: int = 90,
                 flow_format: str = 'png', flow_jpeg_quality: int = 95) -> EncodedVideo:
  """RGB uint8 [N, H, W, 3] and quantized flow uint8 [N - 1, H, W, 2] (or None) -> EncodedVideo.

  Args:
    frames: uint8 [N, H, W, 3] RGB frames.
    flow_q: uint8 [N - 1, H, W, 2] flow (x, y) quantized by `data_pipelines.flow.quantize_flow`, or None.
    video_id: the record id.
    label_index: class index, -1 when unknown.
    label_text: class name.
    source: the original video's path.
    fps: frame rate of `frames`.
    jpeg_quality: JPEG quality of the RGB frames, 0-100.
    flow_format: 'png' (lossless) or 'jpeg' for the flow images.
    flow_jpeg_quality: JPEG quality of the flow images with flow_format='jpeg'.

  Raises:
    ValueError: frames or flow of another dtype or shape, an unknown `flow_format` (checked when there is
      flow), or a failed encode.
  """
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f'frames must be uint8 [N, H, W, 3]. Received: {frames.dtype} {frames.shape}')
  images = [encode_jpeg(f, jpeg_quality) for f in frames]
  fx, fy, fmt = [], [], ''
  if flow_q is not None:
    if flow_q.shape != (frames.shape[0] - 1,) + frames.shape[1:3] + (2,) or flow_q.dtype != np.uint8:
      raise ValueError(f'flow must be uint8 [N - 1, H, W, 2] for frames {frames.shape}. '
                       f'Received: {flow_q.dtype} {flow_q.shape}')
    if flow_format == 'png':
      enc = encode_png
    elif flow_format == 'jpeg':
      enc = lambda x: encode_jpeg(x, flow_jpeg_quality)
    else:
      raise ValueError(f'flow_format must be "png" or "jpeg". Received: flow_format={flow_format!r}')
    fx = [enc(np.ascontiguousarray(f[..., 0])) for f in flow_q]
    fy = [enc(np.ascontiguousarray(f[..., 1])) for f in flow_q]
    fmt = flow_format
  return EncodedVideo(video_id=video_id, label_index=int(label_index), label_text=label_text, source=source,
                      fps=float(fps), height=int(frames.shape[1]), width=int(frames.shape[2]), images=images,
                      flow_x=fx, flow_y=fy, flow_format=fmt)


def to_sequence_example(video: EncodedVideo):
  """Builds the tf.train.SequenceExample of an EncodedVideo `video`: context features (id, fps, sizes, label,
  source, formats, counts, flow bound) and the feature lists `image/encoded` and, when it has flow,
  `flow/x/encoded`, `flow/y/encoded`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def b(v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode('utf-8')]))

  def i(v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

  def f(v):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))

  def seq(values):
    return tf.train.FeatureList(feature=[tf.train.Feature(bytes_list=tf.train.BytesList(value=[x]))
                                         for x in values])

  context = tf.train.Features(feature={
      'video/id': b(video.video_id), 'video/fps': f(video.fps), 'video/num_frames': i(video.num_frames),
      'image/height': i(video.height), 'image/width': i(video.width), LABEL_KEY: i(video.label_index),
      LABEL_TEXT_KEY: b(video.label_text), 'video/source': b(video.source), 'image/format': b('jpeg'),
      'flow/format': b(video.flow_format), 'flow/num_frames': i(len(video.flow_x)),
      'flow/bound': f(video.flow_bound)})
  lists = {IMAGE_KEY: seq(video.images)}
  if video.flow_format:
    lists[FLOW_X_KEY] = seq(video.flow_x)
    lists[FLOW_Y_KEY] = seq(video.flow_y)
  return tf.train.SequenceExample(context=context, feature_lists=tf.train.FeatureLists(feature_list=lists))


def serialize(video: EncodedVideo) -> bytes:
  """`video` as a serialized `tf.train.SequenceExample` (the layout above), one TFRecord."""
  return to_sequence_example(video).SerializeToString()


def write_tfrecord(path: str, serialized_records):
  """Writes `serialized_records` (an iterable of bytes) to the TFRecord file `path` atomically (temporary name,
  then rename); returns the count."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  n = 0
  with atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
    for record in serialized_records:
      writer.write(record)
      n += 1
  return n


def context_features():
  """{key: tf.io.FixedLenFeature} of the parsed context features, with defaults for records that lack one
  (fps 25.0, label index -1, counts and sizes 0, strings ''); 'image/format' and 'flow/bound' are not parsed."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {
      'video/id': tf.io.FixedLenFeature([], tf.string, default_value=''),
      'video/fps': tf.io.FixedLenFeature([], tf.float32, default_value=25.0),
      'video/num_frames': tf.io.FixedLenFeature([], tf.int64, default_value=0),
      'image/height': tf.io.FixedLenFeature([], tf.int64, default_value=0),
      'image/width': tf.io.FixedLenFeature([], tf.int64, default_value=0),
      LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
      LABEL_TEXT_KEY: tf.io.FixedLenFeature([], tf.string, default_value=''),
      'video/source': tf.io.FixedLenFeature([], tf.string, default_value=''),
      'flow/format': tf.io.FixedLenFeature([], tf.string, default_value=''),
      'flow/num_frames': tf.io.FixedLenFeature([], tf.int64, default_value=0),
  }


def parse_sequence_example(serialized, with_flow: bool = True):
  """Parses one serialized SequenceExample (a scalar string tensor) into a flat dict of tensors.

  Returns the context keys above plus `image/encoded` (string [N]) and, when `with_flow`,
  `flow/x/encoded` and `flow/y/encoded` (string [N - 1], empty without flow).  Nothing is decoded here:
  gather the frames a clip needs first, then decode them (`decode_frames`, `decode_flow`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  seq = {IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)}
  if with_flow:
    seq[FLOW_X_KEY] = tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
    seq[FLOW_Y_KEY] = tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
  context, sequence = tf.io.parse_single_sequence_example(serialized, context_features(), seq)
  out = dict(context)
  out.update(sequence)
  return out


def _decode_each(fn, encoded, channels):
  """fn over string [T] -> uint8 [T, H, W, channels].  A static T up to UNROLL_MAX (training clips) is
  unrolled: independent decodes the runtime runs in parallel, without a loop's per-frame overhead (~20%
  faster here than `map_fn`); dynamic lengths (whole test videos) use `map_fn`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  n = encoded.shape[0]
  if n is not None and 0 < n <= UNROLL_MAX and not tf.executing_eagerly():
    return tf.stack([fn(encoded[i]) for i in range(n)])
  return tf.map_fn(fn, encoded, fn_output_signature=tf.TensorSpec([None, None, channels], tf.uint8),
                   parallel_iterations=4)


def decode_frames(encoded, crop_window=None, dct_method=''):
  """Decodes JPEG frames: `encoded` string [T] -> uint8 RGB [T, H, W, 3].

  Args:
    encoded: string [T] tensor of JPEG images (`image/encoded`).
    crop_window: int32 [y, x, h, w] in pixels: decodes only that window (output [T, h, w, 3]); None: whole.
    dct_method: JPEG IDCT, '' (libjpeg default) or 'INTEGER_FAST' / 'INTEGER_ACCURATE'.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if crop_window is None:
    fn = lambda s: tf.io.decode_jpeg(s, channels=3, dct_method=dct_method)
  else:
    fn = lambda s: tf.image.decode_and_crop_jpeg(s, crop_window, channels=3, dct_method=dct_method)
  return _decode_each(fn, encoded, 3)


def decode_flow(encoded_x, encoded_y):
  """string [T] x and y images (PNG or JPEG) -> quantized uint8 [T, H, W, 2] (x, y).

  Args:
    encoded_x: string [T] tensor, the x-component images (`flow/x/encoded`).
    encoded_y: string [T] tensor, the y-component images, same T and size.

  Returns:
    uint8 [T, H, W, 2]; level q is q * 40 / 255 - 20 px (`data_pipelines.flow.dequantize_flow`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dec = lambda s: tf.io.decode_image(s, channels=1, expand_animations=False)
  return tf.concat([_decode_each(dec, encoded_x, 1), _decode_each(dec, encoded_y, 1)], axis=-1)


def decode_record_numpy(serialized: bytes):
  """Eager helper for tests and tools: serialized record -> dict with numpy 'frames', 'flow', metadata."""
  parsed = parse_sequence_example(serialized)
  out = {k: (v.numpy().decode() if v.dtype.name == 'string' and v.shape.rank == 0 else v.numpy())
         for k, v in parsed.items() if v.shape.rank == 0}
  out['frames'] = decode_frames(parsed[IMAGE_KEY]).numpy()
  if parsed[FLOW_X_KEY].shape[0]:
    out['flow'] = decode_flow(parsed[FLOW_X_KEY], parsed[FLOW_Y_KEY]).numpy()
  else:
    out['flow'] = None
  return out
