"""Theoretical receptive fields of every endpoint (Fig. 3 gives a few, as "time, x, y").

Walks the Keras graph in topological order and propagates, per axis, the input interval
[start, end] seen by the first output position and the stride ("jump") between output positions:
a kernel k with stride s maps (start, end, jump) to (start - pad * jump, end + (k - 1 - pad) * jump,
jump * s); concatenated branches take the union.  With `input_size` the TF-SAME padding of each layer
is the one that input size gives, so the intervals are exact and a test can compare them with the
voxels a perturbation actually reaches.
"""

import dataclasses
import math
from typing import Dict, Optional, Sequence, Tuple

import keras

from i3d_tf.layers import HeadAveragePooling, Unit


@dataclasses.dataclass(frozen=True)
class Field:
  """Per-axis (time, y, x for 3D; y, x for 2D) receptive field of an endpoint's first output position."""
  size: Tuple[int, ...]
  jump: Tuple[int, ...]  # input pixels/frames between neighbouring output positions (total stride)
  start: Tuple[int, ...]  # first input index seen by output 0 (negative: in the padding)
  output_size: Optional[Tuple[int, ...]] = None  # with input_size: the endpoint's map size

  def covers(self, output_index: Sequence[int]) -> Tuple[Tuple[int, int], ...]:
    """Input interval [lo, hi] per axis seen by the output at `output_index`."""
    return tuple((s + o * j, s + o * j + n - 1)
                 for s, o, j, n in zip(self.start, output_index, self.jump, self.size))


def _kernel_and_stride(layer, rank: int):
  """(kernel, stride, same_padding) per axis, or None for layers that keep positions (BN, ReLU...)."""
  if isinstance(layer, Unit):
    return layer.kernel_size, layer.strides, True
  if isinstance(layer, (keras.layers.MaxPooling3D, keras.layers.MaxPooling2D, keras.layers.AveragePooling3D,
                        keras.layers.AveragePooling2D)):
    return tuple(layer.pool_size), tuple(layer.strides), layer.padding == 'same'
  if isinstance(layer, HeadAveragePooling):
    return layer.pool_size, (1,) * rank, False
  return None


def _propagate(field, layer, rank):
  ks = _kernel_and_stride(layer, rank)
  if ks is None:
    return field
  kernel, stride, same = ks
  starts, ends, jumps, sizes = [], [], [], []
  for axis in range(rank):
    start, end, jump, n_in = field[0][axis], field[1][axis], field[2][axis], field[3][axis]
    k, s = kernel[axis], stride[axis]
    if n_in is not None:
      k = min(k, n_in) if isinstance(layer, HeadAveragePooling) else k  # capped head window
      n_out = math.ceil(n_in / s) if same else n_in - k + 1
      pad = max((n_out - 1) * s + k - n_in, 0) // 2 if same else 0
    else:
      n_out, pad = None, (k - 1) // 2 if same else 0
    starts.append(start - pad * jump)
    ends.append(end + (k - 1 - pad) * jump)
    jumps.append(jump * s)
    sizes.append(n_out)
  return tuple(starts), tuple(ends), tuple(jumps), tuple(sizes)


def receptive_field(model: keras.Model, endpoint: Optional[str] = None,
                    input_size: Optional[Sequence[int]] = None):
  """Receptive field of one endpoint (a layer name), or a dict {layer name: Field} of all layers.

  Args:
    model: a functional model (I3D, InceptionV1, or any graph of Units and pools).
    endpoint: layer name; None returns every layer.
    input_size: the (T, H, W) or (H, W) input size for exact SAME-padding offsets; without it the
      sizes and jumps are exact and the starts assume centred padding.
  """
  rank = len(model.inputs[0].shape) - 2
  input_size = tuple(input_size) if input_size is not None else (None,) * rank
  fields: Dict[str, tuple] = {}
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer):
      fields[layer.name] = ((0,) * rank, (0,) * rank, (1,) * rank, input_size)
      continue
    parents = [t._keras_history.operation.name for t in keras.tree.flatten(layer._inbound_nodes[0].input_tensors)]
    ins = [fields[p] for p in parents if p in fields]
    if not ins:
      continue
    if len(ins) == 1:
      merged = ins[0]
    else:  # Concatenate: union of the branches' intervals (same jump and size by construction).
      merged = (tuple(min(f[0][a] for f in ins) for a in range(rank)),
                tuple(max(f[1][a] for f in ins) for a in range(rank)), ins[0][2], ins[0][3])
    if len(layer.output.shape) != rank + 2:  # squeezed/averaged: positions no longer exist
      continue
    fields[layer.name] = _propagate(merged, layer, rank)
  result = {name: Field(tuple(e - s + 1 for s, e in zip(f[0], f[1])), f[2], f[0],
                        f[3] if input_size[0] is not None else None)
            for name, f in fields.items()}
  if endpoint is None:
    return result
  if endpoint not in result:
    raise ValueError(f'No spatial endpoint {endpoint!r} in {model.name}. Received: endpoint={endpoint}')
  return result[endpoint]


def receptive_field_table(model: keras.Model, endpoints: Optional[Sequence[str]] = None) -> str:
  """A Markdown table of the receptive field and total stride of each endpoint (README).

  Args:
    model: a single-stream Keras I3D (3D) or Inception-v1 (2D).
    endpoints: rows in this order; default every trunk endpoint, then 'Logits.AvgPool'. Names the model
      lacks are left out.
  """
  from i3d_tf.endpoints import endpoints as all_endpoints
  rank = len(model.inputs[0].shape) - 2
  names = endpoints or [e for e in all_endpoints(rank)[:-2]] + ['Logits.AvgPool']
  fields = receptive_field(model)
  axes = 'time, y, x' if rank == 3 else 'y, x'
  lines = [f'| endpoint | receptive field ({axes}) | stride ({axes}) |', '|---|---|---|']
  for name in names:
    if name in fields:
      f = fields[name]
      lines.append(f'| {name} | {", ".join(map(str, f.size))} | {", ".join(map(str, f.jump))} |')
  return '\n'.join(lines)
