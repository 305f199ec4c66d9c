"""Every command the documentation shows uses flags that exist (README.md, WORKSPACE.md, docs/*.md).

A command is a line (with its backslash continuations) that runs `experiments/<name>.py` or
`-m i3d_tf.checkpoints.pretrained`, in a fenced or indented code block.  Its `--flags` must be defined by
that binary (`flags.DEFINE_*` in its source, plus absl's own), so a renamed or mistyped flag in the docs fails
here, not for the user.  The commands are not run: their data (UCF-101, Kinetics, a kinetics-i3d clone) is
not here; the tests of each binary run them on small inputs.
"""

import glob
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ['README.md', 'WORKSPACE.md'] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
ABSL_FLAGS = {'help', 'helpfull', 'helpshort', 'helpxml', 'verbosity', 'v', 'logtostderr', 'alsologtostderr',
              'log_dir', 'flagfile', 'undefok', 'only_check_args', 'pdb', 'pdb_post_mortem', 'run_with_pdb',
              'run_with_profiling', 'profile_file', 'use_cprofile_for_profiling', 'stderrthreshold', 'showprefixforinfo'}
PRETRAINED_FLAGS = {'weights_file', 'force'}  # argparse flags of `python -m i3d_tf.checkpoints.pretrained`
DEFINE = re.compile(r"flags\.DEFINE_\w+\(\s*'(\w+)'")


DATACLASS_FLAGS = re.compile(r"define_dataclass_flags\(\s*(\w+)")


def _dataclass_fields(name: str) -> set:
  """Fields of a dataclass whose flags a binary generates (`cli.define_dataclass_flags`)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from i3d_tf.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
  known = {'TrainConfig': TrainConfig}
  assert name in known, f'define_dataclass_flags({name}): add it to this test'
  return {f.name for f in dataclasses.fields(known[name])}


def _group_flags(source: str) -> set:
  """Flags of the shared groups a binary defines (`cli.define_flow_flags(...)`, `cli.define_precision_flag(...)`, ...):
  each call is made again, with the same literal arguments, on a fresh FlagValues."""
  import ast  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from i3d_tf import cli  # pylint: disable=g-import-not-at-top
  names = set()
  for node in ast.walk(ast.parse(source)):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith('define_')
        and node.func.attr.endswith(('_flag', '_flags')) and node.func.attr != 'define_dataclass_flags'):
      fv = flags.FlagValues()
      getattr(cli, node.func.attr)(*[ast.literal_eval(a) for a in node.args],
                                   **{k.arg: ast.literal_eval(k.value) for k in node.keywords}, flag_values=fv)
      names |= set(fv)
  return names


def defined_flags(binary: str) -> set:
  with open(os.path.join(ROOT, 'experiments', f'{binary}.py'), encoding='utf-8') as f:
    source = f.read()
  generated = set().union(*[_dataclass_fields(n) for n in DATACLASS_FLAGS.findall(source)])
  return set(DEFINE.findall(source)) | generated | _group_flags(source) | ABSL_FLAGS


def code_lines(text: str):
  """(line number, line) of the lines inside ``` blocks or indented by 4 spaces, continuations joined."""
  out, fenced, pending, start = [], False, '', 0
  for number, line in enumerate(text.splitlines(), 1):
    if line.strip().startswith('```'):
      fenced = not fenced
      continue
    if not (fenced or line.startswith('    ')):
      continue
    if not pending:
      start = number
    pending += ' ' + line.strip()
    if pending.endswith('\\'):
      pending = pending[:-1]
      continue
    out.append((start, pending.strip()))
    pending = ''
  return out


def documented_commands():
  found = []
  for doc in DOCS:
    with open(os.path.join(ROOT, doc), encoding='utf-8') as f:
      for number, line in code_lines(f.read()):
        for m in re.finditer(r'experiments/(\w+)\.py|-m i3d_tf\.checkpoints\.pretrained', line):
          rest = line[m.end():].split('#')[0].split(' && ')[0].split(';')[0]
          try:
            tokens = shlex.split(rest)
          except ValueError:
            tokens = rest.split()
          binary = m.group(1) or 'pretrained'
          found.append((f'{doc}:{number}', binary, [t for t in tokens if t.startswith('--')]))
  return found


COMMANDS = documented_commands()


def test_the_docs_show_the_main_commands():
  binaries = {b for _, b, _ in COMMANDS}
  assert {'classify', 'extract_features', 'train', 'evaluate', 'export', 'prepare_data', 'convert_checkpoint',
          'pretrained'} <= binaries, sorted(binaries)
  assert len(COMMANDS) >= 30


@pytest.mark.parametrize('where,binary,args', COMMANDS, ids=[f'{w}:{b}' for w, b, _ in COMMANDS])
def test_documented_flags_exist(where, binary, args):
  assert os.path.exists(os.path.join(ROOT, 'experiments', f'{binary}.py')) or binary == 'pretrained', where
  known = PRETRAINED_FLAGS | {'help'} if binary == 'pretrained' else defined_flags(binary)
  unknown = []
  for arg in args:
    name = arg[2:].split('=', 1)[0]
    if name and name not in known and not (name.startswith('no') and name[2:] in known):
      unknown.append(name)
  assert not unknown, f'{where}: experiments/{binary}.py has no flag {unknown}'


@pytest.mark.slow
@pytest.mark.parametrize('binary', sorted({b for _, b, _ in COMMANDS} - {'pretrained'}))
def test_each_documented_binary_starts_and_lists_the_flags_read_here(binary):
  """`--helpfull` runs (the binary imports and parses, no traceback) and lists every flag the source parse found."""
  import subprocess
  import sys
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', f'{binary}.py'), '--helpfull'],
                        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
  # absl's --helpfull prints the listing and exits 1 (absl/app.py HelpfullFlag); a failed import exits 1 too,
  # so the test reads the listing and the absence of a traceback, not the status.
  assert proc.returncode in (0, 1) and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  listed = set(re.findall(r'^\s+--(?:\[no\])?(\w+)', proc.stdout, flags=re.M))
  assert defined_flags(binary) - ABSL_FLAGS <= listed, sorted(defined_flags(binary) - ABSL_FLAGS - listed)
