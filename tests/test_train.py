"""The real training loop on small synthetic and image-folder data."""

import glob
import json
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import input_pipeline, models, parallel, run_folder, steps, train, validation
from tests.helpers import (cifar_net_forward_flops, latest_params, read_metrics, run_main,
                           small_config, write_image_folder)


def test_training_lowers_the_loss_and_writes_the_run_folder(tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  config = small_config(num_epochs=3, profile_steps=(2, 3))
  with caplog.at_level('INFO'):
    final = train.train_and_evaluate(config, workdir)
  records = read_metrics(workdir)
  train_losses = [r['train_loss'] for r in records if 'train_loss' in r]
  assert train_losses[-1] < 0.5 * train_losses[0]
  assert final['eval_examples'] == 100
  assert final['eval_top1_error'] < 0.3  # Chance is 0.9.
  assert {'config.json', 'metrics.jsonl', 'checkpoints'} <= set(os.listdir(workdir))
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['model']['activation'] == 'relu'
  assert latest_params(workdir)[0] == 3 * 512 // 32
  # Each epoch records the code it ran: this checkout's version.
  assert run_folder.commits(run_folder.read_run(workdir)) == [run_folder.code_version()]
  # The model FLOP rate is a training step's: 2-4x the forward pass counted by hand, per image;
  # no MFU on a CPU.
  for record in (r for r in records if 'train_loss' in r):
    flops_per_image = record['model_flops_per_sec_per_device'] / record['images_per_sec']
    assert 2.0 < flops_per_image / cifar_net_forward_flops(config) < 4.0
    assert 'mfu' not in record
  assert 'model GFLOP/s per device, ETA' in caplog.text
  # profile_steps=(2, 3): one trace, whose steps are annotated.
  traces = glob.glob(os.path.join(workdir, 'profile', 'plugins', 'profile', '*', '*.xplane.pb'))
  assert len(traces) == 1
  with open(traces[0], 'rb') as f:
    trace = f.read()
  assert b'step_num' in trace and b'train' in trace


def test_code_version_names_the_commit_and_says_when_the_code_differs(tmp_path):
  repo = str(tmp_path / 'repo')
  git = lambda *args: subprocess.run(['git', '-C', repo, '-c', 'user.name=t', '-c',
                                      'user.email=t@t', *args], capture_output=True, text=True,
                                     check=True).stdout
  os.makedirs(repo)
  git('init', '-q')
  with open(os.path.join(repo, 'code.py'), 'w') as f:
    f.write('x = 1\n')
  git('add', 'code.py')
  git('commit', '-q', '-m', 'first')
  full_hash = git('log', '-1', '--format=%H').strip()
  assert run_folder.code_version(repo) == full_hash[:10]
  with open(os.path.join(repo, 'notes.txt'), 'w') as f:  # Untracked: not the code.
    f.write('notes')
  assert run_folder.code_version(repo) == full_hash[:10]
  with open(os.path.join(repo, 'code.py'), 'w') as f:
    f.write('x = 2\n')
  assert run_folder.code_version(repo) == full_hash[:10] + '+changes'
  assert run_folder.code_version(str(tmp_path)) == 'unknown'  # Not a git checkout.


def test_resumed_run_continues_at_the_checkpoint_step(tmp_path):
  straight, stopped = str(tmp_path / 'straight'), str(tmp_path / 'stopped')
  train.train_and_evaluate(small_config(num_epochs=2), straight)
  train.train_and_evaluate(small_config(num_epochs=1), stopped)
  assert latest_params(stopped)[0] == 16
  train.train_and_evaluate(small_config(num_epochs=2), stopped)
  steps = [r['step'] for r in read_metrics(stopped) if 'train_loss' in r]
  assert steps == sorted(steps) and steps[-1] == 32  # Steps 17-32 after the resume, no repeat.
  step_a, params_a = latest_params(straight)
  step_b, params_b = latest_params(stopped)
  assert step_a == step_b == 32
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(a, b)


def test_evaluation_counts_every_example_once_on_the_centre_and_ten_crops():
  config = small_config(**{'dataset.crop_size': 28, 'dataset.ten_crop_eval': True})
  source = input_pipeline.create_source(config.dataset)
  mesh = parallel.create_mesh(1, 1)
  model = models.create_model(config.model, source.num_classes)
  sharded_model = models.create_model(config.model, source.num_classes, scheme='towers')
  state, specs = steps.create_train_state(config, sharded_model, (28, 28, 3), mesh)
  _, eval_fn = steps.make_steps(config, sharded_model, mesh, specs, steps_per_epoch=16)
  results = []
  with jax.set_mesh(mesh):
    for batch_size in (16, 100):  # Padded last batch, and one batch of everything.
      batches = input_pipeline.eval_batches(source, config.dataset, batch_size=batch_size)
      results.append(steps.evaluate(eval_fn, state.params, batches.as_numpy_iterator(), mesh,
                                    sharded_model.axes))
  images, labels = input_pipeline.synthetic_images(100, 10, 32, seed=1)
  images = images.astype(np.float32) - np.asarray(config.dataset.mean_rgb)
  corners = [images[:, y:y + 28, x:x + 28] for y, x in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2))]
  crops = corners + [c[:, :, ::-1] for c in corners]
  logits = [model.apply({'params': jax.device_get(state.params)}, c, train=False) for c in crops]
  centre_error = np.mean(np.argmax(logits[4], -1) != labels)
  probs = np.mean([jax.nn.softmax(l) for l in logits], axis=0)
  ten_crop_error = np.mean(np.argmax(probs, -1) != labels)
  assert centre_error != ten_crop_error  # The two evaluations differ on this untrained net.
  for result in results:
    assert result['eval_examples'] == 100
    assert result['eval_top1_error'] == pytest.approx(centre_error, abs=1e-6)
    assert result['eval_10crop_top1_error'] == pytest.approx(ten_crop_error, abs=1e-6)
  for key in ('eval_top5_error', 'eval_10crop_top5_error'):
    assert results[0][key] == pytest.approx(results[1][key], abs=1e-6)


def test_bfloat16_compute_stays_near_float32_and_keeps_float32_state():
  """compute_dtype=bfloat16 (the CIFAR net with LRN): from the same parameters, the logits
  within 2% of their largest magnitude and the step's loss within 1% of float32's; parameters
  and velocity float32 after the step. (Measured on the Figure-1 net and on AlexNet at full
  size: logits within 0.3% and 0.5% of their largest magnitude.)"""
  config = small_config(**{'model.lrn': True})
  mesh = parallel.create_mesh(1, 1)
  base_model = models.create_model(config.model, 10)
  model = models.create_model(config.model, 10, scheme='towers')
  rng = np.random.default_rng(0)
  batch = {'image': rng.integers(0, 256, (32, 32, 32, 3)).astype(np.uint8),
           'shift': rng.normal(-120, 10, (32, 3)).astype(np.float32),
           'flip': np.arange(32) % 2 == 0, 'label': rng.integers(0, 10, 32).astype(np.int32)}
  images = steps.training_images(batch)
  results = {}
  for dtype in ('float32', 'bfloat16'):
    config.compute_dtype = dtype
    state, specs = steps.create_train_state(config, model, (32, 32, 3), mesh)
    params = jax.device_get(state.params)  # The step donates the state.
    train_fn, _ = steps.make_steps(config, model, mesh, specs, steps_per_epoch=8)
    with jax.set_mesh(mesh):
      next_state, metrics = train_fn(state, steps.global_batch(batch, mesh, model.axes))
    logits = base_model.apply({'params': models.cast_for_compute(params, jnp.dtype(dtype))},
                              images.astype(dtype), train=False)
    results[dtype] = (np.asarray(logits, np.float32), float(metrics['loss']), next_state)
  (f32_logits, f32_loss, _), (bf16_logits, bf16_loss, bf16_state) = results.values()
  assert np.abs(f32_logits).max() > 1e-3  # Not all zero.
  assert np.abs(bf16_logits - f32_logits).max() <= 0.02 * np.abs(f32_logits).max()
  assert abs(bf16_loss - f32_loss) <= 0.01 * f32_loss
  floats = [leaf for leaf in jax.tree.leaves((bf16_state.params, bf16_state.opt_state))
            if jnp.issubdtype(leaf.dtype, jnp.floating)]
  assert floats and all(leaf.dtype == jnp.float32 for leaf in floats)


def test_image_folder_run(tmp_path):
  root = write_image_folder(str(tmp_path / 'data'), per_class=12, size=(32, 32))
  final = train.train_and_evaluate(
      small_config(**{'dataset.name': 'image_folder', 'dataset.data_dir': root,
                      'dataset.eval_split': 'test', 'batch_size': 12, 'num_epochs': 1}),
      str(tmp_path / 'run'))
  assert final['eval_examples'] == 36


IMAGENETTE_WNIDS = ('n01440764', 'n02102040', 'n02979186', 'n03000684', 'n03028079',
                    'n03394916', 'n03417042', 'n03425413', 'n03445777', 'n03888605')


def test_imagenette_131_config_trains_on_a_generated_folder_at_its_resolution(tmp_path):
  from configs import default  # pylint: disable=import-outside-toplevel
  root = write_image_folder(str(tmp_path / 'data'), splits=('train', 'val'),
                            classes=IMAGENETTE_WNIDS, per_class=1, size=(150, 170))
  config = default.get_config('imagenette_131')
  config.dataset.data_dir = root
  config.batch_size = 8
  validation.validate_config(config)
  # One training step as a run takes it (the loop's own tests cover the rest).
  source = input_pipeline.create_source(config.dataset)
  batch = next(input_pipeline.train_epoch(source, config.dataset, global_batch_size=8, seed=0,
                                          epoch=0, num_batches=1))
  assert source.num_classes == 10 and batch['image'].shape == (8, 131, 131, 3)
  mesh = parallel.create_mesh(1, 1)
  sharded = models.create_model(config.model, source.num_classes, scheme='towers')
  state, specs = steps.create_train_state(config, sharded, (131, 131, 3), mesh)
  train_fn, _ = steps.make_steps(config, sharded, mesh, specs, steps_per_epoch=1)
  batch.pop(input_pipeline.POSITION)
  state, metrics = train_fn(state, steps.global_batch(batch, mesh, sharded.axes))
  assert int(state.step) == 1 and np.isfinite(float(metrics['loss']))
  params = state.params
  # By hand: conv1 11x11x3x96 on 131x131 gives 31x31; pooled 15, 7, 3, so fc6 sees 3x3x256.
  # The grouped layers (conv2, conv4, conv5) see one tower's 48, 192, 192 maps.
  fc = (3 * 3 * 256 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10)
  two_towers = (11 * 11 * 3 * 96 + 96) + (5 * 5 * 48 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \
      + (3 * 3 * 192 * 384 + 384) + (3 * 3 * 192 * 256 + 256) + fc
  assert sum(p.size for p in jax.tree.leaves(params)) == two_towers == 28_597_642
  assert params['fc6']['kernel'].shape == (3 * 3 * 256, 4096)
  # Footnote 2's one-GPU net (the C6 ablation): conv1-conv4 halved, nothing grouped.
  config.model.update({'num_towers': 1, 'width_multiplier': 0.5})
  _, abstract, _ = steps.train_state_shapes(config, models.create_model(config.model, 10),
                                            (131, 131, 3))
  one_tower = (11 * 11 * 3 * 48 + 48) + (5 * 5 * 48 * 128 + 128) + (3 * 3 * 128 * 192 + 192) \
      + (3 * 3 * 192 * 192 + 192) + (3 * 3 * 192 * 256 + 256) + fc
  assert sum(p.size for p in jax.tree.leaves(abstract.params)) == one_tower == 27_430_730


@pytest.mark.parametrize('case', ['activation', 'data_dir', 'empty_folder', 'workdir'])
def test_bad_input_exits_with_one_clear_line(tmp_path, case):
  workdir = str(tmp_path / 'run')
  empty = tmp_path / 'empty'
  for split in ('train', 'test'):
    for name in ('cat', 'dog'):
      (empty / split / name).mkdir(parents=True)
  (tmp_path / 'a_file').write_text('')
  args, expected = {
      'activation': (['--config.model.activation=sigmoid'],
                     "config.model.activation='sigmoid' is not allowed; use one of "
                     "['relu', 'tanh']"),
      'data_dir': (['--config.dataset.name=image_folder',
                    f'--config.dataset.data_dir={tmp_path}/nowhere'], 'does not exist'),
      'empty_folder': (['--config.dataset.name=image_folder',
                        f'--config.dataset.data_dir={empty}'], 'no images'),
      'workdir': (['--config.dataset.name=synthetic'], 'cannot be written'),
  }[case]
  if case == 'workdir':
    workdir = str(tmp_path / 'a_file' / 'run')
  # TF_ENABLE_ONEDNN_OPTS=1 makes any CPU print what TensorFlow prints by default on AVX-512 ones.
  # A user's environment: no TF_CPP_MIN_LOG_LEVEL (conftest sets one for the tests).
  result = run_main(f'--workdir={workdir}', *args, env={'TF_ENABLE_ONEDNN_OPTS': '1',
                                                     'TF_CPP_MIN_LOG_LEVEL': None})
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: ') and expected in lines[0], lines
  assert not os.path.exists(os.path.join(workdir, 'config.json'))
