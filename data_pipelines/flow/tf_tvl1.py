"""Duality-based TV-L1 optical flow in TensorFlow ops, batched over frame pairs.

Implements the Zach-Pock-Bischof TV-L1 scheme (Zach, Pock & Bischof, DAGM 2007)
as described by Sanchez, Meinhardt-Llopis & Facciolo, "TV-L1 Optical Flow
Estimation", IPOL 2013 (Algorithm 1 and 2), with the choices OpenCV's
`cv::optflow::DualTVL1OpticalFlow` (opencv_contrib, modules/optflow) makes, so
the two are comparable parameter for parameter:

* pyramid: `nscales` levels, each the previous one resized by `scale_step`
  with bilinear interpolation (no pre-smoothing); coarsening stops at 16 px;
* per level: the dual variables restart at zero; `warps` warpings of the second
  frame and of its centred-difference gradients with bicubic (Keys a = -0.75)
  or bilinear interpolation, zero outside the image like `cv::remap`'s default
  `BORDER_CONSTANT`;
* per warping: up to `outer_iterations` rounds of a 5x5 (`median_filtering`)
  median filter of the flow followed by up to `inner_iterations` iterations of
  thresholding (TH, eq. 14 of the IPOL paper), the primal update
  u = v + theta div(p) and the dual projection
  p = (p + tau/theta grad(u)) / (1 + tau/theta |grad(u)|);
* early stopping: a warping ends once sum(|u^{n+1} - u^n|^2) <= epsilon^2 * area
  (decided per pair of the batch), as OpenCV does;
* the flow is upsampled bilinearly between levels and divided by `scale_step`;
* `gamma` > 0 adds OpenCV's illumination term: a third primal field u3 (an
  additive brightness change, rho = ... + gamma u3) with its own TV dual, not
  median-filtered, starting at zero on the coarsest level and upsampled
  without rescaling; its step counts in the stopping test.

Differences from OpenCV (see docs/flow.md): interpolation uses exact float
coordinates (`cv::remap` quantizes them to 1/32 px); the level sizes of
`tf.image.resize` use the exact size ratio.

Shapes: frames are float32 [B, H, W] on the 0..255 intensity scale; flow is
float32 [B, H, W, 2] holding (u, v) = (dx, dy) in pixels, frame_a(x) ~
frame_b(x + flow(x)).
"""

from concurrent import futures
import contextlib
import os
import re
import sys
import threading
import time
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

# The parameters and the pieces both engines share (no TensorFlow there); `data_pipelines.flow` exports them.
from data_pipelines.flow.params import TVL1Params, make_params, pyramid_sizes, selection_network

_FLT_EPSILON = float(np.finfo(np.float32).eps)
_CUBIC_A = -0.75  # Keys kernel parameter used by OpenCV's INTER_CUBIC.


# ----------------------------------------------------------------------------
# Finite differences on [B, H, W] tensors.


def _shift_right(x, axis):
  """x[i - 1] along `axis` (2: columns, 1: rows), 0 for i = 0."""
  if axis == 2:
    return tf.pad(x[:, :, :-1], [[0, 0], [0, 0], [1, 0]])
  return tf.pad(x[:, :-1, :], [[0, 0], [1, 0], [0, 0]])


def _forward_gradient(u):
  """Forward differences, 0 on the last column / row (OpenCV forwardGradient)."""
  ux = tf.pad(u[:, :, 1:] - u[:, :, :-1], [[0, 0], [0, 0], [0, 1]])
  uy = tf.pad(u[:, 1:, :] - u[:, :-1, :], [[0, 0], [0, 1], [0, 0]])
  return ux, uy


def _divergence(p1, p2):
  """Backward-difference divergence, the negative adjoint of _forward_gradient."""
  return (p1 - _shift_right(p1, 2)) + (p2 - _shift_right(p2, 1))


def _replicate_pad(x, r):
  """Pads [B, H, W] by r pixels on each side, repeating the edge pixels."""
  top = tf.repeat(x[:, :1, :], r, axis=1)
  bottom = tf.repeat(x[:, -1:, :], r, axis=1)
  x = tf.concat([top, x, bottom], axis=1)
  left = tf.repeat(x[:, :, :1], r, axis=2)
  right = tf.repeat(x[:, :, -1:], r, axis=2)
  return tf.concat([left, x, right], axis=2)


def centered_gradient(img):
  """Centred differences; one-sided halves on the border (OpenCV centeredGradient).

  Args:
    img: float32 [B, H, W].

  Returns:
    (dx, dy), each float32 [B, H, W].
  """
  p = _replicate_pad(img, 1)
  dx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
  dy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
  return dx, dy


def median_filter(x, ksize: int = 5):
  """ksize x ksize median of [B, H, W] with replicated borders (cv::medianBlur).

  Uses a pruned min/max selection network on the ksize^2 shifted views: exact,
  element-wise (fuses under XLA) and much faster than sorting on CPU.
  """
  r = ksize // 2
  h, w = x.shape[1], x.shape[2]
  p = _replicate_pad(x, r)
  wires = [p[:, i:i + h, j:j + w] for i in range(ksize) for j in range(ksize)]
  m = ksize * ksize
  for i, j, need_min, need_max in selection_network(m, m // 2):
    a, b = wires[i], wires[j]
    if need_min:
      wires[i] = tf.minimum(a, b)
    if need_max:
      wires[j] = tf.maximum(a, b)
  return wires[m // 2]


# ----------------------------------------------------------------------------
# Warping.


def _cubic_weights(t):
  """Keys cubic weights of the taps at offsets -1, 0, 1, 2 for fraction t in [0, 1)."""
  a = _CUBIC_A
  t1 = t + 1.0
  w0 = ((a * t1 - 5.0 * a) * t1 + 8.0 * a) * t1 - 4.0 * a
  w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
  s = 1.0 - t
  w2 = ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0
  w3 = 1.0 - w0 - w1 - w2
  return [w0, w1, w2, w3]


def warp(images, flow_u, flow_v, interpolation='bicubic', border='constant'):
  """Samples images at (x + u, y + v), like cv::remap with INTER_CUBIC / INTER_LINEAR.

  Args:
    images: float32 [B, H, W, C].
    flow_u, flow_v: float32 [B, H, W] displacements in pixels.
    interpolation: 'bicubic' (Keys, a = -0.75) or 'bilinear'.
    border: 'constant' (taps outside the image read 0, cv::BORDER_CONSTANT) or
      'replicate' (cv::BORDER_REPLICATE).

  Returns:
    float32 [B, H, W, C].
  """
  shape = tf.shape(images)
  b, h, w, c = shape[0], images.shape[1], images.shape[2], images.shape[3]
  xs = tf.range(w, dtype=tf.float32)[tf.newaxis, tf.newaxis, :] + flow_u
  ys = tf.range(h, dtype=tf.float32)[tf.newaxis, :, tf.newaxis] + flow_v
  x0 = tf.floor(xs)
  y0 = tf.floor(ys)
  tx = xs - x0
  ty = ys - y0
  x0 = tf.cast(x0, tf.int32)
  y0 = tf.cast(y0, tf.int32)
  if interpolation == 'bicubic':
    offsets = (-1, 0, 1, 2)
    wx, wy = _cubic_weights(tx), _cubic_weights(ty)
  else:
    offsets = (0, 1)
    wx, wy = [1.0 - tx, tx], [1.0 - ty, ty]
  flat = tf.reshape(images, [-1, c])
  base = (tf.range(b, dtype=tf.int32) * (h * w))[:, tf.newaxis, tf.newaxis]
  # Accumulated with subtractions: grappler rewrites chains of Adds into AddN and
  # then, inside nested while loops, into a TemporaryVariable accumulator that
  # fails on the second call (AlreadyExistsError). Same reason in the iteration.
  acc = None
  for i, dy in enumerate(offsets):
    yy = y0 + dy
    y_ok = (yy >= 0) & (yy < h)
    yy = tf.clip_by_value(yy, 0, h - 1)
    for j, dx in enumerate(offsets):
      xx = x0 + dx
      weight = wy[i] * wx[j]
      if border == 'constant':
        ok = y_ok & (xx >= 0) & (xx < w)
        weight = tf.where(ok, weight, tf.zeros_like(weight))
      xx = tf.clip_by_value(xx, 0, w - 1)
      vals = tf.gather(flat, base + yy * w + xx)  # [B, H, W, C]
      term = (-weight)[..., tf.newaxis] * vals
      acc = -term if acc is None else acc - term
  return acc


def _resize(x, size):
  """Bilinear resize of [B, H, W] (half-pixel centres, no antialiasing, like cv::resize)."""
  if tuple(x.shape[1:3]) == tuple(size):
    return x
  return tf.image.resize(x[..., tf.newaxis], size, method='bilinear', antialias=False)[..., 0]


# ----------------------------------------------------------------------------
# One pyramid level.


def _solve_level(i0, i1, us, p: TVL1Params):
  """Runs `warps` warpings with the inner/outer iterations at one level.

  Args:
    i0, i1: float32 [B, h, w] frames at this level.
    us: initial primal fields, each float32 [B, h, w]: (u1, u2), or (u1, u2, u3)
      with the illumination field u3 when gamma != 0.
    p: parameters.

  Returns:
    The refined fields (same structure as `us`), and float32 [] the total
    iterations run, summed over the batch.
  """
  l_t = float(p.lambda_ * p.theta)
  taut = float(p.tau / p.theta)
  neg_theta = -float(p.theta)
  # OpenCV: sum |du|^2 <= epsilon^2 * area, i.e. mean |du|^2 <= epsilon^2.
  eps2 = float(p.epsilon * p.epsilon)
  total = p.inner_iterations * p.outer_iterations
  inner = p.inner_iterations
  median = p.median_filtering > 1
  k = len(us)  # 2 flow components, + u3 with gamma
  i1x, i1y = centered_gradient(i1)
  stack = tf.stack([i1, i1x, i1y], axis=-1)
  zeros = tf.zeros_like(i0)

  def iterate(us, ps, coefs, neg_coefs, inv_grad, rho_c):
    # coefs: the data term's derivative in each field, (Ix, Iy) or (Ix, Iy, gamma).
    # Thresholding step TH: v = u + clip(-rho/|grad I1w|^2, -l_t, l_t) coefs; like
    # OpenCV, the denominator leaves out gamma^2.
    rho = rho_c + coefs[0] * us[0]
    for neg_c, u in zip(neg_coefs[1:], us[1:]):
      rho = rho - neg_c * u
    step = tf.clip_by_value(-rho * inv_grad, -l_t, l_t)
    new_us, new_ps = [], []
    for i, (u, c) in enumerate(zip(us, coefs)):
      v = u + step * c
      # Primal step.
      nu = v - neg_theta * _divergence(ps[2 * i], ps[2 * i + 1])
      # Dual step with projection.
      ux, uy = _forward_gradient(nu)
      ng = 1.0 + taut * tf.sqrt(ux * ux + uy * uy)
      new_us.append(nu)
      new_ps += [(ps[2 * i] + taut * ux) / ng, (ps[2 * i + 1] + taut * uy) / ng]
    return tuple(new_us), tuple(new_ps)

  def filtered(us, mask=None):
    # The median filters the flow only, never u3 (OpenCV); both components in one call (one network in the
    # graph, not two: the graph traces faster).
    out = tf.split(median_filter(tf.concat(us[:2], 0), p.median_filtering), 2)
    if mask is not None:
      out = [tf.where(mask, f, u) for f, u in zip(out, us[:2])]
    return tuple(out) + tuple(us[2:])

  def warp_body(n_warp, us, ps, count):
    u1, u2 = us[0], us[1]
    warped = warp(stack, u1, u2, p.interpolation, p.border)
    i1w, ix, iy = warped[..., 0], warped[..., 1], warped[..., 2]
    grad = ix * ix + iy * iy
    # grad <= FLT_EPSILON: OpenCV leaves u unchanged when |rho| is small; with the
    # clipped form the step is then at most l_t * |grad I| < 1e-4 px.
    inv_grad = 1.0 / tf.maximum(grad, _FLT_EPSILON)
    rho_c = i1w - ix * u1 - iy * u2 - i0
    coefs = (ix, iy) + ((float(p.gamma),) if k == 3 else ())
    neg_coefs = tuple(-c for c in coefs)
    # Loops as OpenCV nests them: `outer_iterations` rounds of (median, up to `inner_iterations` iterations),
    # both ending on the stopping test.  (One flat loop with a per-iteration branch for the median, as before,
    # gave the same flow bitwise and ran 2-20% slower: a conditional and copies in every iteration.)  A batch
    # of one pair (the CPU default) needs no per-pair masks: its loop simply stops.
    single = i0.shape[0] == 1

    if not p.early_stopping:
      def inner_body(n, us, ps):
        return (n + 1,) + iterate(us, ps, coefs, neg_coefs, inv_grad, rho_c)

      def outer_body(n, us, ps):
        if median:
          us = filtered(us)
        _, us, ps = tf.while_loop(lambda m, *_: m < inner, inner_body, (tf.constant(0), us, ps))
        return n + 1, us, ps

      _, us, ps = tf.while_loop(lambda n, *_: n < p.outer_iterations, outer_body, (tf.constant(0), us, ps))
      count = count + tf.cast(total * tf.shape(u1)[0], tf.float32)
      return n_warp + 1, us, ps, count

    def sq_change(new_us, us):
      diffs = [a - b for a, b in zip(new_us, us)]
      sq = diffs[0] * diffs[0] + diffs[1] * diffs[1]
      if k == 3:
        sq = sq + diffs[2] * diffs[2]
      return tf.reduce_mean(sq, axis=[1, 2])

    def running(n, limit, err):
      return (n < limit) & tf.reduce_any(err > eps2)

    if single:
      def inner_es(n, us, ps, err, count):
        new_us, new_ps = iterate(us, ps, coefs, neg_coefs, inv_grad, rho_c)
        return n + 1, new_us, new_ps, sq_change(new_us, us), count + 1.0
    else:
      def inner_es(n, us, ps, err, count):
        active = err > eps2  # [B]
        act3 = active[:, tf.newaxis, tf.newaxis]
        new_us, new_ps = iterate(us, ps, coefs, neg_coefs, inv_grad, rho_c)
        new_err = sq_change(new_us, us)
        count = count + tf.reduce_sum(tf.cast(active, tf.float32))
        new, old = new_us + new_ps, us + ps
        # Converged pairs keep their state; while every pair is active the selects are skipped.
        state = tf.cond(tf.reduce_all(active), lambda: new,
                        lambda: tuple(tf.where(act3, a, b) for a, b in zip(new, old)))
        return n + 1, state[:k], state[k:], tf.where(active, new_err, err), count

    def outer_es(n, us, ps, err, count):
      if median:
        us = filtered(us, None if single else (err > eps2)[:, tf.newaxis, tf.newaxis])
      _, us, ps, err, count = tf.while_loop(lambda m, us, ps, err, c: running(m, inner, err), inner_es,
                                            (tf.constant(0), us, ps, err, count))
      return n + 1, us, ps, err, count

    err0 = tf.fill(tf.shape(u1)[:1], tf.constant(np.inf, tf.float32))
    _, us, ps, _, count = tf.while_loop(lambda n, us, ps, err, c: running(n, p.outer_iterations, err), outer_es,
                                        (tf.constant(0), us, ps, err0, count))
    return n_warp + 1, us, ps, count

  # The dual variables restart at zero on every level (OpenCV procOneScale).
  _, us, _, count = tf.while_loop(
      lambda n, *_: n < p.warps, warp_body,
      (tf.constant(0), tuple(us), (zeros,) * (2 * k), tf.constant(0.0)))
  return us, count


def tvl1_graph(frames_a, frames_b, params: TVL1Params, initial_flow=None) -> Tuple[tf.Tensor, tf.Tensor]:
  """The TV-L1 computation as plain TF ops (callable inside tf.function / tf.data).

  Args:
    frames_a, frames_b: float32 [B, H, W] with static H and W, 0..255 scale.
    params: validated TVL1Params.
    initial_flow: optional float32 [B, H, W, 2] (used when params.use_initial_flow).

  Returns:
    flow float32 [B, H, W, 2]; float32 [] number of iterations run summed over
    levels, warpings and pairs of the batch.
  """
  h, w = frames_a.shape[1], frames_a.shape[2]
  if h is None or w is None:
    raise ValueError('tvl1 needs static frame height and width. Received: '
                     f'shape={frames_a.shape}')
  sizes = pyramid_sizes(h, w, params.nscales, params.scale_step)
  i0s, i1s = [frames_a], [frames_b]
  for size in sizes[1:]:
    # Each level is resized from the previous one, as OpenCV does.
    i0s.append(_resize(i0s[-1], size))
    i1s.append(_resize(i1s[-1], size))
  if params.use_initial_flow:
    if initial_flow is None:
      raise ValueError('use_initial_flow=True needs initial_flow.')
    us = [(initial_flow[..., 0], initial_flow[..., 1])]
    for size in sizes[1:]:
      us.append((_resize(us[-1][0], size) * params.scale_step,
                 _resize(us[-1][1], size) * params.scale_step))
    u1, u2 = us[-1]
  else:
    u1 = tf.zeros_like(i0s[-1])
    u2 = tf.zeros_like(i0s[-1])
  us = (u1, u2)
  if params.gamma != 0.0:
    us += (tf.zeros_like(i0s[-1]),)  # u3 starts at zero on the coarsest level.
  count = tf.constant(0.0)
  for s in range(len(sizes) - 1, -1, -1):
    us, c = _solve_level(i0s[s], i1s[s], us, params)
    count += c
    if s > 0:
      # The flow is rescaled to the finer grid; u3 (an intensity) is not.
      scales = (1.0 / params.scale_step,) * 2 + (1.0,) * (len(us) - 2)
      us = tuple(_resize(u, sizes[s - 1]) * f if f != 1.0 else _resize(u, sizes[s - 1])
                 for u, f in zip(us, scales))
  return tf.stack(us[:2], axis=-1), count


_COMPILED = {}
_PREPARED = set()  # `_program_key`s of the programs this process has traced and compiled
_PENDING = {}  # the same keys: futures of the preparations `prepare_tvl1` runs in the background


def _program_key(params: TVL1Params, jit: bool, shape, initial_flow: bool = False):
  """What one traced and compiled TV-L1 program serves: parameters, XLA or not, [B, H, W], initial flow."""
  return (params, jit, tuple(shape), initial_flow)


# TensorFlow 2.21 loads a program from XLA's persistent cache with an error-level line per tuning flag of the
# compiling machine that it does not list for the host, "Target machine feature +prefer-no-scatter is not
# supported on the host machine ... could lead to execution errors such as SIGILL", on the very machine that
# compiled it.  These two are tuning preferences, not instruction sets; a real missing feature still shows
# (and `i3d_tf.home` keeps one cache per kind of CPU).  Before that it tries to read each cache entry as text
# and says "Error parsing text-format tensorflow.XlaSerializedCacheEntry" before reading it as the binary
# proto it is (the program then loads: 7-10 s against 15-21 s to compile, measured).  The first XLA compilation
# of a process also logs four information lines from C++ (the XLA service and its "StreamExecutor" device,
# "disabling MLIR crash reproducer", "Compiled cluster using XLA!") that say nothing a user can act on.
_BENIGN_STDERR = re.compile(r'cpu_aot_loader\.cc.*Target machine feature \+prefer-no-(scatter|gather) is not\s+supported'
                            r'|text_format\.cc:\d+\] Error parsing text-format tensorflow\.XlaSerializedCacheEntry'
                            r'|service\.cc:\d+\] (XLA service 0x[0-9a-f]+ initialized|  StreamExecutor )'
                            r'|dump_mlir_util\.cc:\d+\] disabling MLIR crash reproducer'
                            r'|device_compiler\.h:\d+\] Compiled cluster using XLA!')


_FILTER_LOCK = threading.Lock()
_FILTER = {}  # while any `_benign_stderr_dropped` block runs: {'blocks': n, 'saved': fd, 'reader': thread}


def _forward(read_end: int, saved: int) -> None:
  """The filter's reader: every line but `_BENIGN_STDERR`'s from the pipe to `saved`, as it comes (one write
  of a C++ log line, under PIPE_BUF, arrives whole in one read); closes both ends when the pipe closes."""
  try:
    while True:
      chunk = os.read(read_end, 1 << 16)
      if not chunk:
        break
      for piece in chunk.splitlines(keepends=True):
        if not _BENIGN_STDERR.search(piece.decode('utf-8', 'replace')):
          os.write(saved, piece)
  finally:
    os.close(read_end)
    os.close(saved)


@contextlib.contextmanager
def _benign_stderr_dropped():
  """Runs the block with file descriptor 2 (C++ logging included) passed through a filter that drops
  `_BENIGN_STDERR`'s lines and forwards every other line as it comes, so a background preparation
  (`prepare_tvl1`) holds back no message of the rest of the program.  Blocks in several threads share one
  filter (fd 2 belongs to the process); the last one to end restores fd 2."""
  with _FILTER_LOCK:
    if not _FILTER:
      sys.stderr.flush()
      saved = os.dup(2)
      try:
        read_end, write_end = os.pipe()
      except OSError:
        os.close(saved)
        raise
      try:  # Linux: room for 1 MiB of log lines, so a writer holding the GIL never waits on the reader
        import fcntl  # pylint: disable=g-import-not-at-top
        fcntl.fcntl(write_end, getattr(fcntl, 'F_SETPIPE_SZ', 1031), 1 << 20)
      except (ImportError, OSError):
        pass
      reader = threading.Thread(target=_forward, args=(read_end, saved), name='tvl1_tf stderr filter', daemon=True)
      try:
        reader.start()
      except BaseException:
        for fd in (read_end, write_end, saved):
          os.close(fd)
        raise
      os.dup2(write_end, 2)
      os.close(write_end)
      _FILTER.update(blocks=0, saved=saved, reader=reader)
    _FILTER['blocks'] += 1
  try:
    yield
  finally:
    with _FILTER_LOCK:
      _FILTER['blocks'] -= 1
      if not _FILTER['blocks']:
        _give_back_stderr()
        _FILTER.clear()


def _give_back_stderr() -> None:
  """Points fd 2 at what it was before the filter (`_FILTER_LOCK` held): that closes the pipe's last write
  end, so the reader forwards what is left, ends and closes `saved` (a child process that inherited the pipe
  keeps it open: its lines are still forwarded until it exits)."""
  sys.stderr.flush()
  os.dup2(_FILTER['saved'], 2)
  _FILTER['reader'].join(timeout=5)


def _announce(message: str) -> None:
  """A line on stderr that does not break a tqdm progress bar."""
  try:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    tqdm.write(message, file=sys.stderr)
  except ImportError:
    print(message, file=sys.stderr, flush=True)


def _compiled(params: TVL1Params, jit_compile: bool):
  """A cached tf.function computing (flow, iterations) for one parameter set."""
  key = (params, jit_compile)
  fn = _COMPILED.get(key)
  if fn is None:
    # autograph=False: the graph is explicit tf.while_loop / tf.cond (the Python loops over levels unroll on
    # purpose), and converting it doubled the tracing (6.5 s -> 3.0 s at 256x352, bitwise the same flow).
    fn = tf.function(lambda a, b, f: tvl1_graph(a, b, params, f), jit_compile=jit_compile, autograph=False)
    _COMPILED[key] = fn
  return fn


def _default_jit() -> bool:
  # XLA fuses the ~40 element-wise ops of an iteration and the 113 min/max of
  # the median into a few loops: 2-3x faster per iteration on CPU than the
  # op-by-op executor (docs/flow.md), and the usual choice on GPU.
  return True


def tvl1(frames_a, frames_b, initial_flow=None, jit_compile: Optional[bool] = None,
         return_iterations: bool = False, **params):
  """TV-L1 optical flow from frames_a to frames_b.

  Works eagerly (compiled and cached per parameter set and shape; the first
  call of each says so on stderr, with its time), inside a `tf.function` and
  inside `tf.data` (`Dataset.map`); for those two, the frame height and width
  must be static.

  Args:
    frames_a, frames_b: float32 [B, H, W] grayscale frames on the 0..255 scale
      (uint8 is converted). A single pair [H, W] is also accepted.
    initial_flow: optional [B, H, W, 2] starting flow (with use_initial_flow=True).
    jit_compile: compile with XLA (eager calls only); None: on.
    return_iterations: also return the iteration count summed over the batch.
    **params: TVL1Params fields (tau, lambda_, theta, nscales, warps, epsilon,
      inner_iterations, outer_iterations, scale_step, gamma, median_filtering,
      use_initial_flow, early_stopping, interpolation, border).

  Returns:
    float32 [B, H, W, 2] flow (u, v) in pixels ([H, W, 2] for a single pair);
    with return_iterations, (flow, iterations).

  Raises:
    ValueError: on shape mismatch or bad parameters.
  """
  p = make_params(**params)
  a = tf.convert_to_tensor(frames_a)
  b = tf.convert_to_tensor(frames_b)
  if a.dtype != tf.float32:
    a = tf.cast(a, tf.float32)
  if b.dtype != tf.float32:
    b = tf.cast(b, tf.float32)
  single = a.shape.rank == 2
  if single:
    a, b = a[tf.newaxis], b[tf.newaxis]
    if initial_flow is not None:
      initial_flow = tf.convert_to_tensor(initial_flow, tf.float32)[tf.newaxis]
  if a.shape.rank != 3 or a.shape != b.shape:
    raise ValueError('frames_a and frames_b must both be [B, H, W] (or [H, W]). Received: '
                     f'frames_a.shape={a.shape}, frames_b.shape={b.shape}')
  if min(a.shape[1] or 3, a.shape[2] or 3) < 3:
    raise ValueError(f'frames must be at least 3x3. Received: shape={a.shape}')
  if p.use_initial_flow and initial_flow is None:
    raise ValueError('use_initial_flow=True needs initial_flow.')
  jit = _default_jit() if jit_compile is None else bool(jit_compile)
  if tf.executing_eagerly():
    init = tf.convert_to_tensor(initial_flow, tf.float32) if p.use_initial_flow else None
    key = _program_key(p, jit, a.shape, init is not None)
    pending = _PENDING.get(key)
    if pending is not None:  # `prepare_tvl1` started it: wait (a failed one is prepared again below, raising there)
      futures.wait([pending])
      _PENDING.pop(key, None)
    new = key not in _PREPARED
    if new:  # a stall of 10-30 s on CPU: said, not silent (XLA's persistent cache, `i3d_tf.home`, shortens it)
      _announce(f'tvl1_tf: {"tracing and compiling (XLA; or loading from its cache)" if jit else "tracing"} '
                f'TV-L1 for {a.shape[0]} pair(s) of {a.shape[1]}x{a.shape[2]} (once per frame size, parameters '
                'and process) ...')
      start = time.perf_counter()
      with _benign_stderr_dropped():
        flow, count = _compiled(p, jit)(a, b, init)
    else:
      flow, count = _compiled(p, jit)(a, b, init)
    if new:
      _PREPARED.add(key)
      _announce(f'tvl1_tf: {a.shape[1]}x{a.shape[2]} ready in {time.perf_counter() - start:.1f} s (first batch '
                'included)')
  else:
    flow, count = tvl1_graph(a, b, p, initial_flow)
  if single:
    flow = flow[0]
  return (flow, count) if return_iterations else flow


def prepare_tvl1(height: int, width: int, batch_size: Optional[int] = None, jit_compile: Optional[bool] = None,
                 **params) -> bool:
  """Gets `tvl1` ready for batches of `batch_size` pairs of `height` x `width` ahead of its first call.

  Traces the solver now, in the calling thread, then compiles it (or loads it from XLA's persistent cache)
  and runs it once on black frames in a background thread while the caller goes on: XLA releases the GIL, so
  `extract_features` loads the networks meanwhile (issue 15).  Tracing stays in the calling thread because
  the order in which a process traces decides whether XLA's cache finds its programs (docs/flow.md); nothing
  else may trace at the same time.  The first `tvl1` / `tvl1_video` call of that shape waits for the
  preparation; if it failed (said on stderr at once), that call prepares again and raises the error.  Like a
  first call it announces itself and its end on stderr.  A process that ends meanwhile waits for the compilation
  (up to its 10-20 s on 2 CPU cores, 2-4 s from the cache) unless it abandons it (`abandon_preparations`, as
  `i3d_tf.cli.run` does however a binary ends).

  Args:
    height, width: the frame size in pixels (at least 3 each), as `tvl1_video` will see it.
    batch_size: pairs per call (None: `default_batch_size()`, the `tvl1_video` default).
    jit_compile: see `tvl1`.
    **params: see `tvl1`.

  Returns:
    True when a preparation started; False when this shape was prepared or started already.

  Raises:
    ValueError: bad parameters (`use_initial_flow` among them), a batch size < 1 or frames smaller than 3x3.
  """
  p = make_params(**params)
  if p.use_initial_flow:
    raise ValueError('prepare_tvl1 prepares calls without an initial flow: leave use_initial_flow off')
  bs = default_batch_size() if batch_size is None else int(batch_size)
  if bs < 1 or min(height, width) < 3:
    raise ValueError(f'batch_size must be >= 1 and frames at least 3x3. Received: batch_size={bs}, '
                     f'height={height}, width={width}')
  jit = _default_jit() if jit_compile is None else bool(jit_compile)
  key = _program_key(p, jit, (bs, height, width))
  if key in _PREPARED or key in _PENDING:
    return False
  _announce(f'tvl1_tf: tracing TV-L1 for {bs} pair(s) of {height}x{width}, then '
            f'{"compiling it (XLA; or loading it from its cache)" if jit else "its first run"} in the background '
            '(once per frame size, parameters and process) ...')
  start = time.perf_counter()
  fn = _compiled(p, jit)
  spec = tf.TensorSpec([bs, height, width], tf.float32)
  with _benign_stderr_dropped():
    fn.get_concrete_function(spec, spec, None)
  black = tf.zeros([bs, height, width], tf.float32)

  def run():
    try:
      with _benign_stderr_dropped():
        fn(black, black, None)
    except Exception as e:  # said now; the first call of this shape prepares again and raises it
      _announce(f'tvl1_tf: preparing {height}x{width} in the background failed ({type(e).__name__}: '
                f'{str(e).strip().splitlines()[0] if str(e).strip() else ""}); its first call tries again')
      raise
    _PREPARED.add(key)
    _announce(f'tvl1_tf: {height}x{width} ready in {time.perf_counter() - start:.1f} s (prepared in the background)')

  pool = futures.ThreadPoolExecutor(1, thread_name_prefix='tvl1_tf prepare')
  _PENDING[key] = pool.submit(run)
  pool.shutdown(wait=False)
  return True


def abandon_preparations() -> bool:
  """For a process that is about to end (an error, Ctrl-C, its work done): whether a background preparation
  (`prepare_tvl1`) is still running; if so, file descriptor 2 is given back first, with every line written
  so far forwarded, so the caller can end the process at once (`os._exit`) instead of waiting up to 20 s for
  the compilation (`i3d_tf.cli.run` does).  After True the process must end: the filter is torn down under
  the running preparation."""
  if not any(not f.done() for f in list(_PENDING.values())):
    return False
  with _FILTER_LOCK:
    if _FILTER:
      _give_back_stderr()
  return True


def default_batch_size() -> int:
  """Pairs per call for `tvl1_video`: 1 without a GPU, 8 with one.

  On the 2-core CPU batch 1 was the fastest (docs/flow.md): with early stopping
  a batch runs as long as its slowest pair, and on consecutive pairs of a real
  clip batch 1 ran 1.9-2.7x faster than batch 8. GPUs need batches to fill up.
  """
  return 8 if tf.config.list_physical_devices('GPU') else 1


def default_concurrent_calls() -> int:
  """Batches solved at once by `tvl1_video`: 1 with a GPU, else 2 (CPU; measured in docs/flow.md).

  On the 2-core CPU a batch-1 call keeps about one core busy; two concurrent calls (threads: TensorFlow
  releases the GIL while it runs) use both.
  """
  return 1 if tf.config.list_physical_devices('GPU') else 2


def tvl1_video(gray_frames, batch_size: Optional[int] = None, jit_compile: Optional[bool] = None,
               concurrent_calls: Optional[int] = None, **params) -> np.ndarray:
  """Flow between consecutive frames i -> i + 1 of a grayscale video.

  The pluggable backend of the data pipeline's `--flow=tvl1_tf`: no truncation
  or quantization here.

  Args:
    gray_frames: uint8 or float [N, H, W], 0..255 scale.
    batch_size: pairs per call (None: `default_batch_size()`); the last batch is
      padded to this size so one compiled graph serves the whole video.
    jit_compile: see `tvl1`.
    concurrent_calls: batches solved at once, in threads (None: `default_concurrent_calls()`); the
      first batch of a shape this process has not solved yet runs alone (it compiles).  The result does not
      depend on it.
    **params: see `tvl1`.

  Returns:
    float32 np.ndarray [N - 1, H, W, 2].

  Raises:
    ValueError: on a bad shape or batch size.
  """
  frames = np.asarray(gray_frames)
  if frames.ndim != 3:
    raise ValueError(f'gray_frames must be [N, H, W]. Received: shape={frames.shape}')
  if batch_size is None:
    batch_size = default_batch_size()
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1. Received: batch_size={batch_size}')
  if concurrent_calls is None:
    concurrent_calls = default_concurrent_calls()
  if concurrent_calls < 1:
    raise ValueError(f'concurrent_calls must be >= 1. Received: concurrent_calls={concurrent_calls}')
  n = frames.shape[0]
  h, w = frames.shape[1:]
  if n < 2:
    return np.zeros((0, h, w, 2), np.float32)
  frames = frames.astype(np.float32, copy=False)
  bs = min(batch_size, n - 1)
  out = np.empty((n - 1, h, w, 2), np.float32)

  def solve(start):
    stop = min(start + bs, n - 1)
    a = frames[start:stop]
    b = frames[start + 1:stop + 1]
    if stop - start < bs:  # pad with copies of the last pair (results discarded)
      pad = bs - (stop - start)
      a = np.concatenate([a, np.repeat(a[-1:], pad, 0)])
      b = np.concatenate([b, np.repeat(b[-1:], pad, 0)])
    flow = tvl1(a, b, jit_compile=jit_compile, **params)
    out[start:stop] = flow.numpy()[:stop - start]

  starts = list(range(0, n - 1, bs))
  jit = _default_jit() if jit_compile is None else bool(jit_compile)
  if _program_key(make_params(**params), jit, (bs, h, w)) not in _PREPARED:
    solve(starts[0])  # alone: a new shape traces and compiles once (a video's later calls reuse it)
    starts = starts[1:]
  if concurrent_calls == 1 or len(starts) <= 1:
    for start in starts:
      solve(start)
  else:
    from concurrent import futures  # pylint: disable=g-import-not-at-top
    with futures.ThreadPoolExecutor(concurrent_calls) as pool:
      for done in pool.map(solve, starts):  # re-raises a failed batch's error
        del done
  return out
