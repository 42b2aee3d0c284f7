"""Every scheme and mesh shape computes the single-device grouped network (8 CPU devices,
conftest.py)."""

import json
import os
import re
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from alexnet_jax import blocks, checkpoints, compile_check, models, naming, parallel, steps, train
from configs import default, relu_vs_tanh
from tests.helpers import SMALL_ALEXNET, assert_close, latest_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Both axes at once: data replicas, and a tower per device on 'model' (the two-process test runs
# (2, 2), the benchmark test (1, 2) and (2, 1)); other shapes take the same code paths, and each
# costs two compilations.
MESHES = [(4, 2)]
IMAGE = 67  # The smallest input that leaves conv5 one pixel after pooling: quick to compile.


def tiny_config():
  config = default.get_config()
  config.model.update(SMALL_ALEXNET)
  config.model.dropout_rate = 0.5  # Dropout's mask, too, must not depend on the mesh.
  config.dataset.name = 'synthetic'
  config.dataset.image_size = config.dataset.crop_size = IMAGE
  config.dataset.synthetic_train_examples = 64
  config.dataset.synthetic_eval_examples = 20
  config.batch_size = config.eval_batch_size = 8
  config.log_every_steps = 1
  config.lr_schedule = 'piecewise'
  return config


# Every cuda-convnet layer type, small, for the meshes too: the sequel's too (cmrnorm's min_div,
# initial biases, dropout after an fc layer).
TINY_LAYERS = ('conv1 conv filters=8 size=5 padding=2 init_std=0.05',
               'pool1 pool kind=max size=3 stride=2 act=1',
               'rnorm1 rnorm size=3 scale=0.001 pow=0.75',
               'conv2 conv filters=8 size=3 padding=1 init_std=0.05 init_bias=0.5 act=1',
               'rnorm2 cmrnorm size=3 scale=0.01 pow=0.75 min_div=2',
               'pool2 pool kind=avg size=3 stride=2',
               'local3 local filters=4 size=3 padding=1 init_std=0.05 act=1',
               'fc4 fc outputs=16 init_std=0.05 init_bias=0.1 act=1',
               'drop4 dropout keep=0.5',
               'fc5 fc init_std=0.05')


def tiny_layer_net_config():
  config = tiny_config()
  config.model.name = 'layer_net'
  config.model.layers = TINY_LAYERS
  config.model.cpu_micro_batch = 2  # Micro-batches under the mesh as well.
  return config


def batch_of(num):
  """A training batch as the input pipeline makes it: uint8 crops, shifts, reflections."""
  rng = np.random.default_rng(0)
  return {'image': rng.integers(0, 256, (num, IMAGE, IMAGE, 3)).astype(np.uint8),
          'shift': rng.normal(-120, 10, (num, 3)).astype(np.float32),
          'flip': np.arange(num) % 2 == 0,
          'label': rng.integers(0, 10, num).astype(np.int32)}


def network_batch(batch):
  """What the network sees of a training batch (the step computes it on the device)."""
  return {'image': steps.training_images(batch), 'label': batch['label']}


def single_device_reference(config, params, batch, dropout_key):
  """The plain grouped network on one device, with no mesh: logits, loss, grads, next params.
  XLA's own gradients (model.ops='xla'), so that the meshes, which take cpu_ops' on the CPU,
  are held to them too."""
  model_config = config.model.copy_and_resolve_references()
  model_config.ops = 'xla'
  model = models.create_model(model_config, 10)
  tx = steps.create_optimizer(config)

  @jax.jit  # Op by op, each op would compile on its own: several times slower.
  def reference(params, batch, dropout_key):
    def loss_fn(p):
      logits = model.apply({'params': p}, batch['image'], train=True,
                           rngs={'dropout': dropout_key})
      return jnp.mean(steps.cross_entropy(logits, batch['label'])), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, _ = tx.update(grads, tx.init(params), params, learning_rate=config.learning_rate)
    return logits, loss, grads, jax.tree.map(jnp.add, params, updates)

  return reference(params, batch, dropout_key)


def tiny_figure1_config():
  """The Figure-1 net (no hidden fc layer) on the same images."""
  config = tiny_config()
  config.model = relu_vs_tanh.get_config('figure1_net').model
  config.model.conv_features = (8, 8, 16)
  return config


def sharded_forward(model, mesh, specs):
  """(loss, logits, gradients) under `model`'s scheme, jitted: the logits of every device,
  [model copies, batch, classes] under 'towers' (each model shard has its rows' logits)."""
  towers = model.axes == parallel.SCHEMES['towers']

  def forward(p, b, key):
    loss, logits, grads = steps.loss_and_grads(p, b, key, model=model)
    return loss, logits[None] if towers else logits, grads

  batch = {'image': parallel.batch_spec(model.axes), 'label': parallel.batch_spec(model.axes)}
  logits_spec = P('model', 'data') if towers else parallel.batch_spec(model.axes)
  return parallel.sharded_step(forward, mesh, (specs.params, batch, P()),
                               (P(), logits_spec, specs.params))


@pytest.mark.parametrize('make_config,schemes', [
    (tiny_config, ('towers', 'data', 'hybrid')),
    (tiny_layer_net_config, ('towers', 'hybrid')),  # The sequel's layer types.
    (tiny_figure1_config, ('data',)),
])
def test_every_scheme_matches_the_single_device_network(make_config, schemes):
  """On a (4, 2) mesh, each scheme's logits, loss, gradients and updated parameters equal the
  plain network's on one device, dropout included."""
  config = make_config()
  batch = batch_of(8)
  params = None
  for scheme in schemes:
    config.mesh.scheme = scheme
    mesh = parallel.create_mesh(4, 2)
    model = models.create_model(config.model, 10, scheme=scheme)
    assert model.ops is blocks.OPS['handwritten']
    state, specs = steps.create_train_state(config, model, (IMAGE, IMAGE, 3), mesh)
    if params is None:  # The state is the same whole one under every scheme.
      params = jax.device_get(state.params)
      dropout_key = np.asarray(jax.random.fold_in(state.rng, 0))  # Uncommitted: any mesh.
      ref_logits, ref_loss, ref_grads, ref_next = single_device_reference(
          config, params, network_batch(batch), dropout_key)
      assert float(jnp.std(ref_logits)) > 1e-4
      assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(ref_grads))
    train_fn, _ = steps.make_steps(config, model, mesh, specs, steps_per_epoch=8)
    with jax.set_mesh(mesh):
      loss, logits, grads = sharded_forward(model, mesh, specs)(
          state.params, steps.global_batch(network_batch(batch), mesh, model.axes), dropout_key)
      next_state, metrics = train_fn(state, steps.global_batch(batch, mesh, model.axes))
    for copy in (logits if scheme == 'towers' else [logits]):
      assert_close(copy, ref_logits)
    assert_close(loss, ref_loss)
    assert_close(metrics['loss'], ref_loss)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
      assert_close(got, want)
    for got, want in zip(jax.tree.leaves(next_state.params), jax.tree.leaves(ref_next)):
      assert_close(got, want)


def test_hybrid_gathers_the_conv_features_once_and_reduces_no_fc_gradient():
  """The hybrid step on a (4, 2) mesh: one all-gather of the conv features over every device,
  its transpose, and no collective of an fc layer's weights' gradients (only the conv layers'
  and the classifier's are summed)."""
  config = tiny_config()
  config.mesh.scheme = 'hybrid'
  mesh = parallel.create_mesh(4, 2)
  model = models.create_model(config.model, 10, scheme='hybrid')
  state, specs = steps.create_train_state(config, model, (IMAGE, IMAGE, 3), mesh)
  assert specs.params['fc6']['kernel'] == P(None, parallel.ALL_AXES)
  assert specs.params['conv1']['kernel'] == specs.params['fc8']['kernel'] == P()
  train_fn, _ = steps.make_steps(config, model, mesh, specs, steps_per_epoch=8)
  with jax.set_mesh(mesh):
    hlo = train_fn.lower(state, steps.global_batch(batch_of(8), mesh, model.axes)).compile()
  found, _ = compile_check.collectives(hlo.as_text(), (4, 2))
  gathers = {key: n for key, n in found.items() if key[0] == 'all-gather'}
  assert gathers[('all-gather', 'data+model', 'whole_batch')] == 1
  # fc7 and the classifier read the fc layers' outputs of every device: those are gathered too.
  assert set(gathers) == {('all-gather', 'data+model', layer)
                          for layer in ('whole_batch', 'fc7', 'fc8')}
  # No collective carries the gradient of fc6's or fc7's kernel (this device's slice, computed
  # whole here): no collective operand has its shape.
  local_shapes = {tuple(leaf.shape[:-1]) + (leaf.shape[-1] // 8,)
                  for name in ('fc6', 'fc7') for leaf in [state.params[name]['kernel']]}
  operand_shapes = {tuple(int(d) for d in dims.split(','))
                    for line in hlo.as_text().splitlines()
                    if re.search(r'= .*\b(all-reduce|reduce-scatter|all-gather)(-start)?\(', line)
                    for dims in re.findall(r'f32\[([\d,]+)\]', line)}
  assert local_shapes and not local_shapes & operand_shapes, (local_shapes, operand_shapes)


def test_each_device_holds_half_of_every_kernel():
  config = default.get_config()  # The paper's network.
  mesh = parallel.create_mesh(1, 2)
  state, _ = steps.create_train_state(config, models.create_model(config.model, 1000,
                                                                  scheme='towers'),
                                      (227, 227, 3), mesh)
  half = {'conv1': (11, 11, 3, 48), 'conv2': (5, 5, 48, 128), 'conv3': (3, 3, 256, 192),
          'conv4': (3, 3, 192, 192), 'conv5': (3, 3, 192, 128), 'fc6': (9216, 2048),
          'fc7': (4096, 2048), 'fc8': (4096, 1000)}  # The classifier is computed whole.
  for name, shape in half.items():
    for tree in (state.params, state.opt_state.velocity):
      shards = tree[name]['kernel'].addressable_shards
      assert len(shards) == 2 and [s.data.shape for s in shards] == [shape, shape], name
  first, second = state.params['conv2']['kernel'].addressable_shards
  assert first.device != second.device


def collectives(hlo_text: str) -> dict[tuple[str, str, str], int]:
  """(kind, mesh axis, layer) of each collective of compiled HLO text on the (1, 2) mesh: what
  compile_check reports."""
  return dict(compile_check.collectives(hlo_text, (1, 2))[0])


def test_hlo_has_the_four_all_gathers_and_no_other_collective():
  config = tiny_config()
  mesh = parallel.create_mesh(1, 2)
  model = models.create_model(config.model, 10, scheme='towers')
  state, specs = steps.create_train_state(config, model, (IMAGE, IMAGE, 3), mesh)
  forward = parallel.sharded_step(
      lambda p, x: model.apply({'params': p}, x, train=False)[None], mesh,
      (specs.params, parallel.batch_spec(model.axes)), P('model', 'data'))
  with jax.set_mesh(mesh):
    images = steps.global_batch(network_batch(batch_of(8)), mesh, model.axes)['image']
    hlo = forward.lower(state.params, images).compile().as_text()
    # conv3, fc6, fc7 and fc8 read both towers; nothing else communicates in the forward pass.
    assert collectives(hlo) == {('all-gather', 'model', layer): 1
                                for layer in ('conv3', 'fc6', 'fc7', 'fc8')}
    train_fn, _ = steps.make_steps(config, model, mesh, specs, steps_per_epoch=8)
    hlo = train_fn.lower(state, steps.global_batch(batch_of(8), mesh, model.axes)).compile(
        ).as_text()
  gathers = {key: n for key, n in collectives(hlo).items() if key[0] == 'all-gather'}
  assert gathers == {('all-gather', 'model', layer): 1  # Their transposes are reduce-scatters.
                     for layer in ('conv3', 'fc6', 'fc7', 'fc8')}


def test_a_model_axis_of_one_device_gathers_nothing():
  """On a (2, 1) mesh (how `main` splits a 2-core CPU) the layers that read both towers have
  nothing to gather: the step holds no all-gather (XLA:CPU copied the maps of each, a fifth of
  the CIFAR-10 net's step), only the gradients' all-reduce over 'data'."""
  config = tiny_config()
  mesh = parallel.create_mesh(2, 1)
  model = models.create_model(config.model, 10, scheme='towers')
  state, specs = steps.create_train_state(config, model, (IMAGE, IMAGE, 3), mesh)
  train_fn, _ = steps.make_steps(config, model, mesh, specs, steps_per_epoch=8)
  with jax.set_mesh(mesh):
    hlo = train_fn.lower(state, steps.global_batch(batch_of(8), mesh, model.axes)).compile(
        ).as_text()
  kinds = {kind for kind, _, _ in compile_check.collectives(hlo, (2, 1))[0]}
  assert kinds == {'all-reduce'}, kinds


def _step_losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  return {r['step']: r['train_loss'] for r in records if 'train_loss' in r}


def test_checkpoint_moves_between_meshes_and_schemes(tmp_path):
  def run(workdir, mesh, num_epochs, scheme='towers'):
    config = tiny_config()
    config.mesh.data, config.mesh.model = mesh
    config.mesh.scheme = scheme
    config.num_epochs = num_epochs
    train.train_and_evaluate(config, str(workdir))
    return config

  run(tmp_path / 'moved', (1, 2), 1)
  hybrid = run(tmp_path / 'moved', (2, 1), 2, 'hybrid')  # Resumes the (1, 2) checkpoint at step 8.
  run(tmp_path / 'straight', (1, 2), 2)
  moved, straight = _step_losses(tmp_path / 'moved'), _step_losses(tmp_path / 'straight')
  assert sorted(moved) == sorted(straight) == list(range(1, 17))
  for step in range(9, 17):  # The loss of the first step after the move, and of the rest.
    assert moved[step] == pytest.approx(straight[step], rel=1e-5)
  # The towers' checkpoint, read into the hybrid scheme's layout, is the saved state bit for bit.
  mesh = parallel.create_mesh(2, 1)
  model = models.create_model(hybrid.model, 10, scheme='hybrid')
  fresh, _ = steps.create_train_state(hybrid, model, (IMAGE, IMAGE, 3), mesh)
  with checkpoints.create_manager(str(tmp_path / 'moved'), read_only=True) as manager:
    restored = checkpoints.restore_step(manager, 8, fresh)
    on_host = checkpoints.restore_on_host(manager, 8)
  assert restored.params['fc6']['kernel'].sharding.spec == P(None, parallel.ALL_AXES)
  for got, want in zip(jax.tree.leaves(restored.params), jax.tree.leaves(on_host['params'])):
    np.testing.assert_array_equal(np.asarray(got), want)


def test_mesh_shape_resolution():
  assert parallel.mesh_shape(-1, 2, 8) == (4, 2)
  assert parallel.mesh_shape(2, -1, 8) == (2, 4)
  assert parallel.mesh_shape(1, 1, 8) == (1, 1)
  with pytest.raises(ValueError, match='does not fit'):
    parallel.mesh_shape(4, 4, 8)


def test_cpu_device_count():
  # -1: one device per core, down to a count that divides every batch size.
  assert parallel.cpu_device_count(-1, 2, (128, 500)) == 2
  assert parallel.cpu_device_count(-1, 96, (128, 128)) == 64
  assert parallel.cpu_device_count(-1, 6, (128, 100)) == 4
  assert parallel.cpu_device_count(3, 2, (128,)) == 3  # Asked for: kept (validation checks it).
  # XLA_FLAGS that already split the CPU win (this test process has 8 devices from them).
  config = default.get_config()
  assert parallel.set_cpu_devices(
      config, {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}) is None
  assert jax.device_count() == 8


# The two-process test's run: the small AlexNet on a (2, 2) mesh, 3 steps.
TINY_RUN = {'dataset.name': 'synthetic', 'dataset.image_size': IMAGE, 'dataset.crop_size': IMAGE,
            'dataset.synthetic_train_examples': 24, 'dataset.synthetic_eval_examples': 10,
            'batch_size': 8, 'eval_batch_size': 8, 'num_epochs': 1,
            'model.conv_features': SMALL_ALEXNET['conv_features'],
            'model.fc_features': SMALL_ALEXNET['fc_features'], 'lr_schedule': 'piecewise',
            'mesh.data': 2, 'mesh.model': 2}


def _start_main(workdir, num_devices, extra_flags=()):
  """`main` on TINY_RUN in a process of its own with `num_devices` CPU devices."""
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={num_devices}'}
  flags = [f'--config.{key}={naming.flag_value(value)}' for key, value in TINY_RUN.items()]
  return subprocess.Popen(
      [sys.executable, '-m', 'alexnet_jax.main', f'--workdir={workdir}',
       '--config=configs/default.py', *flags, *extra_flags], cwd=REPO, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_processes_match_one_process(tmp_path, caplog):
  """Two processes of 2 CPU devices each (gloo), a (2, 2) mesh across them, 3 steps; the same run
  in this process (its first 4 devices) is the reference."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  processes = [
      _start_main(tmp_path / 'two', 2, [f'--config.distributed.coordinator_address=127.0.0.1:{port}',
                                        '--config.distributed.num_processes=2',
                                        f'--config.distributed.process_id={i}'])
      for i in (0, 1)]
  config = default.get_config()
  config.update_from_flattened_dict(TINY_RUN)
  with caplog.at_level('INFO'):
    train.train_and_evaluate(config, str(tmp_path / 'one'))
  assert "Mesh {'data': 2, 'model': 2} over 4 of 8 devices (1 processes)" in caplog.text
  logs = [p.communicate(timeout=300)[0] for p in processes]
  assert [p.returncode for p in processes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  assert "Mesh {'data': 2, 'model': 2} over 4 of 4 devices (2 processes)" in logs[0]
  (step_two, two), (step_one, one) = (latest_params(tmp_path / 'two'),
                                      latest_params(tmp_path / 'one'))
  assert step_two == step_one == 3
  for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)):
    assert_close(a, b)
  # Only process 0 writes the run's files.
  assert len(open(tmp_path / 'two' / 'metrics.jsonl').readlines()) == len(
      open(tmp_path / 'one' / 'metrics.jsonl').readlines())


def test_any_optax_optimizers_state_shards_like_the_parameters():
  config = tiny_config()
  model = models.create_model(config.model, 10, scheme='towers')
  abstract = jax.eval_shape(lambda: models.create_model(config.model, 10).init(
      {'params': jax.random.PRNGKey(0)}, jnp.zeros((1, IMAGE, IMAGE, 3)), train=False))
  params = abstract['params']
  param_specs = parallel.param_specs(params, model.replicated_layers(), model.axes)
  tx = optax.adam(1e-3)  # Two copies of the parameter tree (mu, nu) and a step count.
  state = steps.TrainState(step=0, params=params, opt_state=jax.eval_shape(tx.init, params),
                           rng=0, epoch_sums=0, lr_cuts=0, best_eval_error=0,
                           evals_without_improvement=0)
  specs = steps.state_specs(state, model, tx)
  adam_specs = specs.opt_state[0]
  assert adam_specs.mu == param_specs and adam_specs.nu == param_specs
  assert adam_specs.count == P()
  assert param_specs['conv2']['kernel'] == P(None, None, None, 'model')
  assert param_specs['fc8']['kernel'] == P()  # The classifier, whole on every shard.

