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
