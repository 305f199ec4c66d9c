"""Boring-video inflation (Sec. 2.4) and receptive fields (Fig. 3)."""

import keras
import numpy as np
import pytest

from i3d_tf import I3D, InceptionV1, inflate, inflate_kernel, InflatedInitializer, receptive_field
from i3d_tf.inflation import adapt_input_channels, units


def randomize(model, seed):
  """Non-trivial weights and BN statistics (a 'trained' 2D network)."""
  rs = np.random.RandomState(seed)
  for unit in units(model).values():
    k = unit.conv.kernel
    fan_in = int(np.prod(k.shape[:-1]))
    k.assign(rs.normal(0, np.sqrt(2.0 / fan_in), k.shape).astype(np.float32))
    if unit.use_bias:
      unit.conv.bias.assign(rs.normal(0, 0.1, unit.conv.bias.shape).astype(np.float32))
    if unit.bn is not None:
      c = unit.bn.beta.shape
      unit.bn.beta.assign(rs.normal(0, 0.2, c).astype(np.float32))
      unit.bn.moving_mean.assign(rs.normal(0, 0.2, c).astype(np.float32))
      unit.bn.moving_variance.assign(rs.uniform(0.5, 2.0, c).astype(np.float32))


def test_inflate_kernel_repeats_and_rescales():
  k2 = np.random.RandomState(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
  k3 = inflate_kernel(k2, 7)
  assert k3.shape == (7, 3, 3, 4, 5)
  for t in range(7):
    np.testing.assert_allclose(k3[t], k2 / 7, rtol=1e-7)
  np.testing.assert_allclose(k3.sum(axis=0), k2, rtol=1e-6)  # conv response on a boring video
  with pytest.raises(ValueError, match='kh, kw, cin, cout'):
    inflate_kernel(k3, 2)


def test_inflated_initializer_matches_kernel_function():
  k2 = np.random.RandomState(1).normal(size=(3, 3, 3, 8)).astype(np.float32)
  conv = keras.layers.Conv3D(8, (5, 3, 3), kernel_initializer=InflatedInitializer(k2), use_bias=False)
  conv.build((None, 5, 9, 9, 3))
  np.testing.assert_allclose(conv.kernel.numpy(), inflate_kernel(k2, 5), rtol=1e-7)
  flow_conv = keras.layers.Conv3D(8, (5, 3, 3), kernel_initializer=InflatedInitializer(k2), use_bias=False)
  flow_conv.build((None, 5, 9, 9, 2))
  expected = inflate_kernel(np.repeat(k2.mean(axis=2, keepdims=True), 2, axis=2), 5)
  np.testing.assert_allclose(flow_conv.kernel.numpy(), expected, rtol=1e-6)


def test_channel_rules():
  k = np.random.RandomState(2).normal(size=(7, 7, 3, 4)).astype(np.float32)
  mean = adapt_input_channels(k, 2, 'mean')
  assert mean.shape == (7, 7, 2, 4)
  for c in range(2):
    np.testing.assert_allclose(mean[:, :, c], k.mean(axis=2), rtol=1e-6)
  tile = adapt_input_channels(k, 20, 'tile')
  assert tile.shape == (7, 7, 20, 4)
  np.testing.assert_allclose(tile.sum(axis=2), k.sum(axis=2), rtol=1e-5)  # constant input response kept
  np.testing.assert_allclose(tile[:, :, 4], k[:, :, 1] / 7, rtol=1e-6)  # channel 1 has 7 of 20 copies
  with pytest.raises(ValueError, match='rule'):
    adapt_input_channels(k, 2, 'random')


def test_boring_video_fixed_point():
  """Every 3D endpoint on a repeated image equals the 2D endpoint on the image (inference mode), at the
  time steps whose temporal receptive field lies inside the clip."""
  model_2d = InceptionV1(num_classes=11)
  randomize(model_2d, seed=3)
  model_3d = I3D('rgb', num_classes=11)
  report = inflate(model_2d, model_3d)
  assert len(report['inflated']) == 58 and report['skipped'] == []  # 57 units + logits
  endpoints = ['Conv3d_2c_3x3', 'Mixed_3c', 'Mixed_4f', 'Mixed_5c']
  probe_3d = keras.Model(model_3d.input, [model_3d.get_layer(e).output for e in endpoints])
  probe_2d = keras.Model(model_2d.input, [model_2d.get_layer(e.replace('Conv3d', 'Conv2d')).output
                                          for e in endpoints])
  image = np.random.RandomState(4).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
  frames = 120
  video = np.repeat(image[:, None], frames, axis=1)
  outs_3d = probe_3d(video, training=False)
  outs_2d = probe_2d(image, training=False)
  for name, out3, out2 in zip(endpoints, outs_3d, outs_2d):
    field = receptive_field(model_3d, name, input_size=(frames, 64, 64))
    inside = [t for t in range(out3.shape[1])
              if field.covers((t, 0, 0))[0][0] >= 0 and field.covers((t, 0, 0))[0][1] <= frames - 1]
    assert len(inside) >= 2, name
    scale = float(np.abs(out2.numpy()).max())
    assert scale > 1e-2, name  # non-trivial activations
    err = np.abs(out3.numpy()[:, inside] - out2.numpy()[:, None]).max()
    assert err <= 1e-4 * scale, f'{name}: max abs error {err} vs scale {scale}'
    # At the borders (zero padding in time) the fixed point does not hold: the check can fail.
    if name == 'Mixed_5c':
      assert np.abs(out3.numpy()[:, 0] - out2.numpy()).max() > 1e-3 * scale
  logits_3d = model_3d(video, training=False).numpy()
  logits_2d = model_2d(image, training=False).numpy()
  assert np.abs(logits_3d - logits_2d).max() < 0.05 * np.abs(logits_2d).max()  # borders included


def test_inflate_flow_stream_and_new_classes():
  model_2d = InceptionV1(num_classes=1000)
  randomize(model_2d, seed=5)
  flow = I3D('flow', num_classes=51)
  report = inflate(model_2d, flow)
  assert report['skipped'] == ['Logits.Conv3d_0c_1x1']  # class counts differ: fresh classifier kept
  k2 = model_2d.get_layer('Conv2d_1a_7x7').conv.kernel.numpy()
  k3 = flow.get_layer('Conv3d_1a_7x7').conv.kernel.numpy()
  assert k3.shape == (7, 7, 7, 2, 64)
  np.testing.assert_allclose(k3[3, :, :, 1], k2.mean(axis=2) / 7, rtol=1e-6)
  np.testing.assert_allclose(flow.get_layer('Mixed_4d.Branch_1.Conv3d_0b_3x3').bn.moving_variance.numpy(),
                             model_2d.get_layer('Mixed_4d.Branch_1.Conv2d_0b_3x3').bn.moving_variance.numpy())
  with pytest.raises(ValueError, match='does not inflate'):
    inflate(model_2d, flow, include_logits=True)


def test_inflate_refuses_mismatch_without_writing():
  model_2d = InceptionV1(num_classes=10, final_endpoint='Mixed_4b')
  model_3d = I3D('rgb', num_classes=10)
  before = model_3d.get_layer('Conv3d_1a_7x7').conv.kernel.numpy().copy()
  with pytest.raises(ValueError, match='no matching 2D unit'):
    inflate(model_2d, model_3d)
  np.testing.assert_array_equal(model_3d.get_layer('Conv3d_1a_7x7').conv.kernel.numpy(), before)
  with pytest.raises(ValueError, match='no 3D twin'):
    inflate(InceptionV1(num_classes=10), I3D('rgb', num_classes=10, final_endpoint='Mixed_5c'))


EXPECTED_FIELDS = {  # (time, y, x) receptive field and stride, computed by hand from Fig. 3's layers.
    'Conv3d_1a_7x7': ((7, 7, 7), (2, 2, 2)),
    'MaxPool3d_3a_3x3': ((11, 27, 27), (2, 8, 8)),
    'Mixed_3c': ((19, 59, 59), (2, 8, 8)),
    'MaxPool3d_4a_3x3': ((23, 75, 75), (4, 16, 16)),
    'Mixed_4f': ((63, 235, 235), (4, 16, 16)),
    'Mixed_5c': ((99, 379, 379), (8, 32, 32)),
    'Logits.AvgPool': ((107, 571, 571), (8, 32, 32)),
}


def test_receptive_field_values():
  fields = receptive_field(I3D('rgb'))
  for name, (size, jump) in EXPECTED_FIELDS.items():
    assert (fields[name].size, fields[name].jump) == (size, jump), name
  fields_2d = receptive_field(InceptionV1())
  assert (fields_2d['Mixed_5c'].size, fields_2d['Mixed_5c'].jump) == ((379, 379), (32, 32))


@pytest.mark.parametrize('endpoint,size,voxel', [
    ('Conv3d_2c_3x3', (20, 40, 44), (9, 17, 30)),
    ('Mixed_3c', (30, 72, 72), (14, 35, 20)),
    ('Mixed_4b', (40, 112, 112), (21, 60, 47)),
])
def test_receptive_field_matches_perturbation(endpoint, size, voxel):
  """A positive network (|kernels|, BN identity) on a zero video: an output becomes positive exactly when
  the perturbed voxel lies inside its receptive field."""
  model = I3D('rgb', final_endpoint=endpoint)
  rs = np.random.RandomState(6)
  for unit in units(model).values():
    unit.conv.kernel.assign(np.abs(rs.normal(size=unit.conv.kernel.shape)).astype(np.float32) + 0.1)
    unit.bn.moving_variance.assign(np.ones(unit.bn.moving_variance.shape, np.float32) - 1e-3)
  video = np.zeros((1,) + size + (3,), np.float32)
  video[(0,) + voxel] = 1.0
  changed = np.argwhere(model(video, training=False).numpy()[0].max(axis=-1) > 0)
  field = receptive_field(model, endpoint, input_size=size)
  expected = []
  for axis in range(3):
    expected.append([o for o in range(field.output_size[axis])
                     if field.covers((o,) * 3)[axis][0] <= voxel[axis] <= field.covers((o,) * 3)[axis][1]])
  for axis in range(3):
    assert sorted(set(changed[:, axis])) == expected[axis], (endpoint, axis)
  assert len(changed) == np.prod([len(e) for e in expected])  # a full box, nothing outside
