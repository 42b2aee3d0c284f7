"""cuda-convnet's layer types against NumPy loop transcriptions of its kernels, and its CIFAR-10
nets against their layer files (parameter counts by hand, config keys)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import blocks, convnet_layers, models, optim, run_folder, validation
from configs import common, cuda_convnet_cifar, default, relu_vs_tanh, weird_trick
from tests.helpers import jit_init

RNG = np.random.default_rng(0)


def pool_numpy(a, kind, size, stride, start=0, outputs=0):
  """kLocalPool: windows at start + i * stride, clipped to the map; avg divides by the pixels
  inside it (regionSize). outputsX=0: ceil((imgSize - start - sizeX) / stride) + 1."""
  img = a.shape[1]
  if outputs == 0:
    outputs = int(np.ceil((img - start - size) / stride)) + 1
  out = np.empty((a.shape[0], outputs, outputs, a.shape[3]))
  for oy in range(outputs):
    for ox in range(outputs):
      y0, x0 = start + oy * stride, start + ox * stride
      window = a[:, max(0, y0):min(img, y0 + size), max(0, x0):min(img, x0 + size)]
      out[:, oy, ox] = window.max(axis=(1, 2)) if kind == 'max' else window.mean(axis=(1, 2))
  return out


@pytest.mark.parametrize('kind', ['max', 'avg'])
@pytest.mark.parametrize('img,size,stride,start,outputs', [
    (32, 3, 2, 0, 0),  # The CIFAR nets: 32 -> 16, the last window over the edge.
    (16, 3, 2, 0, 0), (8, 3, 2, 0, 0), (12, 3, 2, 0, 0), (7, 2, 2, 0, 0), (9, 3, 3, 0, 0),
    (10, 3, 2, -1, 0),  # A window starting before the map.
    (11, 3, 2, 1, 3),  # An explicit outputsX, stopping short of the edge.
])
def test_pooling_matches_cuda_convnets_kernel(kind, img, size, stride, start, outputs):
  a = RNG.normal(0, 5, (2, img, img, 3)).astype(np.float32)
  want = pool_numpy(a, kind, size, stride, start, outputs)
  for ops in blocks.OPS.values():
    got = convnet_layers.pool(jnp.asarray(a), kind, size, stride, start=start, outputs=outputs,
                              max_pool_fn=ops.max_pool)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert convnet_layers.pool_geometry(32, 3, 2)[0] == 16  # 32 -> 16 -> 8 -> 4 in the 18% net.
  assert convnet_layers.pool_geometry(24, 3, 2)[0] == 12  # 24 -> 12 -> 6 in the 13%/11% nets.


def response_norm_numpy(a, size, scale, power):
  """kCNorm with meanDiffs = images (convResponseNorm): each pixel's window starts size/2 before
  it and is clipped; the parser divided scale by size^2."""
  _, height, width, _ = a.shape
  out = np.empty_like(a)
  for y in range(height):
    for x in range(width):
      y0, x0 = y - size // 2, x - size // 2
      window = a[:, max(0, y0):y0 + size, max(0, x0):x0 + size]
      out[:, y, x] = a[:, y, x] * (1 + scale / size**2 * (window**2).sum(axis=(1, 2))) ** -power
  return out


def cross_map_norm_numpy(a, size, scale, power):
  """kFCNorm: maps f - size/2 .. f - size/2 + size - 1, clipped; the parser divided scale by
  size."""
  channels = a.shape[-1]
  out = np.empty_like(a)
  for f in range(channels):
    f0 = f - size // 2
    window = a[..., max(0, f0):min(channels, f0 + size)]
    out[..., f] = a[..., f] * (1 + scale / size * (window**2).sum(axis=-1)) ** -power
  return out


@pytest.mark.parametrize('size', [3, 4, 5])
def test_within_map_response_norm_matches_cuda_convnets_kernel(size):
  a = RNG.normal(0, 40, (2, 7, 6, 4))
  got = convnet_layers.response_norm(jnp.asarray(a, jnp.float32), size=size, scale=0.05,
                                     power=0.75)
  want = response_norm_numpy(a, size, 0.05, 0.75)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert not np.allclose(want, a, rtol=1e-2)  # The constants normalise these maps visibly.


@pytest.mark.parametrize('size,channels', [(9, 64), (3, 5), (5, 16)])
def test_cross_map_response_norm_matches_cuda_convnets_kernel(size, channels):
  a = RNG.normal(0, 20, (2, 3, 3, channels))
  want = cross_map_norm_numpy(a, size, 0.01, 0.75)
  constants = convnet_layers.cross_map_norm_constants(size, 0.01, 0.75)
  for ops in blocks.OPS.values():
    got = ops.lrn(jnp.asarray(a, jnp.float32), num_groups=1, **constants)
    np.testing.assert_allclose(got, want, rtol=1e-5)
  assert not np.allclose(want, a, rtol=1e-2)


def local_numpy(x, kernel, bias, size, stride, padding):
  """cuda-convnet's 'local' layer: at each output pixel its own filters and biases."""
  x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  out_h, out_w = kernel.shape[:2]
  out = np.empty((x.shape[0], out_h, out_w, kernel.shape[-1]))
  for oy in range(out_h):
    for ox in range(out_w):
      for b in range(x.shape[0]):
        total = bias[oy, ox].copy()
        for i in range(size):
          for j in range(size):
            total += x[b, oy * stride + i, ox * stride + j] @ kernel[oy, ox, i * size + j]
        out[b, oy, ox] = total
  return out


@pytest.mark.parametrize('size,stride,padding', [(3, 1, 1), (3, 2, 0), (2, 1, 0)])
def test_locally_connected_layer_matches_a_loop(size, stride, padding):
  x = RNG.normal(0, 1, (2, 6, 6, 3)).astype(np.float32)
  layer = convnet_layers.LocallyConnected(4, size, stride, padding, init_std=0.5)
  params = layer.init(jax.random.PRNGKey(0), jnp.asarray(x))['params']
  out_side = (6 + 2 * padding - size) // stride + 1
  assert params['kernel'].shape == (out_side, out_side, size * size, 3, 4)
  assert params['bias'].shape == (out_side, out_side, 4)
  params = {'kernel': params['kernel'],
            'bias': RNG.normal(0, 1, params['bias'].shape).astype(np.float32)}
  got = layer.apply({'params': params}, jnp.asarray(x))
  want = local_numpy(x, np.asarray(params['kernel']), params['bias'], size, stride, padding)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # Unshared: the same input patch at two positions gives different outputs.
  same = np.ones_like(x)
  out = np.asarray(layer.apply({'params': params}, jnp.asarray(same)))
  assert not np.allclose(out[:, 0, 0], out[:, 1, 1])


# Parameters of each net from its layer file, by hand: conv k*k*in*out + out; local
# positions * (k*k*in*out + out); fc in*out + out. Pooling: 32 -> 16 -> 8 -> 4; 24 -> 12 -> 6.
HAND_COUNTS = {
    '18pct': (5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 32 + 32) + (5 * 5 * 32 * 64 + 64)
             + (4 * 4 * 64 * 10 + 10),
    '80sec': (5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 32 + 32) + (5 * 5 * 32 * 64 + 64)
             + (4 * 4 * 64 * 64 + 64) + (64 * 10 + 10),
    '13pct': (5 * 5 * 3 * 64 + 64) + (5 * 5 * 64 * 64 + 64) + 36 * (3 * 3 * 64 * 32 + 32)
             + 36 * (3 * 3 * 32 * 32 + 32) + (6 * 6 * 32 * 10 + 10),
    '11pct': (5 * 5 * 3 * 64 + 64) + (5 * 5 * 64 * 64 + 64) + 36 * (3 * 3 * 64 * 64 + 64)
             + 36 * (3 * 3 * 64 * 32 + 32) + (6 * 6 * 32 * 10 + 10),
}


def _params(config):
  model = models.create_model(config.model, 10)
  size = config.dataset.crop_size
  return jax.eval_shape(lambda: model.init({'params': jax.random.PRNGKey(0)},
                                           jnp.zeros((1, size, size, 3)), train=False))['params']


@pytest.mark.parametrize('variant', cuda_convnet_cifar.VARIANTS)
def test_each_net_has_its_layer_files_parameters(variant):
  params = _params(cuda_convnet_cifar.get_config(variant))
  assert sum(p.size for p in jax.tree.leaves(params)) == HAND_COUNTS[variant]
  assert HAND_COUNTS['18pct'] == 89_578 and HAND_COUNTS['13pct'] == 1_116_490


def _flat(config):
  return run_folder.flatten(config.to_dict())


# What each file sets (layers, epsW/epsB, wc per layer, the header's schedule) and, for the
# 13%/11% nets, what their data provider did (24x24 crops, reflections, multi-view test).
FILE_KEYS = {'experiment', 'model.name', 'model.layers', 'model.layer_file', 'learning_rate',
             'bias_lr_multiplier', 'decay_biases', 'weight_decay', 'layer_weight_decay', 'num_epochs',
             'lr_boundaries_epochs'}
CROP_KEYS = {'dataset.crop_size', 'dataset.random_crop', 'dataset.random_flip',
             'dataset.ten_crop_eval'}


@pytest.mark.parametrize('variant', cuda_convnet_cifar.VARIANTS)
def test_each_config_differs_from_its_base_in_its_files_keys(variant):
  base = _flat(common.base('cifar10', ('cifar10',), 'x'))
  config = _flat(cuda_convnet_cifar.get_config(variant))
  # The model keys are the paper's but for the layer net's own: it reads no others.
  paper_model = _flat(default.get_config())
  assert {k for k in config if k.startswith('model.') and config[k] != paper_model[k]} == \
      {'model.name', 'model.layers', 'model.layer_file'}
  changed = {k for k in base if not k.startswith('model.') and base[k] != config[k]}
  changed |= {'model.name', 'model.layers', 'model.layer_file'}
  expected = FILE_KEYS | (CROP_KEYS if variant in ('13pct', '11pct') else set())
  # learning_rate is the base's 0.001 already, as is weight decay 0 in none of the files.
  assert changed == expected - {'learning_rate'}
  assert config['learning_rate'] == 0.001 and config['bias_lr_multiplier'] == 2.0
  assert config['decay_biases'] is False


def test_figure1_variant_is_the_18pct_net_without_regularization():
  net = _flat(cuda_convnet_cifar.get_config('18pct'))
  c1 = _flat(relu_vs_tanh.get_config('18pct'))
  changed = {k for k in net if net[k] != c1[k]}
  assert changed == {'experiment', 'weight_decay', 'layer_weight_decay', 'lr_boundaries_epochs',
                     'num_epochs', 'stop_at_train_error'}
  assert c1['weight_decay'] == 0 and c1['layer_weight_decay'] == ()
  assert not any(' dropout' in spec for spec in c1['model.layers']) \
      and not c1['dataset.random_crop'] \
      and not c1['dataset.random_flip'] and not c1['dataset.pca_lighting']
  # The used-by command's net is the one that reproduces Figure 1 here.
  assert relu_vs_tanh.get_config().model.layer_file == 'layers-18pct.cfg'


def test_per_layer_weight_decay_and_rate_follow_the_layer_params():
  params = {'conv1': {'kernel': jnp.ones(2), 'bias': jnp.ones(2)},
            'fc10': {'kernel': jnp.ones(2), 'bias': jnp.ones(2)}}
  grads = jax.tree.map(jnp.zeros_like, params)
  tx = optim.paper_sgd(0.9, 0.004, decay_biases=False, bias_lr_multiplier=2.0,
                       layer_weight_decay={'fc10': 1.0}, layer_lr_multipliers={'conv1': 3.0})
  grads['conv1']['bias'] = jnp.full(2, 0.5)
  updates, _ = tx.update(grads, tx.init(params), params, learning_rate=0.01)
  np.testing.assert_allclose(updates['conv1']['kernel'], -0.01 * 3.0 * 0.004, rtol=1e-6)
  np.testing.assert_allclose(updates['fc10']['kernel'], -0.01 * 1.0, rtol=1e-6)
  np.testing.assert_allclose(updates['conv1']['bias'], -0.01 * 3.0 * 2.0 * 0.5, rtol=1e-6)
  np.testing.assert_allclose(updates['fc10']['bias'], 0.0)  # Biases are never decayed.


@pytest.mark.parametrize('spec,message', [
    (('conv1 conv filters=8',), "lacks \\['size'\\]"),
    (('conv1 conv filters=8 size=3', 'p pool kind=median size=3 stride=2', 'fc fc'),
     "kind='median'"),
    (('conv1 conv filters=8 size=3 colour=1', 'fc fc'), "'colour=1' is not allowed"),
    (('conv1 conv filters=8 size=3',), 'must end with an fc layer'),
    (('n cmrnorm size=4 scale=1 pow=1', 'fc fc'), 'must be odd'),
    (('x warp', 'fc fc'), 'TYPE one of'),
])
def test_bad_layer_specs_are_named(spec, message):
  with pytest.raises(ValueError, match=message):
    convnet_layers.parse_layers(spec)


@pytest.mark.parametrize('variant', weird_trick.VARIANTS)
def test_the_sequels_one_gpu_net_has_its_layers_and_parameter_count(variant):
  """layers-223-1gpu.cfg (and torchvision's shape) at 227 px, 1000 classes: each layer's kernel
  and the parameter count by hand."""
  config = weird_trick.get_config(variant)
  validation.validate_config(config)
  model = models.create_model(config.model, 1000)
  params = jax.eval_shape(lambda: models.init_params(model, (227, 227, 3),
                                                     jax.random.PRNGKey(0)))
  kernels = {name: layer['kernel'].shape for name, layer in params.items()}
  assert kernels == {'conv1': (11, 11, 3, 64), 'conv2': (5, 5, 64, 192),
                     'conv3': (3, 3, 192, 384), 'conv4': (3, 3, 384, 256),
                     'conv5': (3, 3, 256, 256), 'fc6': (6 * 6 * 256, 4096),
                     'fc7': (4096, 4096), 'fc8': (4096, 1000)}
  by_hand = (11 * 11 * 3 * 64 + 64) + (5 * 5 * 64 * 192 + 192) + (3 * 3 * 192 * 384 + 384) + (
      3 * 3 * 384 * 256 + 256) + (3 * 3 * 256 * 256 + 256) + (9216 * 4096 + 4096) + (
          4096 * 4096 + 4096) + (4096 * 1000 + 1000)
  assert sum(leaf.size for leaf in jax.tree.leaves(params)) == by_hand == 61_100_840
  # epsW's dexp schedule: four rates, the last 1/250 of the first, a quarter of training each.
  assert config.lr_decay_factor ** 3 == pytest.approx(1 / 250)
  assert config.lr_boundaries_epochs == (22.5, 45.0, 67.5)


def test_initial_biases_min_div_and_dropout_layers():
  """init_bias sets a layer's biases; cmrnorm's min_div is the k of the LRN formula; a dropout
  layer keeps each fc output with probability keep, scaled by 1/keep, in training only."""
  model = convnet_layers.LayerNet(num_classes=3, layers=(
      'conv1 conv filters=4 size=3 padding=1 init_bias=1',
      'norm1 cmrnorm size=3 scale=0.5 pow=1 min_div=2',
      'fc2 fc outputs=400 init_bias=-7 act=1', 'drop2 dropout keep=0.25', 'fc3 fc'))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 6, 3))
  params = jit_init(model)({'params': jax.random.PRNGKey(0)}, x)['params']
  assert np.all(params['conv1']['bias'] == 1.0) and np.all(params['fc2']['bias'] == -7.0)
  assert np.all(params['fc3']['bias'] == 0.0)
  assert convnet_layers.cross_map_norm_constants(3, 0.5, 1.0, 2.0) == {
      'k': 2.0, 'n': 3, 'alpha': 0.5 / 3, 'beta': 1.0}
  params['fc2']['bias'] = jnp.ones_like(params['fc2']['bias'])  # Every unit alive.
  without_dropout = model.clone(layers=tuple(l for l in model.layers if 'dropout' not in l))
  tested = model.apply({'params': params}, x, train=False)
  np.testing.assert_array_equal(tested, without_dropout.apply({'params': params}, x, train=False))
  trained = model.apply({'params': params}, x, train=True, rngs={'dropout': jax.random.PRNGKey(2)})
  assert not np.allclose(trained, tested)
  kept = blocks.dropout(jnp.ones((2, 400)), 0.75, jax.random.PRNGKey(3), rows_axis=None,
                        columns_axis=None)
  assert set(np.unique(np.asarray(kept))) == {0.0, 4.0}
  assert abs(float(jnp.mean(kept > 0)) - 0.25) < 0.05
  with pytest.raises(ValueError, match='a dropout layer must follow an fc layer'):
    convnet_layers.parse_layers(('d dropout keep=0.5', 'fc fc'))
