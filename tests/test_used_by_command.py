"""The command users type first, `python -m alexnet_jax.main --config=configs/relu_vs_tanh.py`:
with an empty --workdir, and offline. Without --workdir, as the README writes it (its folder
named after it, resumed when run again): tests/test_commands.py."""

import os
import socket
import subprocess
import sys
import time

import pytest

from alexnet_jax import input_pipeline
from alexnet_jax.errors import UserInputError
from configs import relu_vs_tanh
from tests.helpers import REPO

SMALL = ['--config.dataset.name=synthetic', '--config.dataset.synthetic_train_examples=64',
         '--config.dataset.synthetic_eval_examples=20', '--config.batch_size=32',
         '--config.mesh.data=1']


def _main(cwd, *args):
  """`python -m alexnet_jax.main --config=configs/relu_vs_tanh.py ARGS`, run from `cwd`."""
  return subprocess.run(
      [sys.executable, '-m', 'alexnet_jax.main',
       f'--config={os.path.join(REPO, "configs", "relu_vs_tanh.py")}', *args],
      cwd=cwd, env={**os.environ, 'PYTHONPATH': REPO}, capture_output=True, text=True,
      timeout=300)


def test_an_empty_workdir_is_refused_before_anything_is_written(tmp_path):
  done = _main(tmp_path, *SMALL, '--workdir=')
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1].startswith("error: --workdir='' is empty")
  assert os.listdir(tmp_path) == []


def test_offline_a_tfds_download_fails_in_seconds_with_one_line(tmp_path, monkeypatch):
  def no_network(address, *args, **kwargs):
    raise OSError(f'network blocked by the test: {address}')

  monkeypatch.setattr(socket, 'create_connection', no_network)
  config = relu_vs_tanh.get_config().dataset
  config.unlock()
  config.name, config.data_dir = 'cifar10', str(tmp_path)
  started = time.monotonic()
  with pytest.raises(UserInputError, match=r"^dataset.name='cifar10' could not be prepared with "
                     r"TFDS .*its download needs \S+, which cannot be reached.*Offline, use "
                     r'dataset.name=image_folder or synthetic.$'):
    input_pipeline._tfds(config, 0, 1, with_eval=True)  # pylint: disable=protected-access
  assert time.monotonic() - started < 30
