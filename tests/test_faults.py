"""Faults that once lost or misreported a run's work, each reproduced as it was found: two
processes on one workdir, another config resumed, damaged checkpoints and metrics, bad images,
bad config files, a full disk, broken run folders, signals during evaluation, TensorBoard's
repeated steps."""

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from alexnet_jax import checkpoint_metrics, checkpoints, errors, run_folder, train
from alexnet_jax.errors import Interrupted, UserInputError
from tests.helpers import (REPO, latest_params, read_metrics, run_main, send_signal_after_step,
                           small_config, tensorboard_scalars, write_image_folder)

# The shorthand S: the Figure-1 net on the synthetic task.
SYNTHETIC = ['--config.dataset.name=synthetic', '--config.batch_size=32',
             '--config.eval_batch_size=50', '--config.stop_at_train_error=0',
             '--config.model.conv_features=(8,8,16)', '--config.mesh.data=1']


def _one_error_line(result):
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-3000:]
  return lines[0]


def test_a_second_process_on_a_busy_workdir_is_refused_and_a_killed_owner_frees_it(tmp_path):
  workdir = tmp_path / 'two'
  args = [f'--workdir={workdir}', *SYNTHETIC, '--config.num_epochs=2', '--config.checkpoint_every_steps=2',
          '--config.log_every_steps=1']
  owner = run_main(*args, wait=False)
  deadline = time.time() + 240
  while not checkpoint_metrics.committed_steps(workdir):  # Trained, and checkpointed once.
    assert time.time() < deadline and owner.poll() is None
    time.sleep(0.1)
  # Held where it is (it keeps its lock), so that it cannot finish before the second process
  # starts: with a warm compilation cache it once did, in CI.
  owner.send_signal(signal.SIGSTOP)
  second = run_main(*args)
  assert second.returncode == 2
  line = _one_error_line(second)
  assert f'is in use by process {owner.pid} on ' in line
  assert owner.poll() is None  # The owner is untouched.
  owner.send_signal(signal.SIGKILL)
  owner.wait()
  # A killed owner leaves no lock behind: the same command resumes, each step logged once.
  resumed = run_main(*args)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert 'Resumed from the checkpoint at step' in resumed.stderr
  steps = [r['step'] for r in read_metrics(str(workdir)) if 'train_loss' in r]
  assert steps == list(range(1, 2 * 256 // 32 + 1))


def test_resuming_another_experiment_is_refused_before_anything_is_written(tmp_path):
  workdir = tmp_path / 'd'
  first = run_main(f'--workdir={workdir}', *SYNTHETIC, '--config.num_epochs=1')
  assert first.returncode == 0, first.stderr[-2000:]
  before = {p: os.path.getmtime(p) for p in glob.glob(str(workdir / '*'))}
  tanh = run_main(f'--workdir={workdir}', *SYNTHETIC, '--config.num_epochs=1',
                  '--config.model.activation=tanh', '--config.learning_rate=0.002')
  assert tanh.returncode == 2
  line = _one_error_line(tanh)
  assert "model.activation 'relu' -> 'tanh'" in line and 'learning_rate 0.001 -> 0.002' in line
  assert {p: os.path.getmtime(p) for p in glob.glob(str(workdir / '*'))} == before
  with open(workdir / 'config.json') as f:
    assert json.load(f)['model']['activation'] == 'relu'
  # Deliberately: the flag resumes the ReLU weights as a tanh net and says so in config.json.
  # (Keys a resume may change, such as num_epochs, are test_a_run_config_is_compared_on_...)
  allowed = run_main(f'--workdir={workdir}', *SYNTHETIC, '--config.num_epochs=2',
                     '--config.model.activation=tanh', '--allow_changed_config')
  assert allowed.returncode == 0, allowed.stderr[-2000:]
  assert latest_params(str(workdir))[0] == 2 * 256 // 32
  with open(workdir / 'config.json') as f:
    assert json.load(f)['model']['activation'] == 'tanh'


def test_bytes_damaged_inside_checkpoint_data_fall_back_to_the_previous_checkpoint(
    tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  config = small_config(num_epochs=1, checkpoint_every_steps=5)
  train.train_and_evaluate(config, workdir)
  data_files = glob.glob(os.path.join(workdir, 'checkpoints', '16', 'default', 'ocdbt.process_0',
                                      'd', '*'))
  largest = max(data_files, key=os.path.getsize)
  with open(largest, 'r+b') as f:
    f.seek(os.path.getsize(largest) // 2)
    f.write(b'\xff' * 64)
  with caplog.at_level('INFO'):
    final = train.train_and_evaluate(small_config(num_epochs=2, checkpoint_every_steps=5),
                                     workdir)
  # Mostly the digest catches it; where the bytes land in OCDBT's index (the layout of its data
  # files varies with the order of the asynchronous writes), the read itself fails.
  assert 'The checkpoint at step 16 cannot be read (' in caplog.text
  assert 'Resumed from the checkpoint at step 15' in caplog.text
  assert np.isfinite(final['train_loss'])
  step, params = latest_params(workdir)
  assert step == 32 and all(np.isfinite(p).all() for p in jax.tree.leaves(params))


def test_the_digest_sees_one_flipped_bit_and_moved_values():
  state = {'a': np.arange(12, dtype=np.float32).reshape(3, 4), 'b': np.int32(7)}
  digest = checkpoints.state_digest(state)
  flipped = state['a'].copy()
  flipped.reshape(-1).view(np.uint32)[5] ^= 1
  assert checkpoints.state_digest({**state, 'a': flipped}) != digest
  assert checkpoints.state_digest({**state, 'a': state['a'][::-1].copy()}) != digest
  assert checkpoints.state_digest(dict(state)) == digest


@pytest.mark.parametrize('content', ['garbage\n', ''])
def test_unreadable_checkpoint_metrics_fall_back(tmp_path, caplog, content):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(small_config(num_epochs=1, checkpoint_every_steps=5), workdir)
  with open(os.path.join(workdir, 'checkpoints', '16', 'metrics', 'metrics'), 'w') as f:
    f.write(content)
  with caplog.at_level('INFO'):
    train.train_and_evaluate(small_config(num_epochs=2, checkpoint_every_steps=5), workdir)
  assert 'The metrics of the checkpoint at step 16 cannot be read' in caplog.text
  assert 'Resumed from the checkpoint at step 15' in caplog.text
  assert os.listdir(os.path.join(workdir, checkpoints.UNREADABLE_DIR)) == ['step_16']
  assert latest_params(workdir)[0] == 32


def test_a_metrics_line_cut_short_or_without_a_step_is_dropped(tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  config = small_config(num_epochs=1, log_every_steps=1)
  train.train_and_evaluate(config, workdir)
  path = os.path.join(workdir, 'metrics.jsonl')
  with open(path, 'a') as f:
    f.write('{"no_step": 1}\n{"step": 3, "train_lo')  # What a full disk leaves.
  with caplog.at_level('INFO'):
    train.train_and_evaluate(small_config(num_epochs=2, log_every_steps=1), workdir)
  assert 'Dropped 2 unreadable lines' in caplog.text
  steps = [r['step'] for r in read_metrics(workdir) if 'train_loss' in r]
  assert steps == list(range(1, 33))


def test_tensorboard_shows_each_step_once_after_a_resume(tmp_path):
  workdir = str(tmp_path / 'run')
  config = small_config(num_epochs=1, log_every_steps=1, checkpoint_every_steps=5)
  train.train_and_evaluate(config, workdir)
  for step in ('15', '16'):  # As if killed after step 16 was logged but before its checkpoint.
    os.rename(os.path.join(workdir, 'checkpoints', step), os.path.join(str(tmp_path), step))
  time.sleep(1.1)  # A new event file (TensorBoard names them by the second).
  train.train_and_evaluate(config, workdir)
  assert len(glob.glob(os.path.join(workdir, 'events.out.tfevents.*'))) == 2
  assert [step for step, _ in tensorboard_scalars(workdir, 'train_loss')] == list(range(1, 17))


def test_a_run_config_is_compared_on_the_experiments_keys_only():
  saved = json.loads(small_config().to_json_best_effort())
  assert run_folder.experiment_changes(saved, json.loads(small_config(
      num_epochs=9, log_every_steps=7, checkpoint_every_minutes=1.0,
      **{'mesh.data': 2, 'dataset.data_dir': '/elsewhere', 'model.ops': 'xla'}
  ).to_json_best_effort())) == {}
  assert run_folder.experiment_changes(saved, json.loads(small_config(
      seed=3, **{'dataset.random_flip': True}).to_json_best_effort())) == {
          'dataset.random_flip': (False, True), 'seed': (0, 3)}


def test_resuming_another_experiment_in_process_raises(tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(small_config(num_epochs=1), workdir)
  with pytest.raises(UserInputError, match=r"model.activation 'relu' -> 'tanh'"):
    train.train_and_evaluate(small_config(num_epochs=1, **{'model.activation': 'tanh'}),
                             workdir)


def _cut_jpegs(folder, split, count):
  """`count` JPEGs cut short (they pass the signature check, then fail to decode)."""
  whole = open(os.path.join(folder, split, 'cat', '0000.jpg'), 'rb').read()
  for i in range(count):
    with open(os.path.join(folder, split, 'dog', f'cut{i}.jpg'), 'wb') as f:
      f.write(whole[:len(whole) // 3 + i])


def _folder_config(root, **overrides):
  return small_config(**{'dataset.name': 'image_folder', 'dataset.data_dir': root,
                         'dataset.eval_split': 'test', 'dataset.image_size': 32,
                         'dataset.crop_size': 32, 'dataset.cache': False, **overrides})


def test_an_undecodable_image_under_fail_is_named_with_the_reason(tmp_path):
  root = write_image_folder(str(tmp_path / 'data'), per_class=8, size=(32, 32))
  _cut_jpegs(root, 'train', 1)
  with pytest.raises(UserInputError) as error:
    train.train_and_evaluate(_folder_config(root, batch_size=8,
                                            **{'dataset.bad_images': 'fail'}),
                             str(tmp_path / 'run'))
  message = str(error.value)
  bad_file = os.path.join(root, 'train', 'dog', 'cut0.jpg')
  assert message.startswith(f'{bad_file} cannot be decoded (')
  assert 'function_node' not in message and len(message) < 500


def test_an_undecodable_evaluation_image_under_fail_stops_before_training(tmp_path):
  root = write_image_folder(str(tmp_path / 'data'), per_class=12, size=(32, 32))
  _cut_jpegs(root, 'test', 1)
  workdir = str(tmp_path / 'run')
  with pytest.raises(UserInputError, match=r'test/dog/cut0.jpg cannot be decoded'):
    train.train_and_evaluate(_folder_config(root, **{'dataset.bad_images': 'fail'}), workdir)
  assert not os.path.exists(os.path.join(workdir, 'metrics.jsonl'))  # No epoch was trained.


def test_a_class_of_only_non_images_is_refused_under_skip(tmp_path):
  root = write_image_folder(str(tmp_path / 'data'), per_class=12, size=(16, 16))
  for split in ('train', 'test'):
    os.makedirs(os.path.join(root, split, 'zzz'))
    with open(os.path.join(root, split, 'zzz', 'a.jpg'), 'w') as f:
      f.write('a text file')
    open(os.path.join(root, split, 'zzz', 'b.jpg'), 'w').close()
  with pytest.raises(UserInputError, match=r'train/zzz has no images'):
    train.train_and_evaluate(_folder_config(root, **{'dataset.image_size': 16,
                                                    'dataset.crop_size': 16}),
                             str(tmp_path / 'run'))


def test_resume_is_exact_when_undecodable_images_are_dropped(tmp_path):
  root = write_image_folder(str(tmp_path / 'data'), classes=('cat', 'dog'), per_class=200,
                            size=(32, 32))
  _cut_jpegs(root, 'train', 8)
  config = _folder_config(root, batch_size=16, num_epochs=1, log_every_steps=1,
                          **{'dataset.bad_images': 'skip', 'dataset.shuffle_buffer': 408})
  straight, stopped = str(tmp_path / 'straight'), str(tmp_path / 'stopped')
  train.train_and_evaluate(config, straight)
  send_signal_after_step(stopped, 14)
  with pytest.raises(Interrupted):
    train.train_and_evaluate(config, stopped)
  train.train_and_evaluate(config, stopped)
  (step_a, params_a), (step_b, params_b) = latest_params(straight), latest_params(stopped)
  assert step_a == step_b == 25
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(a, b)
  by_step = lambda w: {r['step']: r['train_loss'] for r in read_metrics(w) if 'train_loss' in r}
  assert by_step(stopped) == by_step(straight)


def test_a_full_disk_stops_with_one_line_and_the_run_resumes_once_space_is_freed(tmp_path):
  disk = tmp_path / 'disk'
  disk.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(disk)],
                    capture_output=True).returncode != 0:
    pytest.skip('mounting a small tmpfs needs root')
  try:
    ballast = disk / 'ballast'
    ballast.write_bytes(bytes(2_700_000))  # Room for one checkpoint of the 89,578-weight net.
    args = [f'--workdir={disk / "run"}', '--config.dataset.name=synthetic',
            '--config.batch_size=32', '--config.stop_at_train_error=0', '--config.num_epochs=2',
            '--config.checkpoint_every_steps=2', '--config.mesh.data=1']
    full = run_main(*args)
    assert full.returncode == 2 and 'Traceback' not in full.stderr, full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the disk of workdir '{disk / 'run'}' is full (")
    assert 'the latest good checkpoint is step 2.' in last
    ballast.unlink()
    resumed = run_main(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resumed from the checkpoint at step 2' in resumed.stderr
  finally:
    subprocess.run(['umount', str(disk)], check=False)


def test_report_names_and_skips_a_folder_whose_config_is_not_a_runs(tmp_path):
  good = str(tmp_path / 'good')
  train.train_and_evaluate(small_config(num_epochs=1), good)
  for name, content in (('a_list', '[1, 2]'), ('no_dataset', '{"model": {}}')):
    os.makedirs(tmp_path / name)
    (tmp_path / name / 'config.json').write_text(content)
  result = subprocess.run([sys.executable, '-m', 'alexnet_jax.report', str(tmp_path),
                           '--table=runs'], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  for name in ('a_list', 'no_dataset'):
    assert f'{tmp_path / name}: cannot be read (its config.json is not the config of a run' in \
        result.stderr
  assert f'| {tmp_path.name}/good |' in result.stdout


def test_a_signal_during_evaluation_stops_it_promptly_and_the_resume_evaluates_first(
    tmp_path, caplog):
  # 16 steps an epoch, then an evaluation of 8,000 examples that takes seconds.
  config = small_config(num_epochs=2, log_every_steps=16,
                        **{'dataset.synthetic_eval_examples': 8_000, 'eval_batch_size': 50})
  straight, stopped = str(tmp_path / 'straight'), str(tmp_path / 'stopped')
  with caplog.at_level('INFO'):
    train.train_and_evaluate(config, straight)
  logged = lambda text: next(r.created for r in caplog.records if r.getMessage().startswith(text))
  evaluation_seconds = logged('epoch 1: training error') - logged('step 16/32')
  caplog.clear()
  signalled = []

  def signal_at_the_evaluation():
    path = os.path.join(stopped, 'metrics.jsonl')
    while not (os.path.exists(path) and any(r['step'] >= 16 for r in read_metrics(stopped))):
      time.sleep(0.01)
    signalled.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGTERM)

  watcher = threading.Thread(target=signal_at_the_evaluation, daemon=True)
  watcher.start()
  with pytest.raises(Interrupted) as stop:
    train.train_and_evaluate(config, stopped)
  stopped_after = time.monotonic() - signalled[0]
  assert stop.value.step == 16
  assert stopped_after < 0.5 * evaluation_seconds, (stopped_after, evaluation_seconds)
  step, saved = checkpoint_metrics.latest(stopped)
  assert step == 16 and saved.eval_pending
  with caplog.at_level('INFO'):
    train.train_and_evaluate(config, stopped)
  assert 'The evaluation of epoch 1 was stopped by a signal: evaluating it first.' in caplog.text
  a, b = run_folder.read_run(straight), run_folder.read_run(stopped)
  assert b.history['eval_top1_error'] == a.history['eval_top1_error']  # Each epoch once.
  for x, y in zip(jax.tree.leaves(latest_params(straight)[1]),
                  jax.tree.leaves(latest_params(stopped)[1])):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('case', ['no_file', 'syntax', 'typo', 'typo_nested', 'bad_value',
                                  'given_twice', 'raises', 'no_get_config'])
def test_a_config_that_cannot_be_loaded_is_one_line(tmp_path, capsys, case):
  (tmp_path / 'broken.py').write_text('def get_config(:\n  pass\n')
  (tmp_path / 'raises.py').write_text('raise RuntimeError("no data here")\n')
  (tmp_path / 'no_get_config.py').write_text('X = 1\n')
  config, flag, expected = {
      'no_file': ('nope.py', [], 'error: --config=nope.py: no such file.'),
      'syntax': (str(tmp_path / 'broken.py'), [],
                 f'error: the config file cannot be loaded: invalid syntax '
                 f'({tmp_path / "broken.py"}, line 1).'),
      'typo': ('configs/relu_vs_tanh.py', ['--config.modle.activation=relu'],
               "error: --config.modle.activation: the config has no key 'modle'; did you mean "
               "'model'?"),
      'typo_nested': ('configs/relu_vs_tanh.py', ['--config.model.activaton=relu'],
                      "error: --config.model.activaton: the config has no key 'activaton'; did "
                      "you mean 'activation'?"),
      'bad_value': ('configs/relu_vs_tanh.py', ['--config.num_epochs=abc'],
                    "error: flag --config.num_epochs=abc: invalid literal for int() with base "
                    "10: 'abc'"),
      # ml_collections would run ('conv2', 'conv3'), not the last value.
      'given_twice': ('configs/relu_vs_tanh.py', ["--config.model.bias_one_layers=('conv2',)",
                                                  "--config.model.bias_one_layers=('conv3',)"],
                      'error: --config.model.bias_one_layers is given more than once; give each '
                      'config key once.'),
      # A traceback before; then a key 'config_config'.
      'raises': (str(tmp_path / 'raises.py'), [],
                 f'error: --config={tmp_path / "raises.py"}: the config file raised '
                 'RuntimeError: no data here'),
      'no_get_config': (str(tmp_path / 'no_get_config.py'), [],
                        f'error: --config={tmp_path / "no_get_config.py"}: the file defines no '
                        'get_config().'),
  }[case]
  if case.startswith('typo') or case == 'bad_value':
    # ml_collections reads the overrides from the process's own command line: main's.
    result = run_main(f'--workdir={tmp_path / "run"}', *flag, config=config)
    assert result.returncode == 2
    assert _one_error_line(result) == expected
    assert not os.path.exists(tmp_path / 'run')
    return
  # main's own flags parser, in this process (a process each costs CI time).
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', flag_values=flag_values)
  with pytest.raises(SystemExit) as exit_info:
    errors.config_flags_parser(flag_values)(['main', f'--config={config}', *flag])
  assert exit_info.value.code == 2
  assert capsys.readouterr().err.strip() == expected
