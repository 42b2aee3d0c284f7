"""What each tool loads: the step is built without TensorFlow (only the input pipeline needs
it), and a launcher reads its runs' state without JAX. Each check runs in a fresh interpreter,
whose sys.modules shows exactly what the imports and the work loaded."""

import subprocess
import sys
import textwrap

from tests.helpers import REPO

# The Figure-1 net, small, on 24x24 crops: builds and compiles in seconds.
SMALL_NET = '''
from configs import relu_vs_tanh
config = relu_vs_tanh.get_config('figure1_net')
config.dataset.name = 'synthetic'
config.model.conv_features = (8, 8, 16)
config.batch_size = config.eval_batch_size = 4
'''


def _run(code: str) -> str:
  result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_the_step_module_imports_no_tensorflow():
  assert _run('''
      import sys
      import alexnet_jax.steps
      print('tensorflow' in sys.modules, 'jax' in sys.modules)
      ''').split() == ['False', 'True']


def test_compile_check_diagnose_and_the_benchmark_build_a_step_without_tensorflow():
  out = _run(SMALL_NET + '''
import sys
import jax
import numpy as np
sys.path.insert(0, 'benchmarks')
import steps as benchmark_steps  # benchmarks/steps.py, as benchmarks/train_step.py imports it.
from alexnet_jax import compile_check, diagnose, models

reports, mesh_shape = compile_check.compile_steps(config, jax.devices()[:1], 10, ('eval',))
_, flops = benchmark_steps.jax_train_step(config, 10, (1, 1))  # Compiled: its cost is read.
model = models.create_model(config.model, 10)
# Shapes only (compiling the random init takes long): diagnose's measures need not be finite here.
size = config.dataset.crop_size
params = jax.tree.map(lambda leaf: np.ones(leaf.shape, leaf.dtype), jax.eval_shape(
    lambda: models.init_params(model, (size, size, 3), jax.random.key(0))))
images = np.zeros((2, size, size, 3), np.float32)
ratios = diagnose.gradient_ratios(model, params, images, np.array([1, 2]), jax.random.key(1))
print(sorted(r.name for r in reports), mesh_shape, flops > 0, sorted(ratios)[0])
print('tensorflow' in sys.modules)
''')
  built, tensorflow_loaded = out.strip().splitlines()[-2:]
  assert built == "['eval'] (1, 1) True conv1"
  assert tensorflow_loaded == 'False'


def test_the_launchers_status_check_imports_no_jax(tmp_path):
  """A run folder with a checkpoint (its metrics written as orbax writes them) and a record of the
  repository: their states read as the JSON they are."""
  out = _run(f'''
import json, os, sys
from launch import sweep
runs = {{r.name: r for r in sweep.expand('configs/ablations.py:imagenette_131', {str(tmp_path)!r}, [])}}
resumed = runs['lrn=False,seed=0']
os.makedirs(os.path.join(resumed.workdir, 'checkpoints', '40', 'metrics'))
with open(os.path.join(resumed.workdir, 'config.json'), 'w') as f:
  json.dump({{'num_epochs': 20, 'stop_at_train_error': 0.0, 'model': {{}}, 'dataset': {{}}}}, f)
with open(os.path.join(resumed.workdir, 'checkpoints', '40', 'metrics', 'metrics'), 'w') as f:
  json.dump({{'finished': False, 'train_loss': 2.0}}, f)
print(sweep.status(runs['seed=0'], 'results/imagenette_131/seed=0'), '|', sweep.status(resumed),
      '|', sweep.status(runs['pool_size=2,seed=0']))
print(sorted(m for m in ('jax', 'flax', 'orbax', 'tensorflow') if m in sys.modules))
''')
  states, loaded = out.strip().splitlines()[-2:]
  assert states == 'recorded | resumes at step 40 | new'
  assert loaded == '[]'
