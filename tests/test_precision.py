"""Inference precision (i3d_tf/precision.py): the hardware rule of 'auto', the policy scope, the model's dtype."""

import keras
import numpy as np
import pytest

from i3d_tf import precision as P
from i3d_tf import registry


def test_cpu_flags_decide_auto(tmp_path, monkeypatch):
  amx = tmp_path / 'amx'
  amx.write_text('processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n')
  plain = tmp_path / 'plain'
  plain.write_text('processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n')
  assert P.cpu_bfloat16_flags(str(amx)) == ('amx_bf16', 'avx512_bf16')
  assert P.cpu_bfloat16_flags(str(plain)) == ()
  assert P.cpu_bfloat16_flags(str(tmp_path / 'missing')) == ()  # not Linux: unknown, float32
  for cpu, gpu, expected in (((), False, 'float32'), (('amx_bf16',), False, 'bfloat16'), ((), True, 'bfloat16')):
    monkeypatch.setattr(P, 'cpu_bfloat16_flags', lambda cpu=cpu: cpu)
    monkeypatch.setattr(P, 'gpu_bfloat16', lambda gpu=gpu: gpu)
    P._auto.cache_clear()  # pylint: disable=protected-access
    assert P.resolve_precision('auto') == expected and P.policy_name('auto') == {
        'float32': 'float32', 'bfloat16': 'mixed_bfloat16'}[expected]
    assert P.resolve_precision('float32') == 'float32' and P.resolve_precision('bfloat16') == 'bfloat16'
  P._auto.cache_clear()  # pylint: disable=protected-access


def test_unknown_precision_is_refused():
  with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'float32', 'bfloat16'\). Received: "
                                       r"precision='fp16'"):
    P.resolve_precision('fp16')
  with pytest.raises(ValueError, match='precision must be one of'):
    with P.precision_scope('float16'):
      pass


def test_scope_builds_bfloat16_compute_with_float32_variables_and_logits_and_restores_the_policy():
  before = keras.mixed_precision.global_policy().name
  with P.precision_scope('bfloat16') as resolved:
    assert resolved == 'bfloat16'
    model = registry.build_model('i3d_rgb', 5, input_shape=(16, 64, 64, 3))
  assert keras.mixed_precision.global_policy().name == before == 'float32'
  assert P.model_precision(model) == 'bfloat16'
  conv = model.get_layer('Conv3d_1a_7x7')
  assert conv.compute_dtype == 'bfloat16' and all(w.dtype == 'float32' for w in conv.weights)
  x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 64, 64, 3)).astype(np.float32)
  logits = model(x, training=False)
  assert logits.dtype == 'float32' and logits.shape == (1, 5)
  with P.precision_scope('float32'):
    reference = registry.build_model('i3d_rgb', 5, input_shape=(16, 64, 64, 3))
  assert P.model_precision(reference) == 'float32'
  reference.set_weights(model.get_weights())  # the same float32 variables: bfloat16 is only the compute
  expected = reference(x, training=False).numpy()
  error = np.abs(logits.numpy() - expected).max() / np.abs(expected).max()
  assert 0 < error < 0.05


def test_one_frame_clips_are_refused_in_bfloat16_not_computed(tmp_path):
  """oneDNN's bfloat16 Conv3D returns garbage for a 1-frame clip (values up to 1e36, or another input's features,
  different at every call; a newcomer trial found it through extract_features at exit status 0): features and
  classification refuse such clips in bfloat16, with the fix, and compute them in float32."""
  from data_pipelines.testing import write_video
  from i3d_tf import classification
  from i3d_tf import features as F
  with pytest.raises(ValueError, match='1 frame.*--precision=float32'):
    P.check_clip_frames(1, 'bfloat16')
  P.check_clip_frames(2, 'bfloat16')
  P.check_clip_frames(1, 'float32')
  videos = tmp_path / 'videos'
  videos.mkdir()
  two, three = (write_video(str(videos / f'{n}.avi'), n_frames) for n, n_frames in (('a2', 2), ('b3', 3)))
  options = F.ExtractionOptions(flow_backend='tvl1', flow_params=(('nscales', 1), ('warps', 1)), stack_size=4,
                                step_size=4, crop_size=32, resize_short_side=48, flow_margin=-1)
  for precision, failed in (('bfloat16', [two]), ('float32', [])):
    extractor = F.load_extractor({'rgb': None, 'flow': None}, allow_random_weights=True, precision=precision)
    summary = F.extract_features([two, three], str(videos), str(tmp_path / precision), extractor, options,
                                 progress=False)
    assert list(summary['failed']) == failed and summary['done'] == 2 - len(failed), summary
    if failed:
      assert 'bfloat16' in summary['failed'][two] and '--precision=float32' in summary['failed'][two]
  one = write_video(str(tmp_path / 'one.avi'), 1)
  ckpt = str(tmp_path / 'rgb.weights.h5')
  registry.build_model('i3d_rgb', 3).save_weights(ckpt)
  classifier = classification.build_classifier(checkpoint=ckpt, weights=None, num_classes=3, precision='bfloat16')
  with pytest.raises(ValueError, match='bfloat16'):
    classifier.classify(one)
