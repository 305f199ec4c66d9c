"""Pictures of a model: the conv1 filters over time (paper Fig. 4), and what a video's predictions do over time.

Fig. 4 shows "all 64 conv1 filters of each Inflated 3D ConvNet after training on Kinetics (the filter
dimensions are 7x7x7, and the 7 time dimensions are shown left-to-right across the figure)".
`conv1_filter_grid` renders the same: one row per filter, its time slices left to right, filters
in `columns` blocks; RGB filters in colour, flow filters as an x slice and a y slice in grey.
"""

from typing import Optional, Sequence

import numpy as np

from data_pipelines.io_utils import save_figure, save_png


def conv1_filter_grid(kernel: np.ndarray, columns: int = 4, zoom: int = 4, gap: int = 2) -> np.ndarray:
  """Renders a [t, kh, kw, cin, cout] kernel as a uint8 RGB image.

  Each filter is scaled symmetrically around grey (0 -> 128) by its own max |w|, so positive and
  negative weights read as in the paper's figure.  `cin` 3: colour; `cin` 2 (flow): the x and y
  kernels side by side in grey.

  Args:
    kernel: [t, kh, kw, cin, cout] conv1 kernel (I3D: [7, 7, 7, 3 or 2, 64]), cin 3 or 2.
    columns: blocks of filters side by side (ceil(cout / columns) rows each).
    zoom: pixels per kernel weight.
    gap: pixels between filters (4 x gap between blocks).

  Raises:
    ValueError: a kernel that is not 5-D with 3 or 2 input channels.
  """
  kernel = np.asarray(kernel, np.float32)
  if kernel.ndim != 5 or kernel.shape[3] not in (2, 3):
    raise ValueError(f'kernel must be [t, kh, kw, 3 or 2, cout]. Received shape {kernel.shape}')
  t, kh, kw, cin, cout = kernel.shape
  scale = np.abs(kernel).reshape(-1, cout).max(axis=0)
  scale[scale == 0] = 1.0
  normalized = 0.5 + 0.5 * kernel / scale  # [t, kh, kw, cin, cout] in [0, 1]
  if cin == 3:
    tiles = [normalized[..., :, f] for f in range(cout)]  # each [t, kh, kw, 3]
  else:  # flow: x then y, grey
    tiles = [np.concatenate([np.repeat(normalized[..., c:c + 1, f], 3, axis=-1) for c in range(2)], axis=2)
             for f in range(cout)]
  rows_per_column = -(-cout // columns)
  tile_w = tiles[0].shape[2] * zoom
  tile_h = kh * zoom
  strip_w = t * (tile_w + 1)
  height = rows_per_column * (tile_h + gap) + gap
  width = columns * (strip_w + 4 * gap) + gap
  canvas = np.ones((height, width, 3), np.float32)
  for f, tile in enumerate(tiles):
    col, row = divmod(f, rows_per_column)
    y0 = gap + row * (tile_h + gap)
    x0 = gap + col * (strip_w + 4 * gap)
    for ti in range(t):
      frame = np.kron(tile[ti], np.ones((zoom, zoom, 1), np.float32))
      x = x0 + ti * (tile_w + 1)
      canvas[y0:y0 + tile_h, x:x + tile_w] = frame
  return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)


def save_conv1_filters(model, path: str, layer_name: Optional[str] = None, **kwargs) -> np.ndarray:
  """Saves the Fig. 4 picture of a model's first conv as a PNG at `path`; returns the uint8 image.

  Args:
    model: a single-stream I3D (or any model with the layer at top level).
    path: the PNG, written atomically.
    layer_name: the conv or `Unit` layer; default 'Conv3d_1a_7x7'.
    **kwargs: `conv1_filter_grid` options (columns, zoom, gap).
  """
  layer = model.get_layer(layer_name or 'Conv3d_1a_7x7')
  kernel = getattr(layer, 'conv', layer).kernel
  image = conv1_filter_grid(np.asarray(kernel), **kwargs)
  save_png(path, image)
  return image


def plot_prediction_timeline(path: str, times: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                             classes: Sequence[int], title: str = '', duration: Optional[float] = None) -> str:
  """PNG of per-time class probabilities: one line per class in `classes`, time in seconds on x.

  Args:
    path: the PNG to write (atomically).
    times: float [T'] seconds (centre of each per-time prediction's receptive field).
    probabilities: float [T', K] per-time softmax (`classification.VideoPrediction.per_time_probabilities`).
    class_names: K names.
    classes: the class indices to draw (e.g. the video's top 5).
    title: the figure title (the video's name).
    duration: the video's length in seconds (x axis limit).

  Returns:
    `path`.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  times = np.asarray(times, np.float64)
  probabilities = np.asarray(probabilities, np.float64)
  if probabilities.ndim != 2 or len(times) != len(probabilities):
    raise ValueError(f'probabilities must be [T, K] with T = len(times). Received: {probabilities.shape}, '
                     f'{len(times)} times')
  fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
  marker = 'o' if len(times) <= 40 else None
  for c in classes:
    ax.plot(times, probabilities[:, c], marker=marker, markersize=3, linewidth=1.5, label=class_names[c])
  ax.set_xlim(0, duration if duration else (times.max() if len(times) else 1.0))
  ax.set_ylim(0, 1.02)
  ax.set_xlabel('time in the video (s)')
  ax.set_ylabel('probability')
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
  fig.tight_layout()
  save_figure(path, fig)
  plt.close(fig)
  return path
