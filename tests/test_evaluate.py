"""alexnet_jax.evaluate: a saved run evaluated again, without training."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from alexnet_jax import evaluate, run_folder, train
from alexnet_jax.errors import UserInputError
from tests.helpers import REPO, small_config


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  """A one-epoch run that tested the centre crop and the ten crops of 24 px from 32."""
  workdir = str(tmp_path_factory.mktemp('evaluate') / 'run')
  train.train_and_evaluate(small_config(**{
      'num_epochs': 1, 'dataset.synthetic_train_examples': 128, 'dataset.crop_size': 24,
      'dataset.random_crop': True, 'dataset.ten_crop_eval': True}), workdir)
  return workdir


def _saved_config(workdir):
  with open(os.path.join(workdir, run_folder.CONFIG_FILE)) as f:
    return ml_collections.ConfigDict(json.load(f))


def test_a_checkpoint_evaluated_again_gives_the_errors_the_run_logged(trained_run):
  logged = run_folder.read_run(trained_run).latest.metrics
  step, metrics = evaluate.evaluate_run(_saved_config(trained_run), trained_run, 'latest')
  assert step == 4  # 128 images, batch 32.
  assert metrics['eval_examples'] == 100  # Every example once: 6 batches of 16, the last padded.
  for key in ('eval_top1_error', 'eval_top5_error', 'eval_10crop_top1_error',
              'eval_10crop_top5_error', 'eval_loss'):
    assert metrics[key] == pytest.approx(logged[key], abs=1e-6), key
  assert evaluate.evaluate_run(_saved_config(trained_run), trained_run, 'best')[0] == 4
  row = evaluate.row(step, 'validation', metrics)
  assert row['10-crop top-1 %'] == f'{100 * logged["eval_10crop_top1_error"]:.2f}'


def test_another_network_or_a_missing_checkpoint_is_refused(trained_run):
  config = _saved_config(trained_run)
  config.model.conv_features = (8, 8, 8)
  with pytest.raises(UserInputError, match='holds a different network than this config builds'):
    evaluate.evaluate_run(config, trained_run)
  with pytest.raises(UserInputError, match=r'not the run it evaluates'):
    evaluate.apply_overrides(_saved_config(trained_run), ['--config.dataset.crop_size=20'])
  said = {}
  for args in (['--checkpoint=999'], ['--config.model.lrn=True']):
    done = subprocess.run([sys.executable, '-m', 'alexnet_jax.evaluate',
                           f'--workdir={trained_run}', *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), lines
    said[args[0]] = lines[0]
  assert 'no such checkpoint; its steps: [4]' in said['--checkpoint=999']
