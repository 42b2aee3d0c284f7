"""Preemption, exact resume, non-finite values, damaged checkpoints, bad configs."""

import glob
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from alexnet_jax import checkpoints, train
from alexnet_jax.errors import Interrupted, NonFiniteError, UserInputError
from tests.helpers import (REPO, latest_params, read_metrics, send_signal_after_step,
                           small_config)


def _metrics_by_step(workdir):
  return {r['step']: (r['train_loss'], r['train_error'])
          for r in read_metrics(workdir) if 'train_loss' in r}


def test_sigterm_checkpoints_and_the_resumed_run_equals_the_uninterrupted_one(tmp_path):
  straight, stopped = str(tmp_path / 'straight'), str(tmp_path / 'stopped')
  config = small_config(num_epochs=2, log_every_steps=1, checkpoint_every_steps=1000)
  train.train_and_evaluate(config, straight)

  send_signal_after_step(stopped, 5)
  with pytest.raises(Interrupted) as stop:
    train.train_and_evaluate(config, stopped)
  step = stop.value.step
  assert 5 <= step < 16  # Mid-way through the first epoch of 16 steps.
  assert latest_params(stopped)[0] == step
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # The handler is put back.

  train.train_and_evaluate(config, stopped)
  (step_a, params_a), (step_b, params_b) = latest_params(straight), latest_params(stopped)
  assert step_a == step_b == 32
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(a, b)  # Bit for bit.
  assert _metrics_by_step(stopped) == _metrics_by_step(straight)  # Every step, once.


def test_sigterm_ends_the_process_cleanly_with_a_checkpoint(tmp_path):
  workdir = tmp_path / 'run'
  process = subprocess.Popen(
      [sys.executable, '-m', 'alexnet_jax.main', '--config=configs/relu_vs_tanh.py:figure1_net',
       f'--workdir={workdir}', '--config.dataset.name=synthetic',
       '--config.dataset.synthetic_train_examples=20000', '--config.batch_size=16',
       '--config.model.conv_features=(8,8,16)', '--config.log_every_steps=1',
       '--config.mesh.data=1'],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while not (workdir / 'metrics.jsonl').exists() or not read_metrics(str(workdir)):
    assert time.time() < deadline
    time.sleep(0.1)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith('stopped by SIGTERM at step ') and 'run the same command' in last
  step = int(last.split('at step ')[1].split(',')[0])
  assert 0 < step < 1250 and latest_params(str(workdir))[0] == step


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / 'run')
  # A learning rate this large overflows within a few steps.
  config = small_config(learning_rate=1e8, log_every_steps=1, checkpoint_every_steps=1)
  with pytest.raises(NonFiniteError, match=r'is not finite|loss is (nan|inf)') as error:
    train.train_and_evaluate(config, workdir)
  bad_step = int(error.value.args[0].split('at step ')[1].split(':')[0])
  good_step, params = latest_params(workdir)
  assert good_step == bad_step - 1
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(params))


def test_check_finite_names_the_step_and_the_quantity():
  ok = {'loss': np.float32(1.0), 'grads_finite': np.int32(1)}
  train.check_finite([(1, ok), (2, ok)])
  with pytest.raises(NonFiniteError, match='a gradient is not finite .* at step 3'):
    train.check_finite([(2, ok), (3, {**ok, 'grads_finite': np.int32(0)}),
                        (4, {**ok, 'loss': np.float32(np.nan)})])
  with pytest.raises(NonFiniteError, match='the training loss is inf at step 2'):
    train.check_finite([(2, {**ok, 'loss': np.float32(np.inf)})])


# orbax runs a restore on an event loop of its own and closes it, without waiting, when the first
# read fails; the reads still in flight then call back into the closed loop ("Event loop is
# closed", once per array), after the fallback has already happened.
@pytest.mark.filterwarnings('ignore:Exception ignored in:pytest.PytestUnraisableExceptionWarning')
def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(small_config(num_epochs=1, checkpoint_every_steps=5), workdir)
  with checkpoints.create_manager(workdir, read_only=True) as manager:
    assert manager.all_steps() == [15, 16]  # The latest two (16 is the end of the epoch).
  for path in glob.glob(os.path.join(workdir, 'checkpoints', '16', '**', 'd', '*'),
                        recursive=True):
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)
  with caplog.at_level('INFO'):
    train.train_and_evaluate(small_config(num_epochs=1, checkpoint_every_steps=5), workdir)
  assert 'The checkpoint at step 16 cannot be read' in caplog.text
  assert 'Resumed from the checkpoint at step 15' in caplog.text
  assert os.listdir(os.path.join(workdir, checkpoints.UNREADABLE_DIR)) == ['step_16']
  assert latest_params(workdir)[0] == 16  # Step 16 trained again from 15.


def test_a_checkpoint_of_another_network_is_refused_untouched(tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(small_config(num_epochs=1), workdir)
  other = small_config(**{'model.conv_features': (8, 8, 32)})
  with pytest.raises(UserInputError, match=r'model.conv_features \(8, 8, 16\) -> \(8, 8, 32\)'):
    train.train_and_evaluate(other, workdir)
  # Even when a change of config is allowed, another network's weights are not loaded.
  with pytest.raises(UserInputError, match='holds a different network'):
    train.train_and_evaluate(other, workdir, allow_changed_config=True)
  assert latest_params(workdir)[0] == 16


@pytest.mark.parametrize('overrides,message', [
    ({'model.pool_size': 0}, r'config.model.pool_size=0 must be a positive integer'),
    ({'lr_schedule': 'cosine'},
     r"config.lr_schedule='cosine' is not allowed; use one of \['plateau', 'piecewise'\]"),
    ({'dataset.bad_images': 'ignore'},
     r"config.dataset.bad_images='ignore' is not allowed; use one of \['skip', 'fail'\]"),
    ({'dataset.crop_size': 40},
     r'config.dataset.crop_size=40 is larger than config.dataset.image_size=32'),
    ({'model.num_towers': 1, 'mesh.model': 2},
     r'config.model.num_towers=1 is not divisible by the model axis of the mesh, '
     r'config.mesh.model=2'),
    ({'batch_size': 30, 'mesh.data': 4},
     r'config.batch_size=30 is not divisible by the data axis of the mesh \(config.mesh.data=4\)'),
    ({'mesh.data': 16}, r'config.mesh.data=16 x config.mesh.model=1 does not fit the 8 devices'),
    ({'dataset.mean': 'median'},
     r"config.dataset.mean='median' is not allowed; use one of \['rgb', 'image'\]"),
    ({'model.conv1_order': 'pool_relu'},
     r"config.model.conv1_order='pool_relu' is not allowed; use one of \['relu_norm_pool', "),
    ({'model.init_std_overrides': (('conv9', 0.03),)},
     r"config.model.init_std_overrides has \('conv9', 0.03\); each pair must name one of"),
    ({'model.init_std_overrides': (('fc6', 0.03),)},  # An AlexNet layer; this is the CIFAR net.
     r"\('fc6', 0.03\); each pair must name one of \['conv1', 'conv2', 'conv3', 'fc4'\]"),
    ({'model.ops': 'gpu'},
     r"config.model.ops='gpu' is not allowed; use one of \['auto', 'xla', 'cpu'\]"),
    ({'model.cpu_micro_batch': -8},
     r'config.model.cpu_micro_batch=-8 must be 0 \(whole batches\) or a positive integer'),
    ({'mesh.cpu_devices': 0},
     r'config.mesh.cpu_devices=0 must be -1 \(one per core\) or a positive integer'),
])
def test_bad_configs_name_the_keys_and_values(tmp_path, overrides, message):
  workdir = tmp_path / 'run'
  with pytest.raises(UserInputError, match=message):
    train.train_and_evaluate(small_config(**overrides), str(workdir))
  assert not (workdir / 'checkpoints').exists()
