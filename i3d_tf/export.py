"""SavedModel export of I3D and Two-Stream I3D with serving, feature and serialized-example signatures.

Signatures (single stream, C = 3 for RGB, 2 for flow; inputs in [-1, 1], any T, H, W):
  serving_default(video: float32 [B, T, H, W, C]) -> logits [B, K], probabilities [B, K],
                            top_k_indices int32 [B, k], top_k_probabilities [B, k], top_k_class_names
                            string [B, k] (k = min(5, K); names from `class_names`, else 'class <i>')
  features(video)        -> features [B, 1024]: Mixed_5c after the head's average pool, spatially and
                            temporally averaged; features_per_time [B, T', 1024] (before the time average)
  serialized_examples(serialized: string [N]) -> logits [N, K], probabilities [N, K], label [N], video_id [N]
                            each record decoded by the data pipeline's *eval* preprocessing
                            (`data_pipelines.input_pipeline.parse_and_sample`, center crop, the whole video),
                            so serving cannot drift from evaluation.
Two-stream exports take `rgb` and `flow` instead of `video` and return the fused logits (and
`rgb_features`, `flow_features`, ... from `features`).

Load with `tf.saved_model.load(path).signatures['serving_default'](video=x)`, or in Keras 3 with
`keras.layers.TFSMLayer(path, call_endpoint='serving_default')`.  (tensorflow-hub's `hub.KerasLayer` needs
tf-keras, the Keras 2 package; with Keras 3 use TFSMLayer.)
"""

import json
import os
from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from i3d_tf import layers as L
from data_pipelines.io_utils import atomic_path

FEATURES_LAYER = 'Logits.AvgPool'  # Mixed_5c after the head's average pool: [B, T', h, w, 1024].
TOP_K = 5  # classes named by serving_default
EXPORT_INFO = 'i3d_export.json'
STREAM_CHANNELS = {'rgb': 3, 'flow': 2}


def feature_model(model: keras.Model, name: Optional[str] = None) -> keras.Model:
  """Per-time features [B, T', 1024] of a single-stream I3D: its head's average pool, spatially averaged.

  Args:
    model: an I3D built with its head (`final_endpoint='Logits'`).
    name: the feature model's name (default '<model name>_features').

  Raises:
    ValueError: `model` has no 'Logits.AvgPool' layer.
  """
  try:
    pooled = model.get_layer(FEATURES_LAYER).output
  except ValueError:
    raise ValueError(f'{model.name} has no {FEATURES_LAYER!r} layer (build it with a head: '
                     f"final_endpoint='Logits').") from None
  per_time = L.Mean((2, 3), name='features_spatial_mean')(pooled)
  return keras.Model(model.input, per_time, name=name or f'{model.name}_features')


def stream_models(model: keras.Model) -> Dict[str, keras.Model]:
  """{'rgb': ..., 'flow': ...} of a Two-Stream I3D (nested 'RGB' and 'Flow'), or {modality: model}."""
  names = {l.name for l in model.layers}
  if {'RGB', 'Flow'} <= names:
    return {'rgb': model.get_layer('RGB'), 'flow': model.get_layer('Flow')}
  channels = model.inputs[0].shape[-1]
  modality = {3: 'rgb', 2: 'flow'}.get(channels)
  if modality is None:
    raise ValueError(f'Cannot tell the modality of {model.name} (input channels {channels}).')
  return {modality: model}


def _serialized_fn(model, model_name: str, crop_size: Optional[int], num_classes: int):
  """string [N] -> per-record logits through the data pipeline's eval preprocessing."""
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  from data_pipelines.input_specs import get_input_spec  # pylint: disable=g-import-not-at-top
  spec = get_input_spec(model_name)
  clip = input_pipeline.resolve_clip(spec, training=False)
  crop = int(crop_size or spec.crop_size)

  def one(serialized):
    inputs, label = input_pipeline.parse_and_sample(serialized, tf.constant([0, 0], tf.int32), spec, clip,
                                                    False, crop)
    batched = tf.nest.map_structure(lambda x: x[tf.newaxis], inputs)
    logits = tf.cast(model(batched, training=False), tf.float32)[0]
    parsed_id = tf.io.parse_single_sequence_example(
        serialized, {'video/id': tf.io.FixedLenFeature([], tf.string, default_value='')})[0]['video/id']
    return {'logits': logits, 'label': tf.cast(label, tf.int64), 'video_id': parsed_id}

  def fn(serialized):
    out = tf.map_fn(one, serialized, fn_output_signature={
        'logits': tf.TensorSpec([num_classes], tf.float32), 'label': tf.TensorSpec([], tf.int64),
        'video_id': tf.TensorSpec([], tf.string)})
    out['probabilities'] = tf.nn.softmax(out['logits'])
    return out

  return fn


def check_replaceable(output_dir: str) -> None:
  """Refuses to replace `output_dir` unless it is missing, empty, or an earlier export (its `i3d_export.json`
  beside `saved_model.pb`): `--overwrite` replaces an export, it never deletes a folder of other files.

  Raises:
    FileExistsError: one line naming the folder, what is in it and the fix.
  """
  if not os.path.exists(output_dir):
    return
  if not os.path.isdir(output_dir):
    raise FileExistsError(f'{output_dir} is a file, not an export folder: choose another --output_dir')
  entries = os.listdir(output_dir)
  if not entries or {EXPORT_INFO, 'saved_model.pb'} <= set(entries):
    return
  raise FileExistsError(f'{output_dir} holds other files ({", ".join(sorted(entries)[:3])}'
                        f'{", ..." if len(entries) > 3 else ""}), not an earlier export: --overwrite replaces only '
                        'an export; choose a new or empty --output_dir')


def export_saved_model(model: keras.Model, output_dir: str, model_name: str, num_classes: int,
                       class_names: Optional[Sequence[str]] = None, crop_size: Optional[int] = None,
                       serialized_signature: bool = True, features_signature: bool = True,
                       overwrite: bool = False,
                       extra_info: Optional[Dict] = None) -> str:
  """Writes `model` as a SavedModel with the signatures of the module docstring; returns `output_dir`.

  Written to a temporary folder beside `output_dir` and renamed, so a finished export is complete.

  Args:
    model: single-stream I3D (`i3d_rgb` / `i3d_flow`) or Two-Stream I3D, built with its head, in the
      precision it is to serve in (`restore_stream_models(precision=...)`: fixed in the SavedModel).
    output_dir: SavedModel folder.
    model_name: registry name (decides the serialized-example preprocessing).
    num_classes: logits size.
    class_names: stored in `i3d_export.json` beside the SavedModel files.
    crop_size: center crop of the serialized-example signature (default: the model's Table 1 crop).
    serialized_signature: add `serialized_examples`.
    features_signature: add `features`.
    overwrite: replace an existing `output_dir` that holds an earlier export (or nothing).
    extra_info: more JSON-able entries for `i3d_export.json` (the binary's weights source, fusion, precision).

  Raises:
    FileExistsError: `output_dir` exists and not `overwrite`, or it holds anything but an earlier export
      (`check_replaceable`: --overwrite never deletes a folder of other files).
  """
  output_dir = os.path.abspath(output_dir)
  if os.path.exists(output_dir) and not overwrite:
    raise FileExistsError(f'{output_dir} exists; pass overwrite=True (--overwrite) to replace it.')
  check_replaceable(output_dir)
  if class_names is not None and len(class_names) != num_classes:
    raise ValueError(f'{len(class_names)} class names for {num_classes} classes')
  names = tf.constant(list(class_names) if class_names else [f'class {i}' for i in range(num_classes)])
  top_k = min(TOP_K, num_classes)

  def scored(logits):
    """The serving outputs of [B, K] logits: probabilities and the named top-k classes."""
    probabilities = tf.nn.softmax(logits)
    top = tf.math.top_k(probabilities, k=top_k)
    return {'logits': logits, 'probabilities': probabilities, 'top_k_indices': top.indices,
            'top_k_probabilities': top.values, 'top_k_class_names': tf.gather(names, top.indices)}

  streams = stream_models(model)
  two_stream = len(streams) == 2
  feats = {m: feature_model(s, name=f'{m}_features') for m, s in streams.items()}

  archive = keras.export.ExportArchive()
  archive.track(model)
  for f in feats.values():
    archive.track(f)

  if two_stream:
    specs = [tf.TensorSpec([None, None, None, None, 3], tf.float32, name='rgb'),
             tf.TensorSpec([None, None, None, None, 2], tf.float32, name='flow')]

    def checked(rgb, flow):
      """Rank and channels enforced: the signature alone does not stop a [T, H, W, C] call (oneDNN then
      returns wrong logits or aborts the process)."""
      return (tf.ensure_shape(rgb, [None, None, None, None, 3]), tf.ensure_shape(flow, [None, None, None, None, 2]))

    def serve(rgb, flow):
      rgb, flow = checked(rgb, flow)
      return scored(tf.cast(model({'rgb': rgb, 'flow': flow}, training=False), tf.float32))

    def features(rgb, flow):
      rgb, flow = checked(rgb, flow)
      out = {}
      for m, x in (('rgb', rgb), ('flow', flow)):
        per_time = tf.cast(feats[m](x, training=False), tf.float32)
        out[f'{m}_features_per_time'] = per_time
        out[f'{m}_features'] = tf.reduce_mean(per_time, axis=1)
      return out
  else:
    (modality,) = streams
    specs = [tf.TensorSpec([None, None, None, None, STREAM_CHANNELS[modality]], tf.float32, name='video')]

    def checked(video):
      """Rank and channels enforced: the signature alone does not stop a [T, H, W, C] call (oneDNN then
      returns wrong logits or aborts the process)."""
      return tf.ensure_shape(video, [None, None, None, None, STREAM_CHANNELS[modality]])

    def serve(video):
      return scored(tf.cast(model(checked(video), training=False), tf.float32))

    def features(video):
      video = checked(video)
      per_time = tf.cast(feats[modality](video, training=False), tf.float32)
      return {'features': tf.reduce_mean(per_time, axis=1), 'features_per_time': per_time}

  archive.add_endpoint('serving_default', serve, input_signature=specs)
  signatures = ['serving_default']
  if features_signature:
    archive.add_endpoint('features', features, input_signature=specs)
    signatures.append('features')
  if serialized_signature:
    archive.add_endpoint('serialized_examples', _serialized_fn(model, model_name, crop_size, num_classes),
                         input_signature=[tf.TensorSpec([None], tf.string, name='serialized')])
    signatures.append('serialized_examples')

  with atomic_path(output_dir) as tmp:
    archive.write_out(tmp, verbose=False)
    info = {'model_name': model_name, 'num_classes': int(num_classes), 'signatures': signatures,
            'inputs': [s.name for s in specs], 'class_names': list(class_names) if class_names else None,
            'crop_size': crop_size, 'tensorflow': tf.__version__, 'keras': keras.__version__}
    info.update(extra_info or {})
    with open(os.path.join(tmp, EXPORT_INFO), 'w', encoding='utf-8') as f:
      json.dump(info, f, indent=2)
  return output_dir
