"""experiments/configs/: one config per row of the paper's Tables 2-5 (docs/reproduction.md).

Every config is current with its generator, is a valid TrainConfig whose model and input spec build,
names evaluate.py flags that exist, and carries the paper's numbers as docs/reproduction.md transcribes
them; every number of the transcribed tables has a config except the documented single-stream cells.
"""

import glob
import importlib.util
import json
import os
import re

import pytest

from data_pipelines.input_specs import get_input_spec
from i3d_tf import registry
from i3d_tf.checkpoints import restore
from i3d_tf.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, 'experiments', 'configs')
DOC = os.path.join(ROOT, 'docs', 'reproduction.md')
# Table cells the registry cannot train on their own (docs/reproduction.md): the single streams of the
# jointly trained Two-Stream and 3D-Fused models.
NO_CONFIG = {('2', row, f'{d} {m}') for row in ('(c) Two-Stream', '(d) 3D-Fused')
             for d in ('UCF-101', 'HMDB-51', 'Kinetics') for m in ('RGB', 'Flow')}
NO_CONFIG |= {('3', '(c) Two-Stream', c) for c in ('Kinetics RGB', 'Kinetics Flow', 'ImageNet then Kinetics RGB',
                                                   'ImageNet then Kinetics Flow')}


def _generator():
  spec = importlib.util.spec_from_file_location('paper_configs', os.path.join(CONFIG_DIR, 'paper.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_configs():
  out = {}
  for path in sorted(glob.glob(os.path.join(CONFIG_DIR, '*.json'))):
    with open(path, encoding='utf-8') as f:
      out[os.path.basename(path)[:-5]] = json.load(f)
  return out


def transcribed_tables():
  """{(table, row, column): 'cell text'} from the '### Table N' markdown tables of docs/reproduction.md."""
  cells, table, header = {}, None, None
  with open(DOC, encoding='utf-8') as f:
    for line in f:
      m = re.match(r'### Table (\d)', line)
      if m or line.startswith('## '):  # a table's section, or the end of the transcription
        table, header = (m.group(1) if m else None), None
        continue
      if table is None or not line.startswith('|'):
        continue
      parts = [p.strip() for p in line.strip().strip('|').split('|')]
      if header is None:
        header = parts
      elif not set(parts[0]) <= set('-'):
        cells.update({(table, parts[0], column): value for column, value in zip(header[1:], parts[1:])})
  return cells


def _value(text: str, part: str = None):
  if part in ('with ImageNet', 'without ImageNet'):
    text = text.split('/')[0 if part == 'with ImageNet' else 1]
  text = text.strip()
  return None if text == '–' else float(text)


CONFIGS = load_configs()


def test_configs_and_their_list_are_what_the_generator_writes():
  assert len(CONFIGS) >= 100
  assert _generator().main(['--check']) == 0


def test_every_number_is_the_papers_and_every_paper_number_has_a_config():
  tables = transcribed_tables()
  assert len(tables) == 5 * 9 + 5 * 6 + 5 * 6 + 6 * 2  # Tables 2, 3, 4, 5
  covered = set()
  for name, config in CONFIGS.items():
    assert config['name'] == name
    for cell in config['paper']['cells']:
      key = (cell['table'], cell['row'], cell['column'])
      assert key in tables, f'{name}: {key} is not a cell of the transcribed Table {cell["table"]}'
      assert _value(tables[key], cell.get('part')) == cell['top1'], (name, key, tables[key])
      covered.add(key + (cell.get('part') if cell['table'] == '4' else None,))
    assert config['paper']['cells'] or config['paper'].get('stream_of'), f'{name} reproduces nothing'
  expected = set()
  for (table, row, column), text in tables.items():
    parts = ('with ImageNet', 'without ImageNet') if table == '4' else (None,)
    expected |= {(table, row, column, p) for p in parts if _value(text, p) is not None}
  missing = {k for k in expected - covered if k[:3] not in NO_CONFIG}
  assert not missing, sorted(missing)[:10]


def test_every_config_is_a_valid_run_of_a_model_that_builds(monkeypatch, tmp_path):
  monkeypatch.setenv('WORK', str(tmp_path))
  from absl import flags  # pylint: disable=g-import-not-at-top
  from i3d_tf import cli  # pylint: disable=g-import-not-at-top
  from test_docs_commands import defined_flags  # pylint: disable=g-import-not-at-top  (tests/ is on sys.path)
  evaluate_flags = defined_flags('evaluate')  # its own flags and the shared groups it defines
  built = {}
  for name, config in CONFIGS.items():
    assert set(config['evaluate']) <= evaluate_flags, (name, set(config['evaluate']) - evaluate_flags)
    if config['train'] is None:  # a fused row: two runs evaluated together
      assert config['evaluate']['model'] == 'two_stream_i3d'
      for stream in ('rgb', 'flow'):
        run = os.path.basename(config['evaluate'][f'{stream}_checkpoint'])
        assert CONFIGS[run]['train']['model'] == f'i3d_{stream}', (name, run)
      continue
    fv = flags.FlagValues()
    cli.define_dataclass_flags(TrainConfig, fv)
    fv(['train'])
    train = cli.dataclass_from_flags(TrainConfig, fv, os.path.join(CONFIG_DIR, f'{name}.json')).validate()
    assert train.model_dir == os.path.join(str(tmp_path), 'runs', name)
    assert config['evaluate']['checkpoint'] == config['train']['model_dir']
    if train.init.startswith(str(tmp_path) + '/runs/'):  # transfer from a Kinetics run that is a config too
      source = CONFIGS[os.path.basename(train.init)]['train']
      assert source['model'] == train.model and source['num_classes'] == 400 and train.transfer in ('fixed', 'full')
    assert get_input_spec(train.model).modalities
    key = (train.model, train.num_classes)
    if key not in built:
      model = registry.build_model(train.model, train.num_classes, **restore.config_build_kwargs(config['train']))
      built[key] = int(model.output.shape[-1])
    assert built[key] == train.num_classes
  assert {m for m, _ in built} == {'convnet_lstm', 'c3d', 'two_stream', 'fused_3d', 'i3d_rgb', 'i3d_flow'}


def test_a_paper_config_needs_work_and_takes_flag_overrides(monkeypatch):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from i3d_tf import cli  # pylint: disable=g-import-not-at-top
  path = os.path.join(CONFIG_DIR, 'ucf101s1_i3d_rgb_kinetics-imagenet_full.json')
  fv = flags.FlagValues()
  cli.define_dataclass_flags(TrainConfig, fv)
  fv(['train', '--train_steps=10', '--train_data=synthetic:8'])
  monkeypatch.delenv('WORK', raising=False)
  with pytest.raises(cli.UsageError, match='export WORK='):
    cli.dataclass_from_flags(TrainConfig, fv, path)
  monkeypatch.setenv('WORK', '/w')
  config = cli.dataclass_from_flags(TrainConfig, fv, path)
  assert (config.train_steps, config.train_data, config.init, config.transfer, config.num_classes) == (
      10, 'synthetic:8', '/w/runs/kinetics400_i3d_rgb_imagenet', 'full', 101)
  with pytest.raises(cli.UsageError, match='an evaluation of other runs'):
    cli.dataclass_from_flags(TrainConfig, fv, os.path.join(CONFIG_DIR, 'ucf101s1_two_stream_i3d_imagenet.json'))
