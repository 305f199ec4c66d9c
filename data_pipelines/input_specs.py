"""Table 1 input interfaces of the five architectures: one table, read by the model registry and the input pipeline.

Paper, Table 1 and Sec. 2.1-2.5. All videos are resampled to 25 fps, the smaller side resized to
`resize_short_side`, then cropped to `crop_size` (random crop + consistent left-right flip at training,
center crop at test).

Conventions (shared with `data_pipelines`):
  * A clip is `num_frames` time steps, consecutive time steps `stride` frames apart.
  * RGB time step t is frame `start + t * stride`; flow time step t is the `flow_stack` consecutive flow
    fields starting at flow index `start + t * stride` stacked on channels as (x0, y0, x1, y1, ...), so a
    stream with `flow_stack=k` has `2 * k` channels.  `flow_stack=1` is the I3D flow stream (2 channels).
  * `num_frames=None` means the whole video (I3D's convolutional testing, Sec. 2.4).
  * `num_clips > 1` means that many clips evenly spaced over the video (views), folded into a leading view
    axis at test time; predictions are averaged over views (Sec. 2.3, 2.5).
"""

import dataclasses
from typing import Optional, Tuple

from data_pipelines import constants

RGB = 'rgb'
FLOW = 'flow'


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """How one training or test clip is sampled from a video."""
  num_frames: Optional[int]  # time steps per clip; None = every frame of the video.
  stride: int = 1  # frames between consecutive time steps (ConvNet+LSTM: 1 in 5).
  num_clips: int = 1  # evenly spaced clips (views) per video.
  flow_stack: int = 1  # consecutive flow fields stacked on channels per flow time step.

  def validate(self):
    """Raises ValueError for num_frames < 1, stride, num_clips or flow_stack < 1, or several whole-video views."""
    if self.num_frames is not None and self.num_frames < 1:
      raise ValueError(f'num_frames must be >= 1 or None. Received: num_frames={self.num_frames}')
    if self.stride < 1 or self.num_clips < 1 or self.flow_stack < 1:
      raise ValueError(f'stride, num_clips and flow_stack must be >= 1. Received: {self}')
    if self.num_frames is None and self.num_clips != 1:
      raise ValueError(f'A whole-video clip cannot have several views. Received: {self}')

  @property
  def footprint(self) -> Optional[int]:
    """Frames spanned by one clip (Table 1 'temporal footprint' x 25 fps), flow stacks included."""
    if self.num_frames is None:
      return None
    return (self.num_frames - 1) * self.stride + self.flow_stack


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """The input interface of one registered model (Table 1)."""
  modalities: Tuple[str, ...]
  train: ClipSpec
  test: ClipSpec
  crop_size: int = constants.CROP_SIZE
  resize_short_side: int = constants.RESIZE_SHORT_SIDE
  paper_params: Optional[str] = None  # Table 1 '#Params', for the model table.

  def validate(self):
    """Raises ValueError for a modality other than 'rgb' / 'flow', an invalid clip spec, or a crop larger than
    the resized short side."""
    for m in self.modalities:
      if m not in (RGB, FLOW):
        raise ValueError(f'Unknown modality {m!r}; expected "rgb" or "flow". Received: {self.modalities}')
    self.train.validate()
    self.test.validate()
    if self.crop_size > self.resize_short_side:
      raise ValueError(f'crop_size {self.crop_size} exceeds resize_short_side {self.resize_short_side}')

  def channels(self, modality: str, training: bool = True) -> int:
    """Input channels of `modality`: 3 for 'rgb', else flow: 2 * flow_stack of the train clip (`training`) or
    the test clip."""
    clip = self.train if training else self.test
    return 3 if modality == RGB else 2 * clip.flow_stack

  def input_shape(self, modality: str, training: bool = True):
    """Per-example shape (T, H, W, C) of one view of `modality` for the train clip (`training`) or the test
  clip; T is None for whole-video testing."""
    clip = self.train if training else self.test
    return (clip.num_frames, self.crop_size, self.crop_size, self.channels(modality, training))


_I3D_CLIPS = dict(train=ClipSpec(64), test=ClipSpec(None))

INPUT_SPECS = {
    # Sec. 2.4: 64-frame snippets at train, the whole video at test (Table 1: 250 frames = 10 s).
    'i3d_rgb': InputSpec((RGB,), **_I3D_CLIPS, paper_params='12M'),
    'i3d_flow': InputSpec((FLOW,), **_I3D_CLIPS, paper_params='12M'),
    'two_stream_i3d': InputSpec((RGB, FLOW), **_I3D_CLIPS, paper_params='25M'),
    # Sec. 2.1: 1 in 5 frames of a 25 fps stream; 25 frames (5 s) train, 50 frames (10 s) test.
    'convnet_lstm': InputSpec((RGB,), train=ClipSpec(25, stride=5), test=ClipSpec(50, stride=5),
                              paper_params='9M'),
    # Sec. 2.2: 16-frame 112x112 clips; Table 1 tests on 240 frames = 15 non-overlapping clips.  The paper
    # does not give C3D's resize; we keep the C3D habit of cropping 112 from a 128 short side.
    'c3d': InputSpec((RGB,), train=ClipSpec(16), test=ClipSpec(16, num_clips=15), crop_size=112,
                     resize_short_side=128, paper_params='79M'),
    # Sec. 2.3: 1 RGB frame + 10 stacked flow fields; 25 evenly spaced snapshots at test.
    'two_stream': InputSpec((RGB, FLOW), train=ClipSpec(1, flow_stack=constants.FLOW_STACK),
                            test=ClipSpec(1, num_clips=25, flow_stack=constants.FLOW_STACK), paper_params='12M'),
    # Sec. 2.3: 5 RGB frames 10 apart and their flow snippets (5 x 10 flow); test 5 such clips = 25 rgb,
    # 250 flow.
    'fused_3d': InputSpec((RGB, FLOW), train=ClipSpec(5, stride=10, flow_stack=10),
                          test=ClipSpec(5, stride=10, num_clips=5, flow_stack=10), paper_params='39M'),
}

for _spec in INPUT_SPECS.values():
  _spec.validate()


def get_input_spec(model_name: str) -> InputSpec:
  """Returns the Table 1 input interface of `model_name` (e.g. 'i3d_rgb', 'two_stream_i3d', 'c3d').

  Raises:
    ValueError: an unknown model name.
  """
  try:
    return INPUT_SPECS[model_name]
  except KeyError:
    raise ValueError(f'No input spec for model {model_name!r}; known: {sorted(INPUT_SPECS)}') from None
