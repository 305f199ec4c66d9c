"""Fig. 4 picture of the conv1 filters over time."""

import os

import numpy as np
import pytest
from PIL import Image

from i3d_tf import I3D
from i3d_tf.visualize import conv1_filter_grid, save_conv1_filters


def test_grid_layout_and_values():
  kernel = np.zeros((7, 7, 7, 3, 64), np.float32)
  kernel[2, 3, 3, 0, 5] = 1.0  # filter 5, time slice 2, centre pixel, red: the filter's max
  kernel[2, 3, 3, 1, 5] = -1.0  # green: the filter's min
  image = conv1_filter_grid(kernel, columns=4, zoom=4, gap=2)
  assert image.shape == (16 * 30 + 2, 4 * (7 * 29 + 8) + 2, 3)
  y = 2 + 5 * 30 + 3 * 4  # filter 5: column 0, row 5; pixel row 3 at zoom 4
  x = 2 + 2 * 29 + 3 * 4  # time slice 2
  np.testing.assert_array_equal(image[y, x], [255, 0, 128])  # +max -> 255, -max -> 0, zero -> 128
  np.testing.assert_array_equal(image[2, 2], [128, 128, 128])  # zero weights are grey
  np.testing.assert_array_equal(image[0, 0], [255, 255, 255])  # background


def test_flow_filters_and_saved_png(tmp_path):
  model = I3D('flow', num_classes=3)
  path = os.path.join(tmp_path, 'conv1_flow.png')
  image = save_conv1_filters(model, path)
  assert image.shape == (16 * 30 + 2, 4 * (7 * (14 * 4 + 1) + 8) + 2, 3)  # x and y side by side
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
  assert [f for f in os.listdir(tmp_path)] == ['conv1_flow.png']  # no temporary file left
  with pytest.raises(ValueError, match='kernel must be'):
    conv1_filter_grid(np.zeros((7, 7, 3, 64)))
