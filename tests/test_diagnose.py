"""The diagnose command: its curvature, classifier input and offsets against direct computations,
and the command itself on the synthetic task."""

import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import diagnose, models
from configs import default
from tests.helpers import REPO, SMALL_ALEXNET


@pytest.fixture(scope='module')
def small_alexnet():
  """The paper's layout with few kernels: config, model, params, 6 images at 67 px, labels."""
  config = default.get_config()
  config.model.update(SMALL_ALEXNET, ops='xla')  # XLA's own ops: quicker to compile.
  model = models.create_model(config.model, 10)
  images = jax.random.normal(jax.random.PRNGKey(0), (6, 67, 67, 3)) * 50
  labels = jnp.array([0, 1, 2, 3, 0, 1])
  init = jax.jit(lambda key: model.init({'params': key}, images[:1], train=False)['params'])
  params = init(jax.random.PRNGKey(1))
  return config, model, params, images, labels


def test_sharpest_curvature_is_the_largest_eigenvalue_of_the_classifier_hessian(small_alexnet):
  _, model, params, images, labels = small_alexnet
  key = jax.random.PRNGKey(2)
  # The cross-entropy's Hessian in the classifier's kernel, by its formula: the mean over images
  # of (h h^T) (x) (diag(p) - p p^T), h the classifier's input, p the softmax.
  h = diagnose.classifier_input(model, params, images, key, 'fc8')
  p = jax.nn.softmax(h @ params['fc8']['kernel'] + params['fc8']['bias'])
  softmax_hessian = jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]
  hessian = jnp.einsum('ij,ik,icd->jckd', h, h, softmax_hessian) / len(h)
  want = float(np.linalg.eigvalsh(np.asarray(hessian, np.float64).reshape(640, 640))[-1])
  got = diagnose.sharpest_curvature(model, params, images, labels, key, 'fc8', iterations=300,
                                    key=jax.random.PRNGKey(3))
  assert want > 0
  np.testing.assert_allclose(got, want, rtol=2e-4)


def test_classifier_input_is_what_the_classifier_multiplies(small_alexnet):
  _, model, params, images, _ = small_alexnet
  key = jax.random.PRNGKey(2)
  h = diagnose.classifier_input(model, params, images, key, 'fc8')
  assert h.shape == (6, 64)
  scores = model.apply({'params': params}, images, train=True, rngs={'dropout': key})
  np.testing.assert_allclose(h @ params['fc8']['kernel'] + params['fc8']['bias'], scores,
                             rtol=1e-4, atol=1e-4)
  # Dropout (rate 0.5) zeroes about half of fc7's output and doubles the rest.
  assert 0.3 < float(jnp.mean(h == 0)) < 0.8


def test_offset_lengths_and_dead_units_by_hand(small_alexnet):
  assert diagnose.offset_lengths(jnp.array([[1.0, 2.0], [3.0, 4.0]])) == (15.0, 13.0)
  config, model, params, images, _ = small_alexnet
  assert diagnose.classifier_and_hidden(config.model) == ('fc8', ('fc6', 'fc7'))
  # fc7's bias at -100: no unit is positive for any image; fc6 untouched (bias 1): none dead.
  params = {**params, 'fc7': {**params['fc7'], 'bias': jnp.full(64, -100.0)}}
  stats = diagnose.score_stats(model, params, images, ('fc6', 'fc7'))
  assert float(stats['dead fc7']) == 1.0 and float(stats['dead fc6']) == 0.0
  scores = model.apply({'params': params}, images, train=False)
  assert float(stats['max |score|']) == float(jnp.max(jnp.abs(scores)))


def test_split_labels_keeps_each_class_in_its_own_block():
  labels = np.repeat(np.arange(10), 50)
  split = diagnose.split_labels(labels, 100, np.random.default_rng(0))
  np.testing.assert_array_equal(split // 100, labels)
  assert len(np.unique(split)) > 300  # 500 draws from 1,000 labels.


def _diagnose(*args):
  return subprocess.run(
      [sys.executable, '-m', 'alexnet_jax.diagnose', '--config=configs/relu_vs_tanh.py:figure1_net',
       '--config.dataset.name=synthetic', '--config.dataset.synthetic_train_examples=128',
       '--config.dataset.cache=False', '--config.model.conv_features=(8,8,16)',
       '--config.model.fc_features=(32,)', '--config.batch_size=32', '--config.mesh.data=1',
       *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_command_measures_at_init_then_steps():
  result = _diagnose('--steps=6', '--every=3', '--window=4', '--batches=2', '--split_classes=2')
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert out.startswith('20 classes, 2 batches of 32, 32 px')
  assert re.search(r'\|gradient\| / \|kernel\|: conv1 [\d.]+, conv2 [\d.]+, conv3 [\d.]+, '
                   r'fc4 [\d.]+, fc5 [\d.]+', out)
  curvature, bound = re.search(r'fc5: ([\d,.]+); SGD with momentum 0.9 is stable along it '
                               r'below lr ([\d.e+-]+)', out).groups()
  np.testing.assert_allclose(float(bound), 3.8 / float(curvature.replace(',', '')), rtol=1e-2)
  steps = re.findall(r'^step (\d+) loss [\d.]+ error [\d.]+(, max \|score\|)?', out, re.M)
  # Steps 1-5 and every third: scores and fc4's dead units.
  assert steps == [(str(i), ', max |score|' if i <= 5 or i % 3 == 0 else '') for i in range(1, 7)]
  assert re.search(r'^step 6 .*, dead fc4 [\d.]+$', out, re.M)
  losses, errors = zip(*((float(l), float(e)) for l, e in re.findall(
      r'^step \d+ loss ([\d.]+) error ([\d.]+)', out, re.M)))
  # One whole window of 4 steps (steps 5-6 make none), its means from the lines above.
  mean_loss, mean_error = re.search(r'^steps 1-4: mean loss ([\d.]+), mean training error '
                                    r'([\d.]+)%$', out, re.M).groups()
  assert abs(float(mean_loss) - np.mean(losses[:4])) < 1e-3
  assert abs(float(mean_error) - 100 * np.mean(errors[:4])) < 0.1
  assert 'steps 5-' not in out


def test_a_bad_count_is_named():
  result = _diagnose('--every=0')
  assert result.returncode == 2
  assert result.stderr.strip() == 'error: --every=0 must be at least 1.'
