"""The paper's test-time protocol constants (Sec. 2.5), one definition for every consumer.

"Videos are resampled at 25 frames per second ... the smaller video side is resized to 256 pixels", and
the networks see 224 x 224 crops (center crops at test).  Decoding (`data_pipelines.video`), the input
pipelines, classification, feature extraction and export read them from here.
"""

FPS = 25.0  # frames per second after resampling
RESIZE_SHORT_SIDE = 256  # pixels, the smaller side after resizing
CROP_SIZE = 224  # pixels, the square crop the networks see
