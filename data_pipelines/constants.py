"""The paper's data constants (Sec. 2.3-2.5), one definition for every consumer.

"Videos are resampled at 25 frames per second ... the smaller video side is resized to 256 pixels", and
the networks see 224 x 224 crops (center crops at test).  Flow: TV-L1 "truncated to the range [-20, 20]"
and stored in 256 levels (the official release); the 2D two-stream baseline stacks 10 flow frames (Sec. 2.3).
Decoding (`data_pipelines.video`), conversion, the Table 1 specs, the input pipelines, classification,
feature extraction, export and the binaries' flag defaults read them from here.
"""

FPS = 25.0  # frames per second after resampling
RESIZE_SHORT_SIDE = 256  # pixels, the smaller side after resizing
CROP_SIZE = 224  # pixels, the square crop the networks see
FLOW_BOUND = 20.0  # pixels: flow is truncated to [-FLOW_BOUND, FLOW_BOUND] before quantization
FLOW_LEVELS = 256  # uint8 levels of stored flow (128 ~ 0 px)
FLOW_STACK = 10  # flow frames stacked on channels by the 2D two-stream baseline (Sec. 2.3, Table 1)
# Test-time flow (classify, extract_features): TV-L1 on the center crop plus FLOW_MARGIN pixels each side (clipped
# to the frame), edge-padded to a multiple of FLOW_WINDOW_MULTIPLE, not on the whole frame (issue 15, lever 3;
# measured in docs/flow.md: <= 0.05 px mean change inside the crop on the shared clips, both backends).  At the
# test protocol's 256 short side every frame at least 352 wide gives one 256 x 352 window: one compiled TV-L1.
# The records (training, evaluate) keep whole-frame flow: training crops at random.
FLOW_MARGIN = 64  # pixels each side of the crop; < 0: the whole frame, as unpadded records
FLOW_WINDOW_MULTIPLE = 32  # the window is edge-padded (centred) to a multiple of this
# The records' whole-frame flow with the TensorFlow backends (prepare_data --flow=tvl1_tf|tvl1_tf_fast): frames
# edge-padded (centred) to a multiple of FLOW_PAD_MULTIPLE, the flow cropped back, so the frame sizes of a dataset
# (Kinetics at a 256 short side: 340, 341, 454, 455, 456 wide) fall into a few shapes that each compile once
# (issue 15, lever 2; docs/flow.md gives the change to unpadded flow).  OpenCV's backend does not compile: 1.
FLOW_PAD_MULTIPLE = 32
MAX_FLOW_PAD_MULTIPLE = 128  # larger only adds pixels: 256 x 341 at 128 is already 256 x 384
