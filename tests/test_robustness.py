"""Preemption, exact resume, non-finite values, damaged checkpoints, bad configs."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from alexnet_jax import (blocks, checkpoints, models, paths, preemption, report, run_folder,
                         steps, train, validation)
from alexnet_jax.errors import Interrupted, NonFiniteError, UserInputError
from configs import cuda_convnet_cifar, default
from tests.helpers import (REPO, latest_params, read_metrics, run_main, send_signal_after_step,
                           small_config, write_image_folder)


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
  assert 'Run folder' not in stderr  # A workdir given is not echoed: main did not choose it.
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
  assert f'the latest checkpoint is step {good_step}' in str(error.value)
  # The report says why the run went no further, not "(running)".
  row = report.run_rows([run_folder.read_run(workdir)], [workdir], 0.25)[0]
  assert row['epochs'].endswith(f' (stopped: {error.value})')


def test_check_finite_names_the_step_and_the_quantity():
  ok = {'loss': np.float32(1.0), 'grads_finite': np.int32(1)}
  train.check_finite([(1, ok), (2, ok)])
  with pytest.raises(NonFiniteError, match='a gradient is not finite .* at step 3'):
    train.check_finite([(2, ok), (3, {**ok, 'grads_finite': np.int32(0)}),
                        (4, {**ok, 'loss': np.float32(np.nan)})])
  with pytest.raises(NonFiniteError, match='the training loss is inf at step 2: stopping; no '
                     'checkpoint was written before it.'):  # Not "the last checkpoint".
    train.check_finite([(2, {**ok, 'loss': np.float32(np.inf)})])
  with pytest.raises(NonFiniteError, match='at step 9: stopping; the latest checkpoint is step 5, '
                     'written before it.'):
    train.check_finite([(9, {**ok, 'loss': np.float32(np.nan)})], latest_checkpoint=5)


@pytest.fixture
def sighup_disposition():
  """Sets SIGHUP's disposition for a test (pytest may run under nohup), then restores it."""
  before = signal.getsignal(signal.SIGHUP)
  yield lambda handler: signal.signal(signal.SIGHUP, handler)
  signal.signal(signal.SIGHUP, before)


def test_sighup_from_a_closed_terminal_is_a_preemption_too(sighup_disposition):
  """It lost the steps since the last checkpoint, where SIGTERM saved them."""
  sighup_disposition(signal.SIG_DFL)
  with preemption.CheckpointTriggers(every_minutes=0) as triggers:
    os.kill(os.getpid(), signal.SIGHUP)
    assert triggers.poll()[0] == signal.SIGHUP
  assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def test_a_run_under_nohup_keeps_ignoring_sighup(sighup_disposition):
  """`nohup` asked the run to outlive its terminal: closing it must not stop the run."""
  sighup_disposition(signal.SIG_IGN)
  with preemption.CheckpointTriggers(every_minutes=0) as triggers:
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGHUP)
    assert triggers.poll()[0] is None
  assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


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


@pytest.mark.parametrize('config_json', [None, '{"model": {"na', '[]'])
def test_the_checkpoints_name_their_experiment_when_config_json_is_lost(tmp_path, config_json):
  """Issue 32: with config.json deleted or garbled, a tanh config resumed the ReLU checkpoint."""
  workdir = tmp_path / 'run'
  train.train_and_evaluate(small_config(num_epochs=1), str(workdir))
  if config_json is None:
    (workdir / 'config.json').unlink()
  else:
    (workdir / 'config.json').write_text(config_json)
  tanh = small_config(**{'num_epochs': 2, 'model.activation': 'tanh', 'learning_rate': 0.05})
  with pytest.raises(UserInputError, match=r"holds a run of another experiment \(learning_rate "
                     r"0.001 -> 0.05, model.activation 'relu' -> 'tanh'\)"):
    train.train_and_evaluate(tanh, str(workdir))
  assert latest_params(workdir)[0] == 16


@pytest.mark.parametrize('overrides,message', [
    ({'model.pool_size': 0}, r'config.model.pool_size=0 must be a positive integer'),
    ({'lr_schedule': 'cosine'},
     r"config.lr_schedule='cosine' is not allowed; use one of \['plateau', 'piecewise'\]"),
    ({'dataset.bad_images': 'ignore'},
     r"config.dataset.bad_images='ignore' is not allowed; use one of \['skip', 'fail'\]"),
    ({'dataset.crop_size': 40},
     r'config.dataset.crop_size=40 is larger than config.dataset.image_size=32'),
    ({'model.num_towers': 1},  # The Figure-1 net has no towers to take away.
     r'config.model.num_towers=1 would change nothing: cifar_net does not read '
     r'model.num_towers \(the Figure-1 net has one tower'),
    ({'batch_size': 30, 'mesh.data': 4},
     r'config.batch_size=30 is not divisible by the devices that split the batch '
     r'\(config.mesh.data=4\)'),
    ({'batch_size': 36, 'mesh.data': 4, 'mesh.model': 2, 'mesh.scheme': 'data'},
     r'config.batch_size=36 is not divisible by the devices that split the batch '
     r"\(config.mesh.data=4 x config.mesh.model=2 under mesh.scheme='data'\)"),
    ({'mesh.scheme': 'pipeline'},
     r"config.mesh.scheme='pipeline' is not allowed; use one of \['towers', 'data', 'hybrid'\]"),
    ({'mesh.scheme': 'hybrid'},  # The Figure-1 net: no fc layer but its classifier.
     r"config.mesh.scheme='hybrid' splits the hidden fully-connected layers, and this cifar_net "
     r"has none before its classifier: use 'data'"),
    ({'mesh.scheme': 'hybrid', 'mesh.data': 8, 'model.fc_features': (36,)},
     r"a hidden fully-connected layer of 36 outputs cannot be split over the 8 devices of "
     r"mesh.scheme='hybrid'"),
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
     r"config.model.ops='gpu' is not allowed; use one of \['auto', 'xla', 'handwritten'\]"),
    ({'model.cpu_micro_batch': -8},
     r'config.model.cpu_micro_batch=-8 must be 0 \(whole batches\) or a positive integer'),
    ({'mesh.cpu_devices': 0},
     r'config.mesh.cpu_devices=0 must be -1 \(one per core\) or a positive integer'),
    ({'dataset.synthetic_eval_examples': 0},  # Failed after the first epoch.
     r'config.dataset.synthetic_eval_examples=0 must be a positive integer'),
    ({'dataset.synthetic_num_classes': 1},
     r'config.dataset.synthetic_num_classes=1: a classifier needs two or more classes'),
    ({'mesh.model': -2},
     r'config.mesh.data=1 x config.mesh.model=-2: each must be a positive number of devices, '
     r'or -1 for all the remaining ones'),
    ({'dataset.pca_eigenvalues': (1, 2)},  # Died in TensorFlow after the run folder was made.
     r'config.dataset.pca_eigenvalues=\(1, 2\) must be 3 finite numbers'),
    ({'dataset.mean_rgb': (1.0, float('nan'), 3.0)},
     r'config.dataset.mean_rgb=\(1.0, nan, 3.0\) must be 3 finite numbers'),
    ({'dataset.window_canvas': 10},
     r'config.dataset.window_canvas=10 must be 0 \(2 \* crop_size - 1\) or at least '
     r'config.dataset.crop_size=32'),
    ({'dataset.window_canvas': 40, 'dataset.resize_on_device': False},
     r'config.dataset.window_canvas=40 carries windows to the device, which '
     r'config.dataset.resize_on_device=False turns off'),
])
def test_bad_configs_name_the_keys_and_values(tmp_path, overrides, message):
  workdir = tmp_path / 'run'
  with pytest.raises(UserInputError, match=message):
    train.train_and_evaluate(small_config(**overrides), str(workdir))
  assert not (workdir / 'checkpoints').exists()


GOOD_STATS = {'mean_rgb': [120.0, 115.0, 100.0], 'pca_eigenvalues': [0.2, 0.02, 0.002],
              'pca_eigenvectors': np.eye(3).tolist(), 'mean_image': 'stats.mean_image.npy'}


@pytest.mark.parametrize('content,message', [
    ({'mean_rgb': [1, 2]}, r"stats.json': mean_rgb=\[1, 2\] must be 3 finite numbers"),
    ({'pca_eigenvectors': [[1, 0], [0, 1]]},
     r"pca_eigenvectors=\[\[1, 0\], \[0, 1\]\] must be 3 x 3 finite numbers"),
    ({'mean_rgb': ['a', 'b', 'c']}, r"mean_rgb=\['a', 'b', 'c'\] must be 3 finite numbers"),
    ({'pca_eigenvalues': [0.2]},  # Trained silently, broadcast over R, G and B.
     r"pca_eigenvalues=\[0.2\] must be 3 finite numbers"),
    ({'pca_eigenvalues': [0.2, -0.1, 0.0]}, r'cannot be negative'),
    ([1, 2, 3], r'cannot be read as the output of python -m alexnet_jax.write_image_stats \(a JSON '
     r'list, not an object\)'),
    ({'mean_rgb': None, 'drop': 'pca_eigenvalues'}, r'\(no pca_eigenvalues\)'),
])
def test_a_stats_file_of_other_shapes_or_kinds_is_refused_before_any_work(tmp_path, content,
                                                                          message):
  path = tmp_path / 'stats.json'
  if isinstance(content, dict):
    content = {**GOOD_STATS, **content}
    content.pop(content.pop('drop', None) or 'drop', None)
  path.write_text(json.dumps(content))
  workdir = tmp_path / 'run'
  with pytest.raises(UserInputError, match=message):
    train.train_and_evaluate(small_config(**{'dataset.stats_file': str(path)}), str(workdir))
  assert not workdir.exists()


def _changed(key, value):
  """A legal value of config.model.`key` other than `value`."""
  choices = {'conv1_order': models.CONV1_ORDERS, 'conv1_padding': models.CONV1_PADDINGS,
             'lrn_alpha_convention': blocks.LRN_ALPHA_CONVENTIONS,
             'activation': blocks.ACTIVATIONS, 'ops': blocks.OPS_CHOICES,
             'num_towers': validation.NUM_TOWERS}
  if key in choices:
    return next(choice for choice in choices[key] if choice != value)
  if isinstance(value, bool):
    return not value
  if isinstance(value, int):
    return value + 1
  if isinstance(value, float):
    return value / 2 if value else 0.5
  if isinstance(value, str):
    return value + 'x'
  return () if value else ('conv1',)


@pytest.mark.parametrize('name', sorted(models.MODELS))
def test_every_model_key_a_network_does_not_read_is_refused_when_set(name):
  """The class of issue 32's first defect: `--config.model.lrn=False` on a layer net, or a width
  multiplier on the Figure-1 net, built the same network and trained under the switch's name."""
  paper = default.get_config()
  unread = sorted(set(paper.model.keys()) - models.keys_read(name))
  assert unread, name  # Every network here lacks some of AlexNet's knobs, or has none to lack.
  def config_of(key):
    config = default.get_config()
    config.model.name = name
    if name == 'layer_net':
      config.model.layers = cuda_convnet_cifar.LAYERS['18pct']
    config.model[key] = _changed(key, paper.model[key])
    return config

  for key in unread:
    config = config_of(key)
    with pytest.raises(UserInputError, match=(
        rf'^config.model.{key}=.* would change nothing: {name} does not read model.{key} '
        rf'\({re.escape(models.KNOBS_ELSEWHERE[name])}\)\. Leave it at ')):
      validation.validate_config(config)
  for key in sorted(models.keys_read(name) & set(paper.model.keys())):  # Read: no such refusal.
    try:
      validation.validate_config(config_of(key))
    except UserInputError as e:
      assert 'would change nothing' not in str(e), (key, e)


@pytest.mark.parametrize('config,key,value', [
    (cuda_convnet_cifar.get_config('18pct'), 'lrn', False),
    (cuda_convnet_cifar.get_config('18pct'), 'pool_size', 2),
    (small_config(), 'width_multiplier', 0.5),
])
def test_the_switches_that_did_nothing_are_refused(config, key, value):
  config.model[key] = value
  with pytest.raises(UserInputError, match=rf'^config.model.{key}={value} would change nothing: '
                     rf'{config.model.name} does not read model.{key} '):
    validation.validate_config(config)


def test_main_refuses_a_switch_the_network_does_not_read_before_writing(tmp_path):
  workdir = tmp_path / 'run'
  result = run_main('--config.dataset.name=synthetic', '--config.model.lrn=False',
                    f'--workdir={workdir}', config='configs/cuda_convnet_cifar.py:18pct')
  assert result.returncode == 2
  assert result.stderr.strip() == (
      'error: config.model.lrn=False would change nothing: layer_net does not read model.lrn '
      f'({models.KNOBS_ELSEWHERE["layer_net"]}). Leave it at True.')
  assert not workdir.exists()


def test_a_mesh_axis_of_minus_one_is_named_as_set_and_as_resolved():
  """mesh.model=-1 was echoed back as 2."""
  alexnet = default.get_config()
  alexnet.model.num_towers, alexnet.mesh.data, alexnet.mesh.model = 1, 1, -1
  with pytest.raises(UserInputError, match=r'not divisible by the model axis of the mesh, '
                     r'config.mesh.model=-1: 2 devices\.'):
    validation.validate_for_mesh(alexnet, 1, 2, process_count=1)


def test_output_folders_are_made_or_refused_before_the_work(tmp_path):
  """write_image_stats computed for a minute, then failed on a missing folder; report --plot into a
  folder it could not write printed the tables, then a traceback."""
  assert paths.unwritable_folder(tmp_path / 'new' / 'plots') is None
  assert (tmp_path / 'new' / 'plots').is_dir() and not os.listdir(tmp_path / 'new' / 'plots')
  (tmp_path / 'a_file').write_text('')
  assert paths.unwritable_folder(tmp_path / 'a_file' / 'plots') == 'Not a directory'
  result = subprocess.run([sys.executable, '-m', 'alexnet_jax.report', 'results/',
                           f'--plot={tmp_path / "a_file" / "plots"}'], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and not result.stdout
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: --plot={tmp_path / "a_file" / "plots"}: the folder cannot be written (Not a '
      'directory).')


def test_the_tower_rule_of_the_mesh_binds_only_a_net_with_towers():
  alexnet = default.get_config()
  alexnet.model.num_towers, alexnet.mesh.model = 1, 2
  with pytest.raises(UserInputError, match=r'config.model.num_towers=1 is not divisible by the '
                     r'model axis of the mesh, config.mesh.model=2'):
    validation.validate_for_mesh(alexnet, 4, 2, process_count=1)
  # The Figure-1 net splits each layer's features over the model axis instead.
  validation.validate_for_mesh(small_config(), 4, 2, process_count=1)


@pytest.mark.parametrize('ops', ['handwritten', 'xla'])
def test_a_crop_too_small_for_alexnet_is_named_with_either_op_set(ops):
  """With the CPU op set this died in cpu_ops._window_views with a TypeError."""
  config = default.get_config()
  config.model.ops = ops
  with pytest.raises(UserInputError, match=r'^config.dataset.crop_size=63 is too small for '
                     r'AlexNet: its pooling leaves no pixels'):
    steps.train_state_shapes(config, models.create_model(config.model, 10), (63, 63, 3))


def test_resuming_on_data_of_another_size_or_other_classes_is_refused(tmp_path):
  """Issue 32: 180 images, then 360 in another folder, gave epochs recorded at steps 5, 11, 22
  and a history of epochs [1, 1, 2]."""
  def folder(name, classes=('cat', 'dog', 'ship'), per_class=20):
    write_image_folder(tmp_path / name, classes=classes, per_class=per_class, size=(32, 32))
    return str(tmp_path / name)

  def config(data_dir, num_epochs):
    return small_config(**{'dataset.name': 'image_folder', 'dataset.data_dir': data_dir,
                           'num_epochs': num_epochs, 'dataset.shuffle_buffer': 60})

  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config(folder('first'), 1), workdir)
  for other, found in ((folder('bigger', per_class=40), '120 training examples of 3 classes'),
                       (folder('renamed', classes=('cat', 'dog', 'frog')),
                        '60 training examples of 3 classes (cat, dog, frog)')):
    with pytest.raises(UserInputError, match=rf"^workdir '{workdir}' was trained on 60 training "
                       rf"examples of 3 classes \(cat, dog, ship\), but dataset.data_dir='{other}' "
                       rf'holds {re.escape(found)}'):
      train.train_and_evaluate(config(other, 2), workdir)
  shutil.copytree(tmp_path / 'first', tmp_path / 'moved')  # The same data, moved: it resumes.
  train.train_and_evaluate(config(str(tmp_path / 'moved'), 2), workdir)
  assert [m['epoch'] for m in read_metrics(workdir) if 'eval_top1_error' in m] == [1, 2]
