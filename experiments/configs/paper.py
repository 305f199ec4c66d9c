r"""The paper's Tables 2-5 as runs: writes one config per row into experiments/configs/ and their list
into docs/reproduction.md.

  python experiments/configs/paper.py            # (re)write the JSON files and the list
  python experiments/configs/paper.py --check    # exit 1 if they differ from what this script writes

A config is a JSON object:
  name      the file's name, also the run's `--model_dir` (`${WORK}/runs/<name>`)
  train     a `TrainConfig` (`experiments/train.py --config=`), or null for a fused row
  evaluate  the flags of `experiments/evaluate.py` for the row
  paper     the table cells it reproduces: [{table, row, column, part, top1}, ...], the GPUs the paper used,
            and, for the streams of a fused row, `stream_of`
  ours      null until someone runs it (docs/reproduction.md says why nothing is run here)

The numbers below are this script's own transcription of the paper; tests/test_paper_configs.py checks them
against the tables transcribed in docs/reproduction.md.
"""

import argparse
import collections
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(ROOT, 'docs', 'reproduction.md')
BEGIN, END = '<!-- configs: written by experiments/configs/paper.py -->', '<!-- /configs -->'

IMAGENET_INIT = 'inflate_2d:${WORK}/checkpoints/imagenet_2d/inception_v1.weights.h5'
Dataset = collections.namedtuple('Dataset', 'title num_classes train test steps gpus')


def _split(name: str, split: int, num_classes: int, title: str) -> Dataset:
  folder = f'${{WORK}}/tfrecords/{name}/split{split}'
  return Dataset(title, num_classes, f'{folder}/train-*', f'{folder}/test-*', 5000, 16)  # Sec. 2.5: "up to 5k
  # steps on UCF-101 and HMDB-51 ... using just 16 GPUs"


DATASETS = {
    **{f'ucf101s{s}': _split('ucf101', s, 101, 'UCF-101') for s in (1, 2, 3)},
    **{f'hmdb51s{s}': _split('hmdb51', s, 51, 'HMDB-51') for s in (1, 2, 3)},
    # The Kinetics test labels are not public: the held-out set here is the validation set.
    'kinetics400': Dataset('Kinetics', 400, '${WORK}/tfrecords/kinetics400/train-*',
                           '${WORK}/tfrecords/kinetics400/val-*', 110_000, None),
}
# arch -> (Table 2-4 row, modality column, GPUs on Kinetics: "32 GPUs for all models except the 3D ConvNets
# which receive a large number of input frames ... 64 GPUs for these", Sec. 2.5)
ARCHS = {
    'convnet_lstm': ('(a) LSTM', 'RGB', 32),
    'c3d': ('(b) 3D-ConvNet', 'RGB', 64),
    'two_stream': ('(c) Two-Stream', 'RGB + Flow', 32),
    'fused_3d': ('(d) 3D-Fused', 'RGB + Flow', 64),
    'i3d_rgb': ('(e) Two-Stream I3D', 'RGB', 64),
    'i3d_flow': ('(e) Two-Stream I3D', 'Flow', 64),
    'two_stream_i3d': ('(e) Two-Stream I3D', 'RGB + Flow', 64),  # evaluation of i3d_rgb + i3d_flow
}
STREAMS = {'two_stream_i3d': ('i3d_rgb', 'i3d_flow')}

# The paper's top-1 (%), this script's transcription.  Table 2: (arch, dataset title) -> number.
TABLE2 = {
    ('convnet_lstm', 'UCF-101'): 81.0, ('c3d', 'UCF-101'): 51.6, ('two_stream', 'UCF-101'): 91.2,
    ('fused_3d', 'UCF-101'): 89.3, ('i3d_rgb', 'UCF-101'): 84.5, ('i3d_flow', 'UCF-101'): 90.6,
    ('two_stream_i3d', 'UCF-101'): 93.4,
    ('convnet_lstm', 'HMDB-51'): 36.0, ('c3d', 'HMDB-51'): 24.3, ('two_stream', 'HMDB-51'): 58.3,
    ('fused_3d', 'HMDB-51'): 56.8, ('i3d_rgb', 'HMDB-51'): 49.8, ('i3d_flow', 'HMDB-51'): 61.9,
    ('two_stream_i3d', 'HMDB-51'): 66.4,
    ('convnet_lstm', 'Kinetics'): 63.3, ('c3d', 'Kinetics'): 56.1, ('two_stream', 'Kinetics'): 65.6,
    ('fused_3d', 'Kinetics'): 67.2, ('i3d_rgb', 'Kinetics'): 71.1, ('i3d_flow', 'Kinetics'): 63.4,
    ('two_stream_i3d', 'Kinetics'): 74.2,
}
# Table 3, Kinetics from scratch (the ImageNet column is Table 2's Kinetics column).
TABLE3_SCRATCH = {'convnet_lstm': 53.9, 'c3d': 56.1, 'two_stream': 62.8, 'fused_3d': 62.7, 'i3d_rgb': 68.4,
                  'i3d_flow': 61.5, 'two_stream_i3d': 71.6}
# Table 4: (arch, dataset title, column) -> (with ImageNet, without ImageNet); None for "-".
TABLE4 = {
    ('convnet_lstm', 'UCF-101'): {'Original': (81.0, 54.2), 'Fixed': (88.1, 82.6), 'Full-FT': (91.0, 86.8)},
    ('c3d', 'UCF-101'): {'Original': (None, 51.6), 'Fixed': (None, 76.0), 'Full-FT': (None, 79.9)},
    ('two_stream', 'UCF-101'): {'Original': (91.2, 83.6), 'Fixed': (93.9, 93.3), 'Full-FT': (94.2, 93.8)},
    ('fused_3d', 'UCF-101'): {'Original': (89.3, 69.5), 'Fixed': (94.3, 89.8), 'Full-FT': (94.2, 91.5)},
    ('two_stream_i3d', 'UCF-101'): {'Original': (93.4, 88.8), 'Fixed': (97.7, 97.4), 'Full-FT': (98.0, 97.6)},
    ('convnet_lstm', 'HMDB-51'): {'Original': (36.0, 18.3), 'Fixed': (50.8, 47.1), 'Full-FT': (53.4, 49.7)},
    ('c3d', 'HMDB-51'): {'Original': (None, 24.3), 'Fixed': (None, 47.0), 'Full-FT': (None, 49.4)},
    ('two_stream', 'HMDB-51'): {'Original': (58.3, 47.1), 'Fixed': (66.6, 65.9), 'Full-FT': (66.6, 64.3)},
    ('fused_3d', 'HMDB-51'): {'Original': (56.8, 37.3), 'Fixed': (69.9, 64.6), 'Full-FT': (71.0, 66.5)},
    ('two_stream_i3d', 'HMDB-51'): {'Original': (66.4, 62.2), 'Fixed': (79.7, 78.6), 'Full-FT': (81.2, 81.3)},
}
# Table 5 (mean over three splits, Full-FT from Kinetics): (arch, pretraining) -> {dataset title: number}.
TABLE5_ROWS = {
    ('i3d_rgb', 'imagenet'): 'RGB-I3D, Imagenet+Kinetics pre-training',
    ('i3d_flow', 'imagenet'): 'Flow-I3D, Imagenet+Kinetics pre-training',
    ('two_stream_i3d', 'imagenet'): 'Two-Stream I3D, Imagenet+Kinetics pre-training',
    ('i3d_rgb', 'scratch'): 'RGB-I3D, Kinetics pre-training',
    ('i3d_flow', 'scratch'): 'Flow-I3D, Kinetics pre-training',
    ('two_stream_i3d', 'scratch'): 'Two-Stream I3D, Kinetics pre-training',
}
TABLE5 = {
    ('i3d_rgb', 'imagenet'): {'UCF-101': 95.6, 'HMDB-51': 74.8},
    ('i3d_flow', 'imagenet'): {'UCF-101': 96.7, 'HMDB-51': 77.1},
    ('two_stream_i3d', 'imagenet'): {'UCF-101': 98.0, 'HMDB-51': 80.7},
    ('i3d_rgb', 'scratch'): {'UCF-101': 95.1, 'HMDB-51': 74.3},
    ('i3d_flow', 'scratch'): {'UCF-101': 96.5, 'HMDB-51': 77.3},
    ('two_stream_i3d', 'scratch'): {'UCF-101': 97.8, 'HMDB-51': 80.9},
}


def name_of(dataset: str, arch: str, init: str, transfer: str = 'none') -> str:
  return f'{dataset}_{arch}_{init}' + ('' if transfer == 'none' else f'_{transfer}')


def _cell(table: str, row: str, column: str, top1, part: str = None):
  cell = {'table': table, 'row': row, 'column': column, 'top1': top1}
  if part:
    cell['part'] = part
  return cell


def _config(dataset: str, arch: str, init: str, transfer: str = 'none'):
  """The config of one run (or, for two_stream_i3d, one evaluation), without its table cells."""
  d = DATASETS[dataset]
  name = name_of(dataset, arch, init, transfer)
  evaluate = {'model': arch, 'eval_data': d.test, 'output_dir': f'${{WORK}}/eval/{name}'}
  gpus = ARCHS[arch][2] if dataset == 'kinetics400' else d.gpus
  paper = {'cells': [], 'gpus': gpus}
  if arch in STREAMS:
    rgb, flow = (name_of(dataset, s, init, transfer) for s in STREAMS[arch])
    evaluate.update(rgb_checkpoint=f'${{WORK}}/runs/{rgb}', flow_checkpoint=f'${{WORK}}/runs/{flow}')
    return {'name': name, 'train': None, 'evaluate': evaluate, 'paper': paper, 'ours': None}
  if init == 'imagenet':
    start = IMAGENET_INIT
  elif init == 'scratch':
    start = 'scratch'
  else:  # kinetics-imagenet / kinetics-scratch: the Kinetics run of the same model
    start = f'${{WORK}}/runs/{name_of("kinetics400", arch, init.split("-", 1)[1])}'
  train = {'model': arch, 'num_classes': d.num_classes, 'train_data': d.train, 'eval_data': d.test,
           'model_dir': f'${{WORK}}/runs/{name}', 'init': start, 'transfer': transfer, 'lr_schedule': 'plateau',
           'train_steps': d.steps, 'momentum': 0.9}
  evaluate['checkpoint'] = train['model_dir']
  return {'name': name, 'train': train, 'evaluate': evaluate, 'paper': paper, 'ours': None}


def configs():
  """{name: config} for every run the tables need, each with the cells it reproduces."""
  out = {}

  def add(dataset, arch, init, transfer='none', cells=()):
    config = out.setdefault(name_of(dataset, arch, init, transfer), _config(dataset, arch, init, transfer))
    config['paper']['cells'].extend(cells)
    for stream in STREAMS.get(arch, ()):  # the runs a fused row evaluates
      add(dataset, stream, init, transfer)
      stream_of = out[name_of(dataset, stream, init, transfer)]['paper'].setdefault('stream_of', [])
      if config['name'] not in stream_of:
        stream_of.append(config['name'])
    return config

  for dataset in ('ucf101s1', 'hmdb51s1', 'kinetics400'):
    title = DATASETS[dataset].title
    for arch, (row, modality, _) in ARCHS.items():
      init = 'scratch' if arch == 'c3d' else 'imagenet'  # "All models ... ImageNet pre-trained ... except 3D-ConvNet"
      cells = [_cell('2', row, f'{title} {modality}', TABLE2[(arch, title)])]
      if dataset == 'kinetics400':
        cells.append(_cell('3', row, f'{"Kinetics" if arch == "c3d" else "ImageNet then Kinetics"} {modality}',
                           TABLE2[(arch, title)]))
      elif arch not in ('i3d_rgb', 'i3d_flow'):  # Table 4 reports the fused Two-Stream I3D only
        index = 1 if arch == 'c3d' else 0  # (with, without) ImageNet
        cells.append(_cell('4', row, f'{title} Original', TABLE4[(arch, title)]['Original'][index],
                           ('with ImageNet', 'without ImageNet')[index]))
      add(dataset, arch, init, cells=cells)
    if dataset == 'kinetics400':  # Table 3: from scratch
      for arch, (row, modality, _) in ARCHS.items():
        if arch != 'c3d':
          add(dataset, arch, 'scratch', cells=[_cell('3', row, f'Kinetics {modality}', TABLE3_SCRATCH[arch])])
  for dataset in ('ucf101s1', 'hmdb51s1'):  # Table 4
    title = DATASETS[dataset].title
    for arch, (row, _, _) in ARCHS.items():
      if arch in ('i3d_rgb', 'i3d_flow'):
        continue  # streams of two_stream_i3d, added with it
      numbers = TABLE4[(arch, title)]
      if arch != 'c3d':
        add(dataset, arch, 'scratch', cells=[_cell('4', row, f'{title} Original', numbers['Original'][1],
                                                   'without ImageNet')])
      for column, transfer in (('Fixed', 'fixed'), ('Full-FT', 'full')):
        for init, index in (('kinetics-imagenet', 0), ('kinetics-scratch', 1)):
          if arch == 'c3d' and init == 'kinetics-imagenet':
            continue
          part = 'with ImageNet' if index == 0 else 'without ImageNet'
          add(dataset, arch, init, transfer, [_cell('4', row, f'{title} {column}', numbers[column][index], part)])
  for base in ('ucf101', 'hmdb51'):  # Table 5: Full-FT on each split, the row's three-split mean
    for split in (1, 2, 3):
      dataset = f'{base}s{split}'
      title = DATASETS[dataset].title
      for (arch, pretraining), row in TABLE5_ROWS.items():
        cell = _cell('5', row, title, TABLE5[(arch, pretraining)][title], f'split {split} of 3 (mean of the splits)')
        add(dataset, arch, f'kinetics-{pretraining}', 'full', [cell])
  return out


def _json(config) -> str:
  return json.dumps(config, indent=2) + '\n'


def listing(all_configs) -> str:
  """The markdown list of docs/reproduction.md."""
  lines = [BEGIN, '', '| config | trains / evaluates | reproduces (paper top-1) | ours |', '|---|---|---|---|']
  for name in sorted(all_configs):
    c = all_configs[name]
    what = (f"`{c['train']['model']}`, init `{c['train']['init'].split('/')[-1]}`"
            + (f", transfer `{c['train']['transfer']}`" if c['train']['transfer'] != 'none' else '')
            if c['train'] else f"`two_stream_i3d` = {' + '.join('`' + s.split('/')[-1] + '`' for s in (c['evaluate']['rgb_checkpoint'], c['evaluate']['flow_checkpoint']))}")
    cells = '; '.join(f"T{x['table']} {x['row']}, {x['column']}{' (' + x['part'] + ')' if x.get('part') else ''}: "
                      f"{x['top1']}" for x in c['paper']['cells'])
    if not cells:
      cells = 'a stream of ' + ', '.join(f'`{s}`' for s in c['paper']['stream_of'])
    lines.append(f'| `{name}` | {what} | {cells} | not run here |')
  lines += ['', END]
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--check', action='store_true', help='compare instead of writing; exit 1 on a difference')
  args = parser.parse_args(argv)
  all_configs = configs()
  wanted = {f'{name}.json': _json(c) for name, c in all_configs.items()}
  with open(DOC, encoding='utf-8') as f:
    doc = f.read()
  if BEGIN not in doc or END not in doc:
    print(f'{DOC} lacks the markers {BEGIN} ... {END}', file=sys.stderr)
    return 1
  new_doc = doc[:doc.index(BEGIN)] + listing(all_configs) + doc[doc.index(END) + len(END):]
  present = {f for f in os.listdir(HERE) if f.endswith('.json')}
  if args.check:
    stale = sorted(f for f in present | set(wanted)
                   if f not in wanted or f not in present
                   or open(os.path.join(HERE, f), encoding='utf-8').read() != wanted[f])
    if stale or new_doc != doc:
      print(f'out of date: {stale[:10]}{" and docs/reproduction.md" if new_doc != doc else ""}; run '
            'python experiments/configs/paper.py', file=sys.stderr)
      return 1
    print(f'{len(wanted)} configs and docs/reproduction.md are current')
    return 0
  for f in present - set(wanted):
    os.remove(os.path.join(HERE, f))
  for f, text in wanted.items():
    with open(os.path.join(HERE, f), 'w', encoding='utf-8') as out:
      out.write(text)
  with open(DOC, 'w', encoding='utf-8') as out:
    out.write(new_doc)
  print(f'wrote {len(wanted)} configs into {HERE} and their list into {DOC}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
