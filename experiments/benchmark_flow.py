r"""Throughput of data_pipelines.flow.tvl1 against OpenCV's DualTVL1, measured interleaved.

Also the RubberWhale accuracy of both and the comparison picture, and (no ground truth) how far ours is
from OpenCV on consecutive frame pairs of real clips, where motion is larger than in RubberWhale.

  TF_ENABLE_ONEDNN_OPTS=1 python experiments/benchmark_flow.py \
      --sizes=256x340,224x224 --batch_sizes=8 --repeats=2 \
      --output=benchmarks/flow_tvl1.json --picture=docs/images/flow_rubberwhale.png
"""

import json
import os
import platform
import time

from absl import app
from absl import flags
import numpy as np

from data_pipelines.io_utils import atomic_write_json

_SIZES = flags.DEFINE_list('sizes', ['256x340', '224x224'], 'HxW frame sizes.')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['8'], 'Batch sizes for ours (GPU: 1,8,16,32,64).')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Timed calls per configuration (after a warm-up).')
_BUDGET = flags.DEFINE_enum('budget', 'both', ['opencv', 'fast', 'both'],
                            'Ours with OpenCV defaults (early stopping) and/or FAST_BUDGET.')
_OUTPUT = flags.DEFINE_string('output', 'benchmarks/flow_tvl1.json', 'Results JSON.')
_PICTURE = flags.DEFINE_string('picture', 'docs/images/flow_rubberwhale.png',
                               'RubberWhale comparison PNG ("" to skip).')
_CLIPS = flags.DEFINE_list('clips', ['arm_wrestling_kinetics.mp4', 'flipping_pancake.mkv',
                                      'v_ApplyEyeMakeup_g01_c01.avi'],
                           'Real clips under <shared_data>/videos: ours vs OpenCV on consecutive pairs ("" to skip).')
_CLIP_FRAMES = flags.DEFINE_string('clip_frames', '40:49', 'start:stop frames of each clip (25 fps, short side 256).')
_WINDOW_MARGINS = flags.DEFINE_list(
    'window_margins', [], 'Test-time flow windows (data_pipelines.streaming.flow_window): for each margin, the mean '
    'change inside the 224 crop against whole-frame flow, on the first --window_frames frames of each --clips '
    'clip and on RubberWhale, OpenCV and ours (e.g. 16,32,48,64; empty: skip).')
_WINDOW_FRAMES = flags.DEFINE_integer('window_frames', 33, 'Frames per clip for --window_margins.')
_PAD_MULTIPLES = flags.DEFINE_list(
    'pad_multiples', [], 'Issue 15 lever 2: whole-frame flow on frames edge-padded to each multiple (cropped back) '
    'against the frames as they are, both backends, on RubberWhale (EPE) and the first --window_frames frames '
    'of each --clips clip.')
_REAL_CLIPS = flags.DEFINE_bool('real_clips', True, 'Ours against OpenCV on --clip_frames of each --clips clip.')
_WARM_FRAMES = flags.DEFINE_integer('warm_start_frames', 0, 'Issue 15 lever 4: each pair of the first N frames of '
                                    'each --clips clip started from the previous pair\'s flow (OpenCV\'s '
                                    'useInitialFlow) against cold starts: iterations and distance to OpenCV (0: skip).')
_DATA = flags.DEFINE_string(
    'shared_data', os.environ.get('I3D_SHARED_DATA', os.path.join('..', 'shared', 'data')),
    'The shared data directory.')


def _machine():
  import tensorflow as tf
  import cv2
  gpus = tf.config.list_physical_devices('GPU')
  from i3d_tf.benchmarking import cpu_name
  return dict(cpu=cpu_name(), cores=len(os.sched_getaffinity(0)), gpus=[g.name for g in gpus],
              tensorflow=tf.__version__, opencv=cv2.__version__, python=platform.python_version(),
              opencv_threads=cv2.getNumThreads(),
              onednn=os.environ.get('TF_ENABLE_ONEDNN_OPTS'),
              load_average_1min=round(os.getloadavg()[0], 2),
              note='ours and OpenCV timed interleaved in one process: the ratio is the figure to read')


def _frames(h, w):
  import cv2
  d = os.path.join(_DATA.value, 'flow', 'middlebury_rubberwhale')
  a = cv2.imread(os.path.join(d, 'frame10.png'), cv2.IMREAD_GRAYSCALE)
  b = cv2.imread(os.path.join(d, 'frame11.png'), cv2.IMREAD_GRAYSCALE)
  return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA), cv2.resize(
      b, (w, h), interpolation=cv2.INTER_AREA)


def _native_pairs_per_s(a, b, budget, pairs):
  """The native engine's throughput on `pairs` copies of (a, b), `native.default_threads()` at once."""
  from concurrent import futures
  from data_pipelines.flow import native
  start = time.perf_counter()
  with futures.ThreadPoolExecutor(native.default_threads()) as pool:
    counts = list(pool.map(lambda _: native.tvl1(a, b, return_iterations=True, **budget)[1], range(pairs)))
  return pairs / (time.perf_counter() - start), float(np.mean(counts))


def _speed(results):
  import cv2
  import tensorflow as tf
  import data_pipelines.flow as F
  device = 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'
  budgets = {'opencv': {}, 'fast': F.FAST_BUDGET}
  names = ['opencv', 'fast'] if _BUDGET.value == 'both' else [_BUDGET.value]
  for size in _SIZES.value:
    h, w = (int(v) for v in size.split('x'))
    a, b = _frames(h, w)
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    algo.calc(a, b, None)
    for name in names:
      for bs in (int(v) for v in _BATCH_SIZES.value):
        fa = np.repeat(a[None].astype(np.float32), bs, 0)
        fb = np.repeat(b[None].astype(np.float32), bs, 0)
        t = time.perf_counter()
        F.tvl1(fa, fb, **budgets[name]).numpy()
        compile_s = time.perf_counter() - t
        ours, theirs = [], []
        for _ in range(_REPEATS.value):  # interleaved: same load on both
          t = time.perf_counter()
          flow, iters = F.tvl1(fa, fb, return_iterations=True, **budgets[name])
          flow.numpy()
          ours.append(bs / (time.perf_counter() - t))
          t = time.perf_counter()
          algo.calc(a, b, None)
          theirs.append(1.0 / (time.perf_counter() - t))
        row = dict(size=size, budget=name, batch_size=bs, device=device,
                   ours_pairs_per_s=float(np.median(ours)),
                   opencv_pairs_per_s=float(np.median(theirs)),
                   ratio=float(np.median(np.array(ours) / np.array(theirs))),
                   ours_iterations_per_pair=float(iters) / bs, first_call_s=compile_s)
        print(json.dumps(row), flush=True)
        results['speed'].append(row)
      if F.native.available():  # the native engine (the CPU default of --flow=tvl1_tf), interleaved the same way
        _native_pairs_per_s(a, b, budgets[name], 2)
        ours, theirs = [], []
        for _ in range(_REPEATS.value):
          rate, iters = _native_pairs_per_s(a, b, budgets[name], 8)
          ours.append(rate)
          t = time.perf_counter()
          algo.calc(a, b, None)
          theirs.append(1.0 / (time.perf_counter() - t))
        row = dict(size=size, budget=name, engine='native', threads=F.native.default_threads(), device='CPU',
                   ours_pairs_per_s=float(np.median(ours)), opencv_pairs_per_s=float(np.median(theirs)),
                   ratio=float(np.median(np.array(ours) / np.array(theirs))), ours_iterations_per_pair=iters)
        print(json.dumps(row), flush=True)
        results['speed'].append(row)


def _accuracy(results):
  import cv2
  import data_pipelines.flow as F
  d = os.path.join(_DATA.value, 'flow', 'middlebury_rubberwhale')
  a = cv2.imread(os.path.join(d, 'frame10.png'), cv2.IMREAD_GRAYSCALE)
  b = cv2.imread(os.path.join(d, 'frame11.png'), cv2.IMREAD_GRAYSCALE)
  gt = F.read_flo(os.path.join(d, 'flow10.flo'))
  ref = cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)
  rows = [dict(method='opencv DualTVL1 (defaults)', epe=F.endpoint_error(ref, gt),
               ae=F.angular_error(ref, gt), mean_diff_to_opencv=0.0)]
  flows = {}
  for name, budget in (('ours (OpenCV defaults, early stopping)', {}),
                       ('ours (FAST_BUDGET)', F.FAST_BUDGET),
                       ('ours, native engine (OpenCV defaults, early stopping)', None)):
    if budget is None:
      if not F.native.available():
        continue
      flow = F.native.tvl1(a, b)
    else:
      flow = F.tvl1(a.astype(np.float32), b.astype(np.float32), **budget).numpy()
    flows[name] = flow
    rows.append(dict(method=name, epe=F.endpoint_error(flow, gt), ae=F.angular_error(flow, gt),
                     mean_diff_to_opencv=float(np.mean(np.linalg.norm(flow - ref, axis=-1)))))
  for r in rows:
    print(json.dumps(r), flush=True)
  results['accuracy_rubberwhale'] = rows
  if _PICTURE.value:
    ours = flows['ours (OpenCV defaults, early stopping)']
    known = F.valid_mask(gt)
    mmax = float(np.max(np.linalg.norm(gt[known], axis=-1)))
    gap = np.full((gt.shape[0], 8, 3), 255, np.uint8)
    row = np.concatenate([F.flow_to_color(ours, mmax), gap, F.flow_to_color(ref, mmax), gap,
                          F.flow_to_color(gt, mmax)], axis=1)
    # Half resolution keeps the PNG well under 1 MB.
    row = cv2.resize(row, (row.shape[1] // 2, row.shape[0] // 2), interpolation=cv2.INTER_AREA)
    F.save_png(_PICTURE.value, row)


def _real_clips(results):
  """Ours (batch 1, both budgets) against OpenCV on consecutive pairs of real clips, no ground truth."""
  import tensorflow as tf
  import data_pipelines.flow as F
  from data_pipelines.flow import to_gray, tvl1_opencv
  from data_pipelines.video import decode_video
  start, stop = (int(v) for v in _CLIP_FRAMES.value.split(':'))
  rows = []
  for clip in (c for c in _CLIPS.value if c):
    path = os.path.join(_DATA.value, 'videos', clip)
    gray = to_gray(decode_video(path, resize_short_side=256, max_frames=stop).frames[start:stop])
    t = time.perf_counter()
    ref = tvl1_opencv(gray)
    opencv_rate = len(ref) / (time.perf_counter() - t)
    a, b = gray[:-1].astype(np.float32), gray[1:].astype(np.float32)
    for name, budget in (('opencv', {}), ('fast', F.FAST_BUDGET)):
      F.tvl1(a[0], b[0], **budget)  # compile this shape
      t = time.perf_counter()
      out = [F.tvl1(x, y, return_iterations=True, **budget) for x, y in zip(a, b)]
      flows = np.stack([f.numpy() for f, _ in out])
      rate = len(flows) / (time.perf_counter() - t)
      dist = np.linalg.norm(flows - ref, axis=-1)
      row = dict(clip=clip, frames=f'{start}:{stop}', size='x'.join(map(str, gray.shape[1:])),
                 budget=name, batch_size=1, pairs=len(flows),
                 device='GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
                 mean_diff_to_opencv=float(dist.mean()), frac_diff_over_half_px=float((dist > 0.5).mean()),
                 ours_iterations_per_pair=float(np.mean([float(n) for _, n in out])),
                 ours_pairs_per_s=rate, opencv_pairs_per_s=opencv_rate, ratio=rate / opencv_rate)
      print(json.dumps(row), flush=True)
      rows.append(row)
    if F.native.available():
      t = time.perf_counter()
      flows = F.native.tvl1_video(gray)
      rate = len(flows) / (time.perf_counter() - t)
      dist = np.linalg.norm(flows - ref, axis=-1)
      row = dict(clip=clip, frames=f'{start}:{stop}', size='x'.join(map(str, gray.shape[1:])), budget='opencv',
                 engine='native', threads=F.native.default_threads(), pairs=len(flows), device='CPU',
                 mean_diff_to_opencv=float(dist.mean()), frac_diff_over_half_px=float((dist > 0.5).mean()),
                 ours_pairs_per_s=rate, opencv_pairs_per_s=opencv_rate, ratio=rate / opencv_rate)
      print(json.dumps(row), flush=True)
      rows.append(row)
  results['real_clips'] = rows


def _whole_frame_inputs():
  """({name: backend}, [(name, uint8 gray [N, H, W])], RubberWhale's ground truth) for the window and padding
  measurements: both backends; RubberWhale's pair, then the first --window_frames frames of each --clips clip."""
  import cv2
  import data_pipelines.flow as F
  from data_pipelines.flow import to_gray, tvl1_opencv, tvl1_video
  from data_pipelines.video import decode_video
  d = os.path.join(_DATA.value, 'flow', 'middlebury_rubberwhale')
  rubber = np.stack([cv2.imread(os.path.join(d, f), cv2.IMREAD_GRAYSCALE) for f in ('frame10.png', 'frame11.png')])
  inputs = [('RubberWhale', rubber)] + [
      (clip, to_gray(decode_video(os.path.join(_DATA.value, 'videos', clip), resize_short_side=256,
                                  max_frames=_WINDOW_FRAMES.value).frames)) for clip in _CLIPS.value if clip]
  return {'tvl1 (OpenCV)': tvl1_opencv, 'tvl1_tf': tvl1_video}, inputs, F.read_flo(os.path.join(d, 'flow10.flo'))


def _window(results):
  """Lever 3 of issue 15: flow on the center crop plus a margin against flow on the whole frame, inside the crop."""
  import data_pipelines.flow as F
  from data_pipelines.streaming import flow_window
  crop = 224
  backends, inputs, gt = _whole_frame_inputs()
  rows = []
  for clip, gray in inputs:
    h, w = gray.shape[1:]
    whole = flow_window(h, w, crop, -1)
    for backend, fn in backends.items():
      t = time.perf_counter()
      full = whole.crop(fn(gray), crop)
      full_s = time.perf_counter() - t
      for margin in (int(m) for m in _WINDOW_MARGINS.value):
        win = flow_window(h, w, crop, margin)
        t = time.perf_counter()
        ours = win.crop(fn(win.frames(gray)), crop)
        seconds = time.perf_counter() - t
        dist = np.linalg.norm(ours - full, axis=-1)
        row = dict(clip=clip, backend=backend, size=f'{h}x{w}', pairs=len(full), margin=margin,
                   window='x'.join(map(str, win.shape)), mean_diff_to_whole_frame=float(dist.mean()),
                   frac_diff_over_half_px=float((dist > 0.5).mean()), whole_frame_seconds=full_s,
                   window_seconds=seconds)
        if clip == 'RubberWhale':
          g = whole.crop(gt[None], crop)[0]
          row.update(epe_whole_frame=F.endpoint_error(full[0], g), epe_window=F.endpoint_error(ours[0], g))
        print(json.dumps(row), flush=True)
        rows.append(row)
  results['window'] = rows


def _padding(results):
  """Lever 2 of issue 15: whole-frame flow of frames edge-padded to a multiple (shape buckets), cropped back."""
  import data_pipelines.flow as F
  from data_pipelines.flow import centred_padding
  backends, inputs, gt = _whole_frame_inputs()
  rows = []
  for clip, gray in inputs:
    h, w = gray.shape[1:]
    plain = {}
    for backend, fn in backends.items():
      t = time.perf_counter()
      plain[backend] = fn(gray)
      plain_s = time.perf_counter() - t
      for multiple in (int(m) for m in _PAD_MULTIPLES.value):
        top, bottom, left, right = centred_padding(h, w, multiple)
        t = time.perf_counter()
        padded = fn(np.pad(gray, ((0, 0), (top, bottom), (left, right)), mode='edge'))[:, top:top + h, left:left + w]
        seconds = time.perf_counter() - t
        dist = np.linalg.norm(padded - plain[backend], axis=-1)
        y, x = (h - 224) // 2, (w - 224) // 2
        row = dict(clip=clip, backend=backend, size=f'{h}x{w}', pairs=len(padded), multiple=multiple,
                   padded='x'.join(map(str, (h + top + bottom, w + left + right))),
                   mean_diff_to_unpadded=float(dist.mean()), frac_diff_over_half_px=float((dist > 0.5).mean()),
                   mean_diff_in_center_crop=float(dist[:, y:y + 224, x:x + 224].mean()),
                   unpadded_seconds=plain_s, padded_seconds=seconds)
        if clip == 'RubberWhale':
          row.update(epe_unpadded=F.endpoint_error(plain[backend][0], gt), epe_padded=F.endpoint_error(padded[0], gt))
        print(json.dumps(row), flush=True)
        rows.append(row)
    dist = np.linalg.norm(plain['tvl1_tf'] - plain['tvl1 (OpenCV)'], axis=-1)
    row = dict(clip=clip, size=f'{h}x{w}', pairs=len(dist), unpadded_tvl1_tf_mean_diff_to_opencv=float(dist.mean()),
               frac_diff_over_half_px=float((dist > 0.5).mean()))  # the scale to read the padding change on
    print(json.dumps(row), flush=True)
    rows.append(row)
  results['padding'] = rows


def _warm_start(results):
  """Lever 4 of issue 15: consecutive pairs warm-started from the previous pair's flow, batch 1, in order."""
  import data_pipelines.flow as F
  from data_pipelines.flow import to_gray, tvl1_opencv
  from data_pipelines.video import decode_video
  rows = []
  for clip in (c for c in _CLIPS.value if c):
    frames = decode_video(os.path.join(_DATA.value, 'videos', clip), resize_short_side=256,
                          max_frames=_WARM_FRAMES.value).frames
    gray = to_gray(frames)
    h, w = gray.shape[1:]
    y, x = (h - 224) // 2, (w - 224) // 2
    ref = tvl1_opencv(gray)
    g = gray.astype(np.float32)
    cold, warm, it_cold, it_warm, prev = [], [], [], [], None
    for i in range(len(g) - 1):
      f, n = F.tvl1(g[i], g[i + 1], return_iterations=True)
      cold.append(f.numpy())
      it_cold.append(float(n))
      if prev is not None:
        f, n = F.tvl1(g[i], g[i + 1], initial_flow=prev, use_initial_flow=True, return_iterations=True)
        it_warm.append(float(n))
      prev = f.numpy()
      warm.append(prev)

    def dist(a, b):
      return float(np.linalg.norm((np.stack(a) - b)[:, y:y + 224, x:x + 224], axis=-1).mean())

    row = dict(clip=clip, size=f'{h}x{w}', pairs=len(cold), iterations_per_pair_cold=float(np.mean(it_cold[1:])),
               iterations_per_pair_warm=float(np.mean(it_warm)), cold_to_opencv=dist(cold, ref),
               warm_to_opencv=dist(warm, ref), warm_to_cold=dist(warm, np.stack(cold)))
    print(json.dumps(row), flush=True)
    rows.append(row)
  results['warm_start'] = rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  results = dict(machine=_machine(), speed=[])
  _accuracy(results)
  _speed(results)
  if _REAL_CLIPS.value:
    _real_clips(results)
  if _WARM_FRAMES.value:
    _warm_start(results)
  if _WINDOW_MARGINS.value:
    _window(results)
  if _PAD_MULTIPLES.value:
    _padding(results)
  out = _OUTPUT.value
  atomic_write_json(out, results)
  print(f'wrote {out}')


if __name__ == '__main__':
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  app.run(main)
