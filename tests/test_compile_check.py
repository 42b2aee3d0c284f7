"""The ahead-of-time TPU compile check, for real: libtpu (requirements-tpu.txt) compiles the
train step of a small two-tower AlexNet for a v5e 2x2 slice on this CPU-only machine. Each
compile runs in a subprocess, as the command does, so that libtpu never loads into the test
process."""

import collections
import dataclasses
import importlib.util
import json
import subprocess
import sys

import pytest

from alexnet_jax import chips, compile_check
from tests.helpers import REPO, slow

pytestmark = pytest.mark.skipif(importlib.util.find_spec('libtpu') is None,
                                reason='libtpu is not installed: pip install -r '
                                'requirements-tpu.txt (CI does)')

# The paper's two-tower layout with few kernels, on 67x67 crops: compiles in seconds.
SMALL_ALEXNET = ['--config.model.conv_features=(16,32,48,48,32)',
                 '--config.model.fc_features=(64,64)', '--config.dataset.image_size=72',
                 '--config.dataset.crop_size=67', '--config.dataset.name=synthetic',
                 '--config.mesh.data=2', '--config.mesh.model=2']


def _compile(*configs: tuple[str, ...]) -> list[dict]:
  """The train step of each (CONFIG[:VARIANT], statement on `config`, ...), configs/CONFIG.py
  changed by those statements, compiled for v5e 2x2 in one subprocess: what compile_check
  measured."""
  builds = '\n'.join(
      f'config = {name.partition(":")[0]}.get_config('
      f'{repr(name.partition(":")[2]) if ":" in name else ""})\n'
      'config.dataset.name = "synthetic"\n' + '\n'.join(settings) + '\nconfigs.append(config)'
      for name, *settings in configs)
  code = f'''
import json
from alexnet_jax import compile_check
from configs import default, relu_vs_tanh
configs = []
{builds}
chip, shape = compile_check.parse_topology('v5e:2x2')
devices = compile_check.topology_devices(chip, shape)
for config in configs:
  (step,), mesh = compile_check.compile_steps(config, devices, 10, step_names=('train',))
  print(json.dumps({{'kind': devices[0].device_kind, 'mesh': mesh, 'hbm': chip.hbm_bytes,
                    'total': step.total_bytes, 'arguments': step.argument_bytes,
                    'temp': step.temp_bytes, 'flops': step.flops,
                    'collectives': [[*key, n] for key, n in step.collectives.items()],
                    'collective_bytes': [[*key, n] for key, n in step.collective_bytes.items()]}}))
'''
  done = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                        timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  return [json.loads(line) for line in done.stdout.strip().splitlines()[-len(configs):]]


def test_the_train_step_compiles_for_a_tpu_slice_with_the_designed_collectives():
  """A small two-tower net on a (2, 2) mesh, under the towers and the hybrid scheme."""
  small = ('config.model.conv_features = (16, 32, 48, 48, 32)',
           'config.model.fc_features = (64, 64)',
           'config.dataset.update(image_size=72, crop_size=67)',
           'config.mesh.update(data=2, model=2)')
  towers, hybrid = _compile(('default', *small), ('default', *small, 'config.mesh.scheme = "hybrid"'))
  assert towers['kind'].startswith('TPU v5') and towers['mesh'] == [2, 2]
  by_kind = {}
  for kind, axis, what, count in towers['collectives']:
    by_kind.setdefault((kind, axis), []).extend([what] * count)
  # The layers that read both towers gather them over 'model' (Figure 2); nothing else does.
  assert sorted(by_kind[('all-gather', 'model')]) == ['conv3', 'fc6', 'fc7', 'fc8']
  assert not any(kind == 'all-gather' and axis != 'model' for kind, axis in by_kind)
  # The gradients of the parameters each data replica holds are summed over 'data'.
  assert any(what.endswith('arrays') and int(what.split()[0]) >= 10
             for what in by_kind[('all-reduce', 'data')])
  assert 0 < towers['arguments'] < towers['total'] < towers['hbm'] and towers['flops'] > 0
  # Hybrid: the conv features of the batch (128 examples, conv5's 32 maps of 1x1 in float32, a
  # device's 32 of them) gathered once over every device; each device's operand is its 32 x 32.
  sizes = {(kind, axis, what): n for kind, axis, what, n in hybrid['collective_bytes']}
  assert sizes[('all-gather', 'data+model', 'whole_batch')] == 128 // 4 * 32 * 4
  assert all(n > 0 for n in sizes.values())


@slow  # 40 s of TPU compiles; docs/accelerators.md's table shows the same on the paper's net.
def test_bfloat16_halves_the_activations_not_the_parameters():
  """The Figure-1 net on one chip at a batch whose float32 activations outgrow the chip's
  on-chip memory (measured: 65.9 MiB of HBM temporaries in float32, 2.0 in bfloat16)."""
  cifar = ('relu_vs_tanh:figure1_net', 'config.mesh.data = 1', 'config.batch_size = 512')
  f32, bf16 = _compile((*cifar, 'config.compute_dtype = "float32"'),
                       (*cifar, 'config.compute_dtype = "bfloat16"'))
  assert bf16['arguments'] == f32['arguments']  # Parameters and velocity stay float32.
  assert bf16['temp'] < f32['temp'] / 2
  assert 0 < bf16['total'] < f32['total'] < f32['hbm']


def test_a_config_that_cannot_fit_is_refused_in_one_line():
  done = subprocess.run(
      [sys.executable, '-m', 'alexnet_jax.compile_check', '--config=configs/default.py',
       '--topology=v5e:2x2', '--steps=train', '--num_classes=10', *SMALL_ALEXNET,
       '--config.batch_size=4194304'], cwd=REPO, capture_output=True, text=True, timeout=600)
  assert done.returncode == 2, done.stderr[-3000:]
  errors = [line for line in done.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and 'does not fit v5e:2x2' in errors[0] and 'G' in errors[0]
  assert 'Traceback' not in done.stderr


def test_topologies_and_collective_groups_are_parsed():
  chip, shape = compile_check.parse_topology('v5p:2x2x1')
  assert chip.name == 'TPU v5p' and shape == (2, 2, 1)
  with pytest.raises(compile_check.errors.UserInputError, match="'v9x:2x2' is not CHIP:SHAPE"):
    compile_check.parse_topology('v9x:2x2')
  line = ('%all-reduce = (f32[], f32[]) all-reduce(%a, %b), channel_id=1, '
          'replica_groups=[2,2]<=[2,2]T(1,0), use_global_device_ids=true')
  assert compile_check.replica_groups(line) == [[0, 2], [1, 3]]
  assert compile_check.mesh_axis([[0, 2], [1, 3]], (2, 2)) == 'data'
  assert compile_check.mesh_axis([[0, 1], [2, 3]], (2, 2)) == 'model'
  assert compile_check.mesh_axis([[0, 1, 2, 3]], (2, 2)) == 'data+model'
  assert dict(compile_check.collectives(line, (2, 2))[0]) == {
      ('all-reduce', 'data', '2 arrays'): 1}
  gather = ('  %x.1 = f32[2,64]{1,0} parameter(0)\n'
            '  %ag = f32[8,64]{1,0} all-gather(%x.1), channel_id=2, replica_groups=[1,4]<=[4], '
            'dimensions={0}, metadata={op_name="jit(f)/whole_batch/ag"}')
  assert dict(compile_check.collectives(gather, (2, 2))[1]) == {
      ('all-gather', 'data+model', 'whole_batch'): 2 * 64 * 4}  # The operand's, looked up.


def test_a_count_the_compiler_does_not_give_reads_n_a_never_0():
  step = compile_check.StepReport('train', 1.0, 2 * 2**30, 2**30, 2**30, 2**29, None, None,
                                  collections.Counter(), collections.Counter(), 128)
  chip = chips.CHIPS['h100']
  text = compile_check.describe(step, chip)
  assert '  work: n/a GFLOP, n/a GB accessed' in text
  assert 'bound: none (this compiler gives no FLOP or byte counts)' in text
  row = compile_check.markdown_row('default', 'h100:8', (8, 1), 'towers', 'float32', step, chip)
  assert '| n/a | n/a |' in row and row.endswith('| n/a |') and '0.0 |' not in row
  known = dataclasses.replace(step, flops=989e9, bytes_accessed=None)  # 1 ms of compute.
  assert '  work: 989.00 GFLOP, n/a GB accessed' in compile_check.describe(known, chip)
  assert 'bound: step >= 1.000 ms (compute)' in compile_check.describe(known, chip)
