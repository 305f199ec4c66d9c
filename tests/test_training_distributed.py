"""Training through each strategy in its own processes (collectives leak between strategies in one process).

Default, MirroredStrategy over 2 logical CPU devices, MultiWorkerMirroredStrategy with 2 local workers, and
a run killed with SIGKILL after a checkpoint then resumed, compared with an uninterrupted run.
All on `tiny_i3d` (the I3D head on two Units) and synthetic videos whose class is learnable.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
TIMEOUT = 300

BASE = dict(model='i3d_rgb', num_classes=3, train_data='synthetic:32', eval_data='synthetic:16', batch_size=4,
            train_steps=8, learning_rate=0.05, lr_schedule='constant', checkpoint_every=4, eval_every=8,
            log_every=2, deterministic=True, progress_bar=False, seed=3)


def _env(tf_config=None):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('TF_CONFIG', None)
  if tf_config is not None:
    env['TF_CONFIG'] = json.dumps(tf_config)
  return env


def _cmd(config, out, *extra):
  return [sys.executable, '-m', 'i3d_tf.training.testing', '--config', json.dumps(config), '--out', out,
          '--tiny', *extra]


def _run(config, out, *extra, check=True):
  proc = subprocess.run(_cmd(config, out, *extra), env=_env(), cwd=REPO, capture_output=True, text=True,
                        timeout=TIMEOUT)
  if check and proc.returncode != 0:
    raise AssertionError(f'worker failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
  return proc


def _load(out):
  with open(out + '.json') as f:
    metrics = json.load(f)
  return dict(np.load(out, allow_pickle=False)), metrics


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_default_strategy_loss_decreases(tmp_path):
  out = str(tmp_path / 'w.npz')
  _run(dict(BASE, model_dir=str(tmp_path / 'run')), out)
  _, m = _load(out)
  assert m['step'] == 8 and m['steps_run'] == 8 and m['replicas'] == 1
  assert m['eval_loss'] < m['eval_before']['eval_loss'] - 0.05, m
  assert m['replica_spread'] == 0.0


@pytest.mark.parametrize('synchronized_bn', [True, False])
def test_mirrored_two_logical_cpus_replicas_identical(tmp_path, synchronized_bn):
  out = str(tmp_path / 'w.npz')
  config = dict(BASE, strategy='mirrored', num_logical_devices=2, synchronized_bn=synchronized_bn,
                model_dir=str(tmp_path / 'run'))
  _run(config, out)
  weights, m = _load(out)
  assert m['replicas'] == 2
  assert m['eval_loss'] < m['eval_before']['eval_loss'] - 0.05, m
  assert any('moving_mean' in k for k in weights)
  # Trainable variables are equal on both replicas (one all-reduced update).  With synchronized BN every
  # variable is, moving statistics included; without it each replica's statistics follow its own half batch.
  assert m['replica_spread_trainable'] == 0.0, m
  if synchronized_bn:
    assert m['replica_spread'] == 0.0, m
  else:
    assert m['replica_spread'] > 0.0, m


def test_multi_worker_two_local_workers_identical(tmp_path):
  ports = _free_ports(2)
  cluster = {'worker': [f'127.0.0.1:{p}' for p in ports]}
  config = dict(BASE, strategy='multi_worker', synchronized_bn=True, model_dir=str(tmp_path / 'run'))
  outs = [str(tmp_path / f'w{i}.npz') for i in range(2)]
  procs = [subprocess.Popen(_cmd(config, outs[i]), env=_env({'cluster': cluster, 'task': {'type': 'worker',
                                                                                              'index': i}}),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  logs = []
  try:
    for p in procs:
      stdout, stderr = p.communicate(timeout=TIMEOUT)
      logs.append(stdout[-2000:] + stderr[-3000:])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert all(p.returncode == 0 for p in procs), '\n-----\n'.join(logs)
  (w0, m0), (w1, m1) = _load(outs[0]), _load(outs[1])
  assert m0['replicas'] == 2 and m1['replicas'] == 2
  assert m0['eval_loss'] < m0['eval_before']['eval_loss'] - 0.05, m0
  assert m0['eval_loss'] == pytest.approx(m1['eval_loss'], abs=1e-6)  # eval reduced over both workers
  assert sorted(w0) == sorted(w1)
  # Every variable identical on both workers (synchronized BN: the moving statistics too).
  for k in w0:
    np.testing.assert_array_equal(w0[k], w1[k], err_msg=k)
  # Only the chief (worker 0) keeps checkpoints; the other worker's temporary copy is removed.
  run = tmp_path / 'run'
  assert (run / 'checkpoint').exists() and (run / 'ckpt-8.index').exists()
  assert not any(n.startswith('.worker_tmp') for n in os.listdir(run))


def test_sigkill_and_resume_equals_uninterrupted(tmp_path):
  # Plateau schedule with a huge min_delta: LR x0.1 at the evaluations of steps 6 and 10, which a resumed
  # run reproduces only if the controller's state (best loss after step 2, count after step 4) is restored.
  config = dict(BASE, train_steps=10, checkpoint_every=3, eval_every=2, eval_steps=2, lr_schedule='plateau',
                plateau_patience=2, plateau_min_delta=1e9)
  straight = str(tmp_path / 'straight.npz')
  _run(dict(config, model_dir=str(tmp_path / 'a')), straight)
  resumed = str(tmp_path / 'resumed.npz')
  run_b = str(tmp_path / 'b')
  killed = _run(dict(config, model_dir=run_b), resumed, '--sigkill_at_step', '5', check=False)
  assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
  assert not os.path.exists(resumed)
  assert os.path.exists(os.path.join(run_b, 'ckpt-3.index'))
  assert not os.path.exists(os.path.join(run_b, 'ckpt-6.index'))
  _run(dict(config, model_dir=run_b), resumed)  # restarts from step 3, data position 3
  wa, ma = _load(straight)
  wb, mb = _load(resumed)
  assert mb['steps_run'] == 7 and mb['step'] == 10
  assert ma['learning_rate'] == pytest.approx(0.0005) and mb['learning_rate'] == pytest.approx(0.0005)
  assert [r['lr_reduced'] for r in mb['history'] if r['kind'] == 'eval'] == [False, True, False, True]
  assert sorted(wa) == sorted(wb)
  for k in wa:
    np.testing.assert_allclose(wb[k], wa[k], rtol=1e-6, atol=1e-7, err_msg=k)
  assert mb['eval_loss'] == pytest.approx(ma['eval_loss'], abs=1e-6)
