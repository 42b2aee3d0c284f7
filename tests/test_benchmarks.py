"""Every script in benchmarks/ runs at its smallest size, so that an interface change breaks CI
and not docs/performance.md's tables."""

import importlib.util
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from configs import relu_vs_tanh
from tests.helpers import REPO, cifar_net_forward_flops, slow

BENCHMARKS = os.path.join(REPO, 'benchmarks')


def _run(script, *args, devices=2):
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
  result = subprocess.run([sys.executable, os.path.join(BENCHMARKS, script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def _rows(table):
  """The numbers of each Markdown table row after the header."""
  rows = [line for line in table.splitlines() if line.startswith('| ') and '---' not in line]
  return [[float(x) for x in re.findall(r'(?<![\w.])(\d+\.\d+|\d+)(?![\w.])', row)]
          for row in rows[1:]]


@slow  # The same step as tests/test_parallel.py's, on the meshes docs/accelerators.md times.
def test_mesh_step_time_runs_the_real_step_on_each_mesh():
  out = _run('mesh_step_time.py', '--meshes=1x2,2x1', '--steps=1', '--batch_size=2',
             '--crop_size=67')
  assert '| (1, 2) |' in out and '| (2, 1) |' in out
  assert all(row[-1] > 0 for row in _rows(out))


@pytest.mark.parametrize('frameworks,compute_dtype', [
    ('jax', 'float32'), ('jax', 'bfloat16'), ('pytorch', 'float32'), ('pytorch', 'bfloat16')])
def test_train_step_times_each_framework(frameworks, compute_dtype):
  """Each framework's images/s is a step time the run could have measured (within its wall
  time), and the step's FLOPs per image (from XLA's count) are a training step's: 2-4x the
  forward pass counted by hand. The header names the type the step computed in."""
  if frameworks == 'pytorch' and importlib.util.find_spec('torch') is None:
    pytest.skip('PyTorch is not installed (pip install -r requirements-bench.txt)')
  started = time.time()
  out = _run('train_step.py', '--networks=cifar', '--batch_size=2', '--steps=1',
             '--mesh=1,1', '--cpu_devices=1', f'--frameworks={frameworks}',
             f'--compute_dtype={compute_dtype}')
  wall_seconds = time.time() - started
  assert f'ops auto, {compute_dtype}; batch 2' in out
  row = next(line for line in out.splitlines() if line.startswith('| cifar |'))
  cells = [c.strip() for c in row.strip('|').split('|')]
  column = {'jax': 1, 'pytorch': 2}[frameworks]
  images_per_s = float(cells[column].split()[0])
  assert 2 / wall_seconds < images_per_s < float('inf')  # Batch 2: one step took < the run.
  flops_per_image = float(cells[column + 3]) * 1e9 / images_per_s
  forward = cifar_net_forward_flops(relu_vs_tanh.get_config('figure1_net'))
  assert 2.0 < flops_per_image / forward < 4.0


def _image_folder(root, classes, per_class):
  rng = np.random.default_rng(0)
  for name in classes:
    os.makedirs(root / 'train' / name)
    for i in range(per_class):
      Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(
          root / 'train' / name / f'{i}.JPEG', quality=90)


def test_input_pipeline_on_a_class_folder_and_its_generated_jpegs(tmp_path):
  # An image folder as users have them: several classes, no validation split; one class of the
  # JPEGs the script writes when it is given no folder.
  _image_folder(tmp_path / 'folder', ('n01', 'n02'), 4)
  spec = importlib.util.spec_from_file_location('input_benchmark',
                                                os.path.join(BENCHMARKS, 'input_pipeline.py'))
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  script.jpegs_from_a_photo(str(tmp_path / 'generated'), 4, quality=90)
  os.rename(tmp_path / 'generated' / 'train' / 'photo_a', tmp_path / 'folder' / 'train' / 'n03')
  out = _run('input_pipeline.py', f'--images={tmp_path / "folder"}', '--batches=1',
             '--repeats=1', '--workers=1')
  rows = _rows(out)  # images/s, / PIL, / whole decode; the first row is the whole decode.
  assert len(rows) == 6 and all(row[-3] > 0 and row[-1] > 0 for row in rows)
  assert rows[0][-1] == 1.0
