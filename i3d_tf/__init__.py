"""i3d_tf: Two-Stream Inflated 3D ConvNets (Carreira & Zisserman, CVPR 2017) in TensorFlow 2 / Keras 3."""

from i3d_tf import _env  # noqa: F401  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads)

from i3d_tf.inception import I3D, InceptionV1, VALID_ENDPOINTS, VALID_ENDPOINTS_2D
from i3d_tf.inflation import inflate, inflate_kernel, InflatedInitializer
from i3d_tf.input_specs import ClipSpec, InputSpec, get_input_spec
from i3d_tf.layers import Unit, inception_module, StreamFusion
from i3d_tf.models import TwoStreamI3D
from i3d_tf.receptive_field import receptive_field, receptive_field_table
from i3d_tf.registry import build_model, list_models, register_model
from i3d_tf.baselines import C3D, ConvNetLSTM, Fused3D, TwoStream, init_from_inception_v1
from i3d_tf import checkpoints  # noqa: F401  (i3d_tf.checkpoints.load_deepmind, ...)
from i3d_tf.classification import decode_predictions

__version__ = '0.1.0'
