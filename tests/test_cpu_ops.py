"""cpu_ops' hand-written gradients equal XLA's autodiff of the plain operations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from alexnet_jax import blocks, cpu_ops, models
from configs import default
from tests.helpers import assert_close


def values_and_grads(fn, *args):
  """fn's value and the gradient of sum(fn * fixed random weights) for every argument."""
  out = fn(*args)
  weights = jax.random.normal(jax.random.PRNGKey(1), out.shape)
  grads = jax.grad(lambda *a: jnp.sum(fn(*a) * weights), argnums=tuple(range(len(args))))(*args)
  return out, grads


@pytest.mark.parametrize('size,kernel,stride,channels,padding', [
    # With 17 images, 3->8 and 2->3 take the per-offset matmuls, 6->4 and 8->16 XLA's kernel
    # gradient.
    (12, 5, 1, (3, 8), 'SAME'),      # The CIFAR-10 net's layers.
    (8, 5, 1, (8, 16), 'SAME'),
    (31, 11, 4, (3, 8), 'VALID'),    # AlexNet's conv1.
    (9, 3, 1, (6, 4), ((1, 1), (1, 1))),
    (10, 4, 2, (2, 3), ((2, 1), (2, 1))),  # Uneven padding (cuda-convnet's conv1).
])
def test_conv_gradients_equal_xla(size, kernel, stride, channels, padding):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(17, size, size, channels[0])), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, *channels)), jnp.float32)
  pads = cpu_ops.explicit_padding(padding, (size, size), kernel, stride)
  plain = lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), padding,
                                                dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  want, want_grads = values_and_grads(plain, x, w)
  got, got_grads = values_and_grads(lambda x, w: cpu_ops.conv(x, w, stride, pads), x, w)
  # The forward pass is XLA's own, on a layout XLA:CPU runs faster (a stride-aligned or
  # 4-channel input: the same sums, maybe in another order).
  assert_close(got, want)
  for g, w_ in zip(got_grads, want_grads):
    assert_close(g, w_)


@pytest.mark.parametrize('size,window,stride,padding,aligned', [
    (227, 11, 4, ((0, 0), (0, 0)), ((0, 1), (0, 1))),  # AlexNet's conv1: 227 -> 228.
    (31, 11, 4, ((0, 0), (0, 0)), ((0, 1), (0, 1))),
    (10, 4, 2, ((2, 1), (2, 1)), ((2, 1), (2, 1))),  # 13: a window would read a 14th pixel.
    (24, 5, 2, ((2, 2), (2, 2)), ((2, 2), (2, 2))),  # 28: aligned already.
])
def test_stride_alignment_pads_only_zeros_no_window_reads(size, window, stride, padding,
                                                         aligned):
  got = cpu_ops._stride_aligned(padding, (size, size), window, stride)
  assert got == aligned
  out = lambda pads: (size + sum(pads[0]) - window) // stride + 1
  assert out(got) == out(padding)


def test_kernel_gradient_takes_the_faster_formulation_for_each_layer_shape():
  # AlexNet's layers on a device's 64 images.
  assert cpu_ops._matmul_kernel_gradient(64, 3, 96)  # conv1
  assert cpu_ops._matmul_kernel_gradient(64, 48, 128)  # conv2, a tower
  # The CIFAR net's, on its micro-batches of 8 images (and conv2 on any number).
  assert not cpu_ops._matmul_kernel_gradient(8, 3, 32)
  assert not cpu_ops._matmul_kernel_gradient(64, 32, 32)
  assert cpu_ops._matmul_kernel_gradient(17, 2, 3) and not cpu_ops._matmul_kernel_gradient(3, 2, 3)


@pytest.mark.parametrize('size,window,stride,padding', [
    (13, 3, 2, 'SAME'), (16, 3, 2, 'SAME'), (13, 3, 2, 'VALID'), (14, 3, 2, 'VALID'),
    (12, 2, 2, 'SAME'), (13, 2, 2, 'VALID'), (7, 3, 3, 'SAME')])
def test_max_pool_gradient_equals_select_and_scatter(size, window, stride, padding):
  rng = np.random.default_rng(0)
  # ReLU maps: many windows hold ties (zeros), where the first maximum must take the gradient.
  x = jax.nn.relu(jnp.asarray(rng.normal(size=(2, size, size, 4)), jnp.float32))
  x = x.at[0, :4, :4].set(1.0)  # Ties between positive values, too.
  pads = cpu_ops.explicit_padding(padding, (size, size), window, stride)
  want, (want_grad,) = values_and_grads(
      lambda x: nn.max_pool(x, (window, window), (stride, stride), padding), x)
  got, (got_grad,) = values_and_grads(lambda x: cpu_ops.max_pool(x, window, stride, pads), x)
  np.testing.assert_array_equal(got, want)
  assert_close(got_grad, want_grad, rtol=1e-6)
  # Each window's gradient goes to one pixel: none is lost or doubled.
  assert np.isclose(float(jnp.sum(got_grad)), float(jnp.sum(want_grad)), rtol=1e-5)


@pytest.mark.parametrize('beta,groups', [(0.75, 1), (0.75, 2), (0.5, 2)])
def test_lrn_value_and_gradient_equal_the_plain_formula(beta, groups):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(0, 30, size=(2, 5, 5, 12)), jnp.float32)  # Large enough to matter.
  want, (want_grad,) = values_and_grads(
      lambda x: blocks.local_response_norm(x, k=2.0, n=5, alpha=1e-4, beta=beta,
                                           num_groups=groups), x)
  got, (got_grad,) = values_and_grads(
      lambda x: cpu_ops.local_response_norm(x, 2.0, 5, 1e-4, beta, groups), x)
  assert float(jnp.max(jnp.abs(want - x))) > 1.0  # The normalization changes the maps.
  assert_close(got, want, rtol=1e-6)
  assert_close(got_grad, want_grad)


def test_auto_ops_take_the_cpu_gradients_on_the_cpu():
  model_config = default.get_config().model
  assert models.create_model(model_config, 10).ops is blocks.OPS['handwritten']
  model_config.ops = 'xla'
  assert models.create_model(model_config, 10).ops is blocks.OPS['xla']
