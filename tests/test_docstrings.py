"""Every public function and class of the two packages is documented, and documents its parameters.

The standard (DEVELOPERS.md): public docstrings give shapes, units, value ranges, errors raised, and the paper
section or source.  What a test can hold: each public module-level function and class, and each public
method of a public class, has a docstring; a function's docstring names each of its parameters (in an
`Args:` section, or in its prose for a short one).  Keras's own overrides (`build`, `call`,
`compute_output_shape`, `get_config`, `from_config`) inherit Keras's documentation and are exempt.
"""

import ast
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('i3d_tf', 'data_pipelines')
KERAS_OVERRIDES = {'build', 'call', 'compute_output_shape', 'get_config', 'from_config'}


def _modules():
  for package in PACKAGES:
    for path in sorted(glob.glob(os.path.join(ROOT, package, '**', '*.py'), recursive=True)):
      yield os.path.relpath(path, ROOT)


def _public(node_list):
  return [n for n in node_list if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith('_')]


def _parameters(fn: ast.FunctionDef):
  args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
  return [a.arg for a in args if a.arg not in ('self', 'cls')]


def _problems(path: str):
  with open(os.path.join(ROOT, path), encoding='utf-8') as f:
    tree = ast.parse(f.read())
  out = []
  for node in _public(tree.body):
    members = [(node, node.name)]
    if isinstance(node, ast.ClassDef):
      members += [(m, f'{node.name}.{m.name}') for m in _public(node.body) if m.name not in KERAS_OVERRIDES]
    for member, name in members:
      doc = ast.get_docstring(member)
      if not doc:
        out.append(f'{path}:{member.lineno} {name}: no docstring')
        continue
      if isinstance(member, ast.FunctionDef):
        words = set(re.findall(r'\w+', doc))
        missing = [p for p in _parameters(member) if p not in words]
        if missing and any(d.id == 'property' for d in member.decorator_list if isinstance(d, ast.Name)):
          missing = []
        if missing:
          out.append(f'{path}:{member.lineno} {name}: parameter(s) {missing} not documented')
  return out


@pytest.mark.parametrize('path', list(_modules()))
def test_public_names_are_documented(path):
  problems = _problems(path)
  assert not problems, '\n'.join(problems)
