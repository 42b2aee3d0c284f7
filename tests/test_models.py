"""The networks: parameter counts, layer shapes, LRN, towers and initialisation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from alexnet_jax import blocks, convnet_layers, models, run_folder
from configs import cuda_convnet, default, relu_vs_tanh
from tests.helpers import SMALL_ALEXNET, jit_init

LAYERS = ('conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8')
# The paper's layout with few kernels, for tests that run the network on 67x67 images.
SMALL = dict(num_classes=10, **SMALL_ALEXNET)


def _model(num_classes=1000, **overrides):
  config = default.get_config()
  config.model.update(overrides)
  return models.create_model(config.model, num_classes)


def _layer_shapes(model, size):
  def run():
    images = jnp.zeros((2, size, size, 3))
    variables = model.init({'params': jax.random.PRNGKey(0)}, images, train=False)
    return variables['params'], model.apply(variables, images, train=False,
                                            capture_intermediates=True)
  params, (_, state) = jax.eval_shape(run)
  outputs = {name: state['intermediates'][name]['__call__'][0].shape for name in LAYERS}
  return params, outputs


PAPER_OUTPUTS = {'conv1': (2, 55, 55, 96), 'conv2': (2, 27, 27, 256), 'conv3': (2, 13, 13, 384),
                 'conv4': (2, 13, 13, 384), 'conv5': (2, 13, 13, 256), 'fc6': (2, 4096),
                 'fc7': (2, 4096), 'fc8': (2, 1000)}


@pytest.mark.parametrize('size,padding', [(227, 'valid'), (224, 'cuda_convnet')])
def test_paper_network_parameters_and_shapes(size, padding):
  params, outputs = _layer_shapes(_model(conv1_padding=padding), size)
  assert sum(p.size for p in jax.tree.leaves(params)) == 60_965_224
  assert outputs == PAPER_OUTPUTS
  # The grouped layers see one tower's maps: 48, 192 and 192 input channels.
  assert params['conv2']['kernel'].shape == (5, 5, 48, 256)
  assert params['conv4']['kernel'].shape == (3, 3, 192, 384)
  assert params['conv5']['kernel'].shape == (3, 3, 192, 256)
  assert params['fc6']['kernel'].shape == (6 * 6 * 256, 4096)  # Pooled 13 -> 6.


def test_non_overlapping_pooling_gives_the_same_dimensions():
  _, outputs = _layer_shapes(_model(pool_size=2, pool_stride=2), 227)
  assert outputs == PAPER_OUTPUTS


def test_one_tower_nets():
  # No grouping: conv2, conv4 and conv5 see all maps.
  params, _ = _layer_shapes(_model(num_towers=1), 227)
  assert params['conv2']['kernel'].shape == (5, 5, 96, 256)
  # Footnote 2's one-GPU net: conv1-conv4 halved, conv5 and the fc layers at two-GPU size.
  params, outputs = _layer_shapes(_model(num_towers=1, width_multiplier=0.5), 227)
  expected = (11 * 11 * 3 * 48 + 48) + (5 * 5 * 48 * 128 + 128) + (3 * 3 * 128 * 192 + 192) \
      + (3 * 3 * 192 * 192 + 192) + (3 * 3 * 192 * 256 + 256) + (9216 * 4096 + 4096) \
      + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
  assert sum(p.size for p in jax.tree.leaves(params)) == expected == 59_798_312
  assert outputs['conv4'] == (2, 13, 13, 192) and outputs['conv5'] == (2, 13, 13, 256)


def test_cifar_net_shapes():
  config = relu_vs_tanh.get_config('figure1_net')
  model = models.create_model(config.model, 10)
  params = jax.eval_shape(lambda: model.init({'params': jax.random.PRNGKey(0)},
                                             jnp.zeros((1, 32, 32, 3)), train=False))['params']
  # 32 -> 16 -> 8 -> 4 after the three padded 3/2 poolings: 4 * 4 * 64 inputs to the classifier.
  assert params['fc4']['kernel'].shape == (4 * 4 * 64, 10)
  assert sum(p.size for p in jax.tree.leaves(params)) == 2432 + 25632 + 51264 + 10250


def test_cifar_net_on_micro_batches_computes_the_same_numbers():
  config = relu_vs_tanh.get_config('figure1_net')
  config.model.conv_features = (8, 8, 16)
  config.model.lrn = True
  config.model.cpu_micro_batch = 4
  config.model.ops = 'handwritten'
  micro = models.create_model(config.model, 10)
  assert micro.micro_batch == 4
  config.model.ops = 'xla'  # Its plain counterpart: no micro-batches, XLA's own gradients.
  plain = models.create_model(config.model, 10)
  assert plain.micro_batch == 0
  images = jax.random.normal(jax.random.PRNGKey(1), (6, 32, 32, 3)) * 60  # 4 + 2 images.
  params = jit_init(plain)({'params': jax.random.PRNGKey(0)}, images[:1])['params']

  def logits_and_grads(model):  # Jitted, as in a step (op by op it is several times slower).
    loss = lambda p: jnp.mean(jax.nn.logsumexp(model.apply({'params': p}, images, train=True), -1))
    return jax.jit(lambda p: (model.apply({'params': p}, images, train=True),
                              jax.grad(loss)(p)))(params)

  (got, got_grads), (want, want_grads) = logits_and_grads(micro), logits_and_grads(plain)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))
  for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * float(jnp.abs(w).max()))


def lrn_numpy(a, k, n, alpha, beta):
  """Sec. 3.3, written as the paper states it: a loop over kernel maps i."""
  b = np.empty_like(a)
  num_maps = a.shape[-1]
  for i in range(num_maps):
    lo, hi = max(0, i - n // 2), min(num_maps - 1, i + n // 2)
    b[..., i] = a[..., i] / (k + alpha * np.sum(a[..., lo:hi + 1] ** 2, axis=-1)) ** beta
  return b


def test_lrn_matches_the_papers_formula():
  a = np.random.default_rng(0).normal(0, 30, (2, 3, 3, 16)).astype(np.float32)
  got = blocks.local_response_norm(jnp.asarray(a), k=2.0, n=5, alpha=1e-4, beta=0.75)
  np.testing.assert_allclose(got, lrn_numpy(a, 2.0, 5, 1e-4, 0.75), rtol=1e-5)
  # Not torch's convention, which divides alpha by n: the two differ at this scale.
  assert not np.allclose(got, lrn_numpy(a, 2.0, 5, 1e-4 / 5, 0.75), rtol=1e-3)
  # Two towers normalise their own maps only.
  got = blocks.local_response_norm(jnp.asarray(a), k=2.0, n=5, alpha=1e-4, beta=0.75,
                                   num_groups=2)
  want = np.concatenate([lrn_numpy(a[..., :8], 2.0, 5, 1e-4, 0.75),
                         lrn_numpy(a[..., 8:], 2.0, 5, 1e-4, 0.75)], axis=-1)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def grouped_reference(params, images, model):
  """The same network with feature_group_count=2 for conv2, conv4, conv5."""
  conv = lambda x, p, stride, pad, groups: lax.conv_general_dilated(
      x, p['kernel'], (stride, stride), pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=groups) + p['bias']
  pool = lambda x: jax.lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                         'VALID')
  norm = functools.partial(blocks.local_response_norm, k=2.0, n=5, alpha=1e-4, beta=0.75,
                           num_groups=2)
  relu = jax.nn.relu
  x = pool(norm(relu(conv(images, params['conv1'], 4, 'VALID', 1))))
  x = pool(norm(relu(conv(x, params['conv2'], 1, ((2, 2), (2, 2)), 2))))
  x = relu(conv(x, params['conv3'], 1, ((1, 1), (1, 1)), 1))
  x = relu(conv(x, params['conv4'], 1, ((1, 1), (1, 1)), 2))
  x = pool(relu(conv(x, params['conv5'], 1, ((1, 1), (1, 1)), 2)))
  x = x.reshape(x.shape[0], -1)
  for name in ('fc6', 'fc7'):
    x = relu(x @ params[name]['kernel'] + params[name]['bias'])
  return x @ params['fc8']['kernel'] + params['fc8']['bias']


def _jit_apply(model):
  return jax.jit(functools.partial(model.apply, train=False))


def test_tower_convolutions_equal_grouped_convolution():
  model = _model(**SMALL)
  # 67x67: the smallest input that leaves every layer a map to convolve; quick to run.
  images = jax.random.normal(jax.random.PRNGKey(1), (2, 67, 67, 3)) * 50
  params = jit_init(model)({'params': jax.random.PRNGKey(0)}, images)['params']
  # Larger weights than the paper's init, so that the logits are far from zero.
  params = jax.tree.map(lambda p: p * 5, params)
  got = _jit_apply(model)({'params': params}, images)
  want = jax.jit(lambda p, x: grouped_reference(p, x, model))(params, images)
  assert float(jnp.std(want)) > 1e-3
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(want))))


def test_paper_initialisation():
  model = _model(num_classes=10)
  params = jit_init(model)({'params': jax.random.PRNGKey(0)}, jnp.zeros((1, 227, 227, 3)))
  params = params['params']
  for name in LAYERS:
    assert abs(float(jnp.std(params[name]['kernel'])) - 0.01) < 5e-4, name
    bias = 1.0 if name in ('conv2', 'conv4', 'conv5', 'fc6', 'fc7') else 0.0
    np.testing.assert_array_equal(params[name]['bias'], bias)


def test_dropout_scales_kept_units_and_drops_at_the_rate():
  x = jnp.ones((64, 512))
  y = blocks.dropout(x, 0.5, jax.random.PRNGKey(0), rows_axis=None, columns_axis=None)
  assert set(np.unique(np.asarray(y))) == {0.0, 2.0}
  assert abs(float(jnp.mean(y == 0)) - 0.5) < 0.02


def test_tanh_switch_makes_every_activation_tanh(monkeypatch):
  """activation='tanh' computes the ReLU net with each ReLU replaced by tanh: equal to the ReLU
  net built with tanh in ReLU's place, and unlike it built with a sigmoid (also saturating)."""
  images = jax.random.normal(jax.random.PRNGKey(1), (2, 67, 67, 3)) * 50
  tanh = _model(**SMALL, activation='tanh')
  params = jit_init(tanh)({'params': jax.random.PRNGKey(0)}, images)
  outputs = {'tanh': _jit_apply(tanh)(params, images)}
  for name, function in (('relu', blocks.ACTIVATIONS['relu']), ('tanh in relu\'s place', jnp.tanh),
                         ('sigmoid in relu\'s place', jax.nn.sigmoid)):
    monkeypatch.setitem(blocks.ACTIVATIONS, 'relu', function)
    outputs[name] = _jit_apply(_model(**SMALL))(params, images)
  np.testing.assert_allclose(outputs['tanh'], outputs["tanh in relu's place"], rtol=1e-6)
  assert not np.allclose(outputs['tanh'], outputs['relu'], rtol=1e-3)
  assert not np.allclose(outputs['tanh'], outputs["sigmoid in relu's place"], rtol=1e-3)


def maxpool_numpy(x, size=3, stride=2):
  """Max over each size x size window at the given stride, no padding."""
  height, width = [(d - size) // stride + 1 for d in x.shape[1:3]]
  out = np.full((x.shape[0], height, width, x.shape[3]), -np.inf, x.dtype)
  for i in range(size):
    for j in range(size):
      out = np.maximum(out, x[:, i:i + stride * height:stride, j:j + stride * width:stride])
  return out


def test_conv1_orders_and_lrn_conventions_equal_their_numpy_compositions():
  images = jax.random.normal(jax.random.PRNGKey(1), (2, 67, 67, 3)) * 50
  params = jit_init(_model(**SMALL))({'params': jax.random.PRNGKey(0)}, images)['params']
  # Larger conv1 weights, so that LRN's denominator is far from k and the conventions differ.
  params = {**params, 'conv1': jax.tree.map(lambda p: p * 5, params['conv1'])}
  relu = lambda x: np.maximum(x, 0)
  outputs = {}
  for order in models.CONV1_ORDERS:
    for convention, alpha in (('paper', 1e-4), ('cuda_convnet', 1e-4 / 5)):
      model = _model(**SMALL, conv1_order=order, lrn_alpha_convention=convention)
      _, state = jax.jit(functools.partial(model.apply, train=False, capture_intermediates=True))(
          {'params': params}, images)
      conv1, conv2 = (np.asarray(state['intermediates'][name]['__call__'][0])
                      for name in ('conv1', 'conv2'))
      norm = lambda x: np.concatenate(  # Each tower normalises its own 8 maps.
          [lrn_numpy(x[..., :8], 2.0, 5, alpha, 0.75), lrn_numpy(x[..., 8:], 2.0, 5, alpha, 0.75)],
          axis=-1)
      x = maxpool_numpy(norm(relu(conv1))) if order == 'relu_norm_pool' else \
          relu(maxpool_numpy(norm(conv1)))
      want = lax.conv_general_dilated(x, params['conv2']['kernel'], (1, 1), ((2, 2), (2, 2)),
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=2) + params['conv2']['bias']
      np.testing.assert_allclose(conv2, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
      outputs[order, convention] = conv2
  keys = list(outputs)
  for i, a in enumerate(keys):  # The four networks compute four different functions.
    for b in keys[i + 1:]:
      assert not np.allclose(outputs[a], outputs[b], rtol=1e-3), (a, b)


def test_init_std_overrides_set_those_layers_std():
  model = _model(**SMALL,
                 init_std_overrides=(('conv3', 0.03), ('conv4', 0.03), ('conv5', 0.03)))
  params = jit_init(model)({'params': jax.random.PRNGKey(0)}, jnp.zeros((1, 67, 67, 3)))
  for name in LAYERS:
    want = 0.03 if name in ('conv3', 'conv4', 'conv5') else 0.01
    assert abs(float(jnp.std(params['params'][name]['kernel'])) - want) < 0.1 * want, name
  # The CIFAR net's layers too (the 2012 code's CIFAR net drew conv1 at 1e-4).
  config = relu_vs_tanh.get_config('figure1_net')
  config.model.init_std_overrides = (('conv1', 1e-4),)
  model = models.create_model(config.model, 10)
  params = jit_init(model)({'params': jax.random.PRNGKey(0)}, jnp.zeros((1, 32, 32, 3)))
  for name in ('conv1', 'conv2', 'conv3', 'fc4'):
    want = 1e-4 if name == 'conv1' else 0.01
    assert abs(float(jnp.std(params['params'][name]['kernel'])) - want) < 0.1 * want, name


def test_the_2012_code_config_sets_every_switch():
  config = cuda_convnet.get_config()
  paper = default.get_config()
  flat = lambda c: run_folder.flatten(c.to_dict())
  changed = {key for key, value in flat(config).items() if flat(paper).get(key) != value}
  assert changed == {
      'experiment', 'model.lrn_alpha_convention', 'model.conv1_order', 'model.conv2_contrast_norm',
      'model.init_std_overrides', 'model.conv1_padding', 'dataset.crop_size',
      'dataset.scale_after_lighting', 'bias_lr_multiplier', 'decay_biases', 'lr_schedule',
      'num_epochs', 'lr_boundaries_epochs'}
  assert config.lr_boundaries_epochs == (24, 51, 78) and config.num_epochs == 91
  # Its network: the paper's 224-pixel input through conv1's padding, 55x55 maps as in Figure 2.
  _, outputs = _layer_shapes(models.create_model(config.model, 1000), 224)
  assert outputs['conv1'] == (2, 55, 55, 96)



def contrast_norm_numpy(a, size, scale, power):
  """cuda-convnet's cnorm as its kernel computes it: loops over each pixel's window, clipped."""
  _, height, width, _ = a.shape
  window = lambda v, y, x: v[:, max(0, y - size // 2):y - size // 2 + size,
                             max(0, x - size // 2):x - size // 2 + size]
  mean = np.zeros_like(a)
  for y in range(height):
    for x in range(width):
      mean[:, y, x] = window(a, y, x).sum(axis=(1, 2)) / size**2
  diffs_sq, b = (a - mean) ** 2, np.empty_like(a)
  for y in range(height):
    for x in range(width):
      denominator = 1 + scale / size**2 * window(diffs_sq, y, x).sum(axis=(1, 2))
      b[:, y, x] = a[:, y, x] * denominator ** -power
  return b


def test_contrast_norm_matches_cuda_convnets_formula():
  a = np.random.default_rng(0).normal(0, 30, (2, 7, 6, 3))
  for size in (3, 4, 5):
    got = convnet_layers.contrast_norm(jnp.asarray(a, jnp.float32), size=size, scale=0.01,
                                       power=0.75)
    np.testing.assert_allclose(got, contrast_norm_numpy(a, size, 0.01, 0.75), rtol=1e-5)
  # In the network: after conv2's LRN, no parameters of its own, and it changes the function.
  images = jax.random.normal(jax.random.PRNGKey(1), (2, 67, 67, 3)) * 50
  plain, normed = _model(**SMALL), _model(**SMALL, conv2_contrast_norm=True,
                                          contrast_norm_scale=100.0)
  params = jit_init(normed)({'params': jax.random.PRNGKey(0)}, images)
  params = jax.tree.map(lambda p: p * 5, params)  # Maps that vary enough to be normalised.
  assert jax.tree.structure(params) == jax.tree.structure(
      jit_init(plain)({'params': jax.random.PRNGKey(0)}, images))
  assert not np.allclose(_jit_apply(plain)(params, images), _jit_apply(normed)(params, images),
                         rtol=1e-3)
