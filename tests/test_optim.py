"""The paper's SGD rule against hand arithmetic, and the learning-rate schedules."""

import jax.numpy as jnp
import numpy as np

from alexnet_jax import optim


def _two_steps(**kwargs):
  tx = optim.paper_sgd(0.9, 5e-4, **kwargs)
  params = {'conv': {'kernel': jnp.array([1.0, -2.0]), 'bias': jnp.array([0.5])}}
  grads = {'conv': {'kernel': jnp.array([0.1, 0.2]), 'bias': jnp.array([-0.3])}}
  state = tx.init(params)
  history = []
  for lr in (0.01, 0.001):  # The rate changes between the steps, as a cut would.
    updates, state = tx.update(grads, state, params, learning_rate=lr)
    params = {k: {n: params[k][n] + updates[k][n] for n in params[k]} for k in params}
    history.append(params)
  return history


def test_paper_update_rule_by_hand():
  step1, step2 = _two_steps()
  w, g = np.array([1.0, -2.0]), np.array([0.1, 0.2])
  v1 = -5e-4 * 0.01 * w - 0.01 * g
  w1 = w + v1
  v2 = 0.9 * v1 - 5e-4 * 0.001 * w1 - 0.001 * g
  np.testing.assert_allclose(step1['conv']['kernel'], w1, rtol=1e-6)
  np.testing.assert_allclose(step2['conv']['kernel'], w1 + v2, rtol=1e-6)
  b, gb = 0.5, -0.3
  np.testing.assert_allclose(step1['conv']['bias'], b - 5e-4 * 0.01 * b - 0.01 * gb, rtol=1e-6)


def test_bias_multiplier_and_no_bias_decay():
  step1, _ = _two_steps(decay_biases=False, bias_lr_multiplier=2.0)
  np.testing.assert_allclose(step1['conv']['bias'], 0.5 - 2 * 0.01 * -0.3, rtol=1e-6)
  np.testing.assert_allclose(step1['conv']['kernel'],
                             np.array([1.0, -2.0]) * (1 - 5e-6) - 0.01 * np.array([0.1, 0.2]),
                             rtol=1e-6)


def test_piecewise_cuts_at_epoch_boundaries():
  cuts = [int(optim.num_lr_cuts(jnp.int32(s), jnp.int32(0), schedule='piecewise',
                                boundaries_epochs=(2, 4), steps_per_epoch=10))
          for s in (0, 19, 20, 39, 40, 100)]
  assert cuts == [0, 0, 1, 1, 2, 2]
  assert int(optim.num_lr_cuts(jnp.int32(50), jnp.int32(2), schedule='plateau',
                               boundaries_epochs=(), steps_per_epoch=10)) == 2


def test_linear_warmup_reaches_the_full_rate_at_its_last_step():
  factors = [float(optim.warmup_factor(jnp.int32(s), 4.0)) for s in (0, 1, 3, 4, 100)]
  assert factors == [0.25, 0.5, 1.0, 1.0, 1.0]
  assert float(optim.warmup_factor(jnp.int32(0), 0.0)) == 1.0  # The paper: no warm-up.


def test_plateau_cuts_after_patience_at_most_max_cuts():
  state = (np.inf, 0, 0)
  kwargs = dict(patience=2, min_delta=0.01, max_cuts=1)
  state = optim.plateau_update(0.5, *state, **kwargs)
  assert state == (0.5, 0, 0)
  state = optim.plateau_update(0.495, *state, **kwargs)  # Less than min_delta: no progress.
  assert state == (0.5, 1, 0)
  state = optim.plateau_update(0.6, *state, **kwargs)
  assert state == (0.5, 0, 1)  # Cut.
  state = optim.plateau_update(0.6, *state, **kwargs)
  state = optim.plateau_update(0.6, *state, **kwargs)
  assert state[2] == 1  # No more than max_cuts.
