"""The package boundary (docs/architecture.md): data_pipelines is the lower layer and never imports i3d_tf;
no import cycle between library files; importing the packages loads no Keras.

Imports are read from the source (ast): module-level and function-local `import` / `from ... import`, and
`importlib.import_module('...')` / `__import__('...')` calls with a literal name.
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
PACKAGES = ('data_pipelines', 'i3d_tf')


def library_modules():
  """{'data_pipelines.flow.backends': path, ...} for every .py file of the two packages."""
  out = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
      for name in files:
        if name.endswith('.py'):
          path = os.path.join(folder, name)
          module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
          out[module[:-len('.__init__')] if module.endswith('.__init__') else module] = path
  return out


def imported_names(path, module, is_package):
  """Every module name the file imports, with the line: [(name, line)]."""
  tree = ast.parse(open(path, encoding='utf-8').read(), path)
  package = module if is_package else module.rpartition('.')[0]
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(a.name, node.lineno) for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')
        parts = parts[:len(parts) - (node.level - 1)]
        base = '.'.join(parts + ([base] if base else []))
      found.append((base, node.lineno))
      found += [(f'{base}.{a.name}', node.lineno) for a in node.names]  # `from pkg import submodule`
    elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)
          and ((isinstance(node.func, ast.Attribute) and node.func.attr == 'import_module')
               or (isinstance(node.func, ast.Name) and node.func.id in ('import_module', '__import__')))):
      found.append((node.args[0].value, node.lineno))
  return found


def import_graph():
  """{module: {imported library module: first line}} over library files (names resolved to files)."""
  modules = library_modules()
  graph = {}
  for module, path in modules.items():
    edges = {}
    for name, line in imported_names(path, module, path.endswith('__init__.py')):
      if name in modules and name != module:
        edges.setdefault(name, line)
    graph[module] = edges
  return graph


def test_data_pipelines_never_imports_i3d_tf():
  reverse = [f'{os.path.relpath(library_modules()[m], ROOT)}:{line} imports {target}'
             for m, edges in import_graph().items() if m.split('.')[0] == 'data_pipelines'
             for target, line in edges.items() if target.split('.')[0] == 'i3d_tf']
  assert not reverse, '\n'.join(reverse)


def test_the_scan_sees_every_kind_of_import(tmp_path):
  """The scanner itself: it would see a function-local, a relative and an import_module edge."""
  path = tmp_path / 'm.py'
  path.write_text('import os\ndef f():\n  from i3d_tf import flow\n  from . import sibling\n'
                  '  importlib.import_module("i3d_tf.models")\n')
  names = [n for n, _ in imported_names(str(path), 'data_pipelines.m', False)]
  assert {'os', 'i3d_tf', 'i3d_tf.flow', 'data_pipelines', 'data_pipelines.sibling', 'i3d_tf.models'} <= set(names)


def cycles(graph):
  """Strongly connected components with more than one module (Tarjan), each sorted."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
  for v in graph:
    if v not in index:
      visit(v)
  return out


def test_no_import_cycle_between_library_files():
  """A package's __init__ re-exporting its own submodules is not a cycle between concepts: edges from a
  package to its own submodules are left out; every other edge, function-local ones included, counts."""
  graph = {m: {t: line for t, line in edges.items() if not t.startswith(m + '.')}
           for m, edges in import_graph().items()}
  found = cycles(graph)
  detail = ['; '.join(f'{a} -> {b} (line {graph[a][b]})' for a in c for b in c if b in graph[a]) for c in found]
  assert not found, '\n'.join(detail)


@pytest.mark.parametrize('statement', ['import data_pipelines, data_pipelines.conversion, data_pipelines.flow',
                                       'import i3d_tf'])
def test_importing_the_packages_loads_no_keras(statement):
  code = f'import sys\n{statement}\nprint(sorted(m for m in ("keras", "tensorflow") if m in sys.modules))'
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, cwd=ROOT)
  assert out.stdout.strip().splitlines()[-1] == '[]'
