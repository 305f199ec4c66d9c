"""Atomic output files: every file a job writes appears complete or not at all.

One helper for the whole project (data shards, manifests, flow files, pictures, configs, benchmark
results, exports): write to a temporary name in the destination folder, then rename.  Paths with a
scheme (`gs://`, `ram://`, ...) go through `tf.io.gfile`.
"""

import contextlib
import glob
import json
import os
import shutil
import uuid

import numpy as np


def _is_remote(path: str) -> bool:
  return '://' in path


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


TMP_PREFIX = '.tmp-'


def remove_stale_temporaries(path: str) -> int:
  """Removes what killed earlier writers of `path` left behind (`.tmp-<id>-<name>`); returns the count.

  One writer per destination is assumed (as every job here does): a resumed job replaces its strays.
  """
  folder, name = os.path.split(os.fspath(path))
  pattern = os.path.join(folder, f'{TMP_PREFIX}*-{glob.escape(name)}')
  if _is_remote(path):
    gfile = _gfile()
    stale = gfile.glob(pattern)
    for p in stale:
      (gfile.rmtree if gfile.isdir(p) else gfile.remove)(p)
    return len(stale)
  stale = glob.glob(pattern)
  for p in stale:
    shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)
  return len(stale)


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path beside `path` (same extension, for writers that look at it); on success
  it is renamed to `path` (replacing it), on any exception it is removed.  Works for directories too.
  The temporary name keeps the whole file name, so writers that check suffixes (`.weights.h5`) accept it."""
  path = os.fspath(path)
  folder, name = os.path.split(path)
  tmp = os.path.join(folder, f'{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{name}')  # full name: '.weights.h5' survives
  remove_stale_temporaries(path)
  if _is_remote(path):
    gfile = _gfile()
    if folder:
      gfile.makedirs(folder)
    try:
      yield tmp
      gfile.rename(tmp, path, overwrite=True)
    except BaseException:
      if gfile.exists(tmp):
        (gfile.rmtree if gfile.isdir(tmp) else gfile.remove)(tmp)
      raise
    return
  if folder:
    os.makedirs(folder, exist_ok=True)
  try:
    yield tmp
    if os.path.isfile(tmp):
      os.chmod(tmp, 0o644)
    if os.path.isdir(path) and os.path.isdir(tmp):
      shutil.rmtree(path)
    os.replace(tmp, path)
  except BaseException:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write(path: str, data) -> str:
  """Writes `data` (str: text mode, bytes: binary) to `path` atomically; returns `path`."""
  mode = 'w' if isinstance(data, str) else 'wb'
  with atomic_path(path) as tmp:
    with (_gfile().GFile(tmp, mode) if _is_remote(path) else open(tmp, mode)) as f:
      f.write(data)
  return path


def atomic_write_json(path: str, obj, indent: int = 2, **kwargs) -> str:
  """Writes `obj` as JSON (with a final newline) to `path` atomically; returns `path`.

  Args:
    path: destination file (local or a tf.io.gfile URL).
    obj: a JSON-serializable object.
    indent: spaces per nesting level.
    **kwargs: further `json.dumps` arguments (e.g. sort_keys=True).

  Raises:
    TypeError: `obj` is not JSON-serializable (nothing is written).
  """
  return atomic_write(path, json.dumps(obj, indent=indent, **kwargs) + '\n')


def save_png(path: str, image) -> str:
  """Writes a uint8 [H, W, 3] or [H, W] image to PNG atomically; returns `path`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'image must be uint8. Received: dtype={image.dtype}')
  with atomic_path(path) as tmp:
    Image.fromarray(image).save(tmp, format='PNG', optimize=True)
  return path


def save_figure(path: str, figure, **savefig_kwargs) -> str:
  """Saves a matplotlib figure atomically (format from the extension); returns `path`."""
  with atomic_path(path) as tmp:
    figure.savefig(tmp, **savefig_kwargs)
  return path


LFS_POINTER_PREFIX = b'version https://git-lfs.github.com/spec/'


def check_not_lfs_pointer(path: str) -> None:
  """Raises ValueError when `path` is a git-lfs pointer file (a clone without `git lfs pull`), not data.

  A pointer is a ~130-byte text file starting 'version https://git-lfs.github.com/spec/v1'; readers fail
  on it with unrelated errors (IndexError, 'File format not supported', a bad checkpoint index).
  """
  try:
    if os.path.getsize(path) > 1024:
      return
    with open(path, 'rb') as f:
      head = f.read(len(LFS_POINTER_PREFIX))
  except OSError:
    return
  if head == LFS_POINTER_PREFIX:
    raise ValueError(f'{path} is a git-lfs pointer, not the file\'s data: run `git lfs pull` in that clone '
                     '(git lfs install first if needed), then try again')


def save_npy(path: str, array) -> str:
  """Saves `array` (anything np.asarray takes) as .npy at local `path`, without pickle, atomically; returns
  `path`.

  Raises:
    ValueError: an object array (pickle is refused).
  """
  with atomic_path(path) as tmp:
    with open(tmp, 'wb') as f:
      np.save(f, np.asarray(array), allow_pickle=False)
  return path
