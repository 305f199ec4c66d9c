"""The Inception-v1 / I3D trunk table (Fig. 3): one ordered list of endpoints that both builds read.

Pure Python (no Keras): the checkpoint name maps (`checkpoints.names`), the receptive-field table and the
model builders (`inception.py`) all read it.  Names, kernels, strides and channels are those of the official
deepmind kinetics-i3d `i3d.py` (`VALID_ENDPOINTS`) and slim `inception_v1.py`; I3D inflates every N x N
kernel to N x N x N except the first two max-pools (1x3x3, temporal stride 1, Sec. 2.4).
"""

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Block:
  """One trunk endpoint.  `kind` is 'conv', 'pool' or 'mixed'.

  Spatial kernel/stride are the 2D network's; `t_kernel`/`t_stride` are what inflation gives time
  (None = same as spatial, the default N x N -> N x N x N).
  """
  suffix: str  # '1a_7x7' (prefixed by Conv3d_/Conv2d_ or MaxPool3d_/MaxPool_) or 'Mixed_3b'.
  kind: str
  kernel: int = 1
  stride: int = 1
  filters: int = 0
  t_kernel: Optional[int] = None
  t_stride: Optional[int] = None
  channels: Tuple[int, ...] = ()  # mixed: (b0, b1a, b1b, b2a, b2b, b3)
  branch2_name: str = '0b'

  def name(self, rank: int) -> str:
    """Layer and checkpoint name: rank 3 (I3D) 'Conv3d_1a_7x7', 'MaxPool3d_2a_3x3'; rank 2 (Inception-v1)
    'Conv2d_1a_7x7', 'MaxPool_2a_3x3'; 'Mixed_3b' for both."""
    if self.kind == 'mixed':
      return self.suffix
    if self.kind == 'conv':
      return ('Conv3d_' if rank == 3 else 'Conv2d_') + self.suffix
    return ('MaxPool3d_' if rank == 3 else 'MaxPool_') + self.suffix

  def kernel_size(self, rank: int) -> Tuple[int, ...]:
    """(t, h, w) for rank 3, t = `t_kernel` or the spatial size (N x N -> N x N x N, Sec. 2.4); (h, w) for rank 2."""
    if rank == 2:
      return (self.kernel,) * 2
    return (self.kernel if self.t_kernel is None else self.t_kernel, self.kernel, self.kernel)

  def strides(self, rank: int) -> Tuple[int, ...]:
    """(t, h, w) for rank 3, t = `t_stride` or the spatial stride; (h, w) for rank 2."""
    if rank == 2:
      return (self.stride,) * 2
    return (self.stride if self.t_stride is None else self.t_stride, self.stride, self.stride)


# The trunk of Fig. 3, in order.  Channel table: official i3d.py / slim inception_v1.py.
TRUNK = (
    Block('1a_7x7', 'conv', kernel=7, stride=2, filters=64),
    Block('2a_3x3', 'pool', kernel=3, stride=2, t_kernel=1, t_stride=1),  # no temporal pooling
    Block('2b_1x1', 'conv', kernel=1, filters=64),
    Block('2c_3x3', 'conv', kernel=3, filters=192),
    Block('3a_3x3', 'pool', kernel=3, stride=2, t_kernel=1, t_stride=1),  # no temporal pooling
    Block('Mixed_3b', 'mixed', channels=(64, 96, 128, 16, 32, 32)),
    Block('Mixed_3c', 'mixed', channels=(128, 128, 192, 32, 96, 64)),
    Block('4a_3x3', 'pool', kernel=3, stride=2),
    Block('Mixed_4b', 'mixed', channels=(192, 96, 208, 16, 48, 64)),
    Block('Mixed_4c', 'mixed', channels=(160, 112, 224, 24, 64, 64)),
    Block('Mixed_4d', 'mixed', channels=(128, 128, 256, 24, 64, 64)),
    Block('Mixed_4e', 'mixed', channels=(112, 144, 288, 32, 64, 64)),
    Block('Mixed_4f', 'mixed', channels=(256, 160, 320, 32, 128, 128)),
    Block('5a_2x2', 'pool', kernel=2, stride=2),
    # Official quirk: Mixed_5b's Branch_2 3x3 unit is named `..._0a_3x3` (slim has the same name).
    Block('Mixed_5b', 'mixed', channels=(256, 160, 320, 32, 128, 128), branch2_name='0a'),
    Block('Mixed_5c', 'mixed', channels=(384, 192, 384, 48, 128, 128)),
)
# Head: average pool (2x7x7 in I3D, 7x7 in 2D), dropout, 1x1(x1) logits conv with bias.
HEAD_POOL = {3: (2, 7, 7), 2: (7, 7)}
LOGITS_UNIT = {3: 'Conv3d_0c_1x1', 2: 'Conv2d_0c_1x1'}
FEATURE_DIM = 1024


def endpoints(rank: int = 3) -> Tuple[str, ...]:
  """The ordered endpoint names: VALID_ENDPOINTS of the official i3d.py for rank 3."""
  return tuple(b.name(rank) for b in TRUNK) + ('Logits', 'Predictions')


VALID_ENDPOINTS = endpoints(3)
VALID_ENDPOINTS_2D = endpoints(2)
