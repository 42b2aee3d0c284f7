"""AlexNet (Krizhevsky et al., 2012) and the four-layer CIFAR-10 net of its Figure 1, in Flax Linen.

Towers. The two-tower net is the paper's grouped network: conv2, conv4 and conv5 see only their
own tower's maps, conv3 and the fully-connected layers see both towers. Its parameter tree is the
grouped one (conv2's kernel is 5x5x48x256), and it is the same for every mesh shape, so
checkpoints move between meshes. Each tower is computed as its own convolution on its channel
half, because a grouped convolution (`feature_group_count`) is 4-6x slower on XLA:CPU.

Model parallelism. Under `jax.shard_map` with `model_axis` set, every layer's output channels
(kernel and bias) are split over that mesh axis, so a device holds its towers' share of every
layer, as each GPU did. Layers that read both towers first `all_gather` their input over the axis;
layers that read their own tower need no communication. With `model_axis=None` the module is the
plain single-device network.
"""

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from alexnet_jax import convnet_layers, cpu_ops

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {'relu': nn.relu, 'tanh': jnp.tanh}
CONV1_PADDINGS = {'valid': ((0, 0), (0, 0)), 'cuda_convnet': ((2, 1), (2, 1))}
# What LRN's alpha multiplies: the sum of squares (the paper's text) or their mean over the n
# maps (the 2012 code, and torch's LocalResponseNorm).
LRN_ALPHA_CONVENTIONS = ('paper', 'cuda_convnet')
# conv1's activation, normalization and pooling: in the paper's order, or the 2012 code's, whose
# LRN saw the maps before the ReLU, applied after pooling.
CONV1_ORDERS = ('relu_norm_pool', 'norm_pool_relu')
# config.compute_dtype: the type of activations and convolutions (cast_for_compute).
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
ALEXNET_LAYERS = ('conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8')


def layer_names(model_config) -> tuple[str, ...]:
  """The weight layers of the network a model config describes: AlexNet's are fixed, the CIFAR
  net's follow its conv_features and fc_features, a LayerNet's are its conv, local and fc
  specs."""
  if model_config.name == 'alexnet':
    return ALEXNET_LAYERS
  if model_config.name == 'layer_net':
    return tuple(layer.name for layer in convnet_layers.parse_layers(model_config.layers)
                 if layer.type in convnet_layers.WEIGHT_LAYER_TYPES)
  return _cifar_net_layer_names(len(model_config.conv_features), len(model_config.fc_features))


def _cifar_net_layer_names(num_conv: int, num_hidden_fc: int) -> tuple[str, ...]:
  return (*(f'conv{i + 1}' for i in range(num_conv)),
          *(f'fc{num_conv + i + 1}' for i in range(num_hidden_fc + 1)))


def _init_stds(names: Sequence[str], init_std: float,
               overrides: Sequence[tuple[str, float]]) -> dict[str, float]:
  """Each layer's weight init std: init_std unless `overrides` names the layer."""
  return {**dict.fromkeys(names, init_std), **dict(overrides)}


def lrn_alpha(alpha: float, n: int, convention: str) -> float:
  """The factor of the plain sum of squares in `local_response_norm` for `convention`."""
  return {'paper': alpha, 'cuda_convnet': alpha / n}[convention]


def in_micro_batches(fn: Callable[[jax.Array], jax.Array], x: jax.Array,
                     size: int) -> jax.Array:
  """fn(x) for a per-example `fn`, computed on `size` images at a time (0: all at once).

  The same numbers; on the CPU, a few images' feature maps stay in cache from the forward to the
  backward pass, which makes the convolutional layers' training step ~10% faster. The loop is
  unrolled: inside an XLA while loop, XLA:CPU's convolutions ran 10-20x slower.
  """
  if size <= 0 or x.shape[0] <= size:
    return fn(x)
  return jnp.concatenate([fn(x[i:i + size]) for i in range(0, x.shape[0], size)])


def cast_for_compute(tree, dtype) -> object:
  """Every floating-point leaf of `tree` (parameters, images) in `dtype`: the network then
  computes in that type, while gradients flow back to the float32 originals through the cast
  (mixed precision as Flax's `dtype`/`param_dtype` split does it)."""
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      tree)


def _axis_size(axis: str | None) -> int:
  return 1 if axis is None else lax.axis_size(axis)


def _axis_index(axis: str | None) -> jax.Array | int:
  return 0 if axis is None else lax.axis_index(axis)


def _gather_channels(x: jax.Array, axis: str | None) -> jax.Array:
  """All the towers' maps on every device: channels of all shards, in tower order."""
  return x if axis is None else lax.all_gather(x, axis, axis=x.ndim - 1, tiled=True)


def local_response_norm(x: jax.Array, k: float, n: int, alpha: float, beta: float,
                        num_groups: int = 1) -> jax.Array:
  """Sec. 3.3: b_i = a_i / (k + alpha * sum_{|j-i|<=n/2} a_j^2)^beta, within each channel group.

  alpha multiplies the plain sum of squares (torch's LocalResponseNorm divides it by n). The sum
  runs over the channels of the same group (tower) only, as each GPU normalised its own maps; it
  is a matmul with a block-diagonal band matrix, which XLA compiles well on every backend.
  """
  channels = x.shape[-1]
  per_group = channels // num_groups
  index = np.arange(channels)
  band = ((np.abs(index[:, None] - index[None, :]) <= n // 2)
          & (index[:, None] // per_group == index[None, :] // per_group))
  sum_sq = jnp.dot(jnp.square(x), jnp.asarray(band, x.dtype), precision=lax.Precision.HIGHEST)
  return x * lax.pow(k + alpha * sum_sq, jnp.asarray(-beta, x.dtype))


def _xla_max_pool(x: jax.Array, window: int, stride: int, padding: cpu_ops.Padding) -> jax.Array:
  return nn.max_pool(x, (window, window), (stride, stride), padding)


class Ops(NamedTuple):
  """The convolution, max pooling and LRN that every layer calls, with one signature each
  whatever differentiates them: conv(x, kernel, stride, padding), max_pool(x, window, stride,
  padding) (padding as (low, high) pairs of the two spatial axes; -inf for pooling) and
  lrn(x, k, n, alpha, beta, num_groups)."""
  conv: Callable[..., jax.Array]
  max_pool: Callable[..., jax.Array]
  lrn: Callable[..., jax.Array]


# XLA's own gradients, or `cpu_ops`' (the same functions, their gradients reformulated for
# XLA:CPU). config.model.ops 'auto' takes 'cpu' on the CPU; create_model chooses, once.
OPS: dict[str, Ops] = {
    'xla': Ops(cpu_ops.xla_conv, _xla_max_pool, local_response_norm),
    'cpu': Ops(cpu_ops.conv, cpu_ops.max_pool, cpu_ops.local_response_norm),
}
OPS_CHOICES = ('auto', *OPS)


def _pool(ops: Ops, x: jax.Array, window: int, stride: int, padding: str) -> jax.Array:
  """Max pooling with 'SAME' or 'VALID' padding."""
  return ops.max_pool(x, window, stride,
                      cpu_ops.explicit_padding(padding, x.shape[1:3], window, stride))


def _lrn(module: nn.Module, x: jax.Array, num_groups: int = 1) -> jax.Array:
  """LRN with a network's lrn_k, lrn_n, lrn_alpha (in its convention) and lrn_beta."""
  alpha = lrn_alpha(module.lrn_alpha, module.lrn_n, module.lrn_alpha_convention)
  return module.ops.lrn(x, module.lrn_k, module.lrn_n, alpha, module.lrn_beta, num_groups)


class Conv(nn.Module):
  """A convolution whose output channels may be sharded over `model_axis`.

  `inputs` says what the layer sees (Figure 2): 'image', the same input on every device;
  'own_tower', the maps of its own tower only (input and output channels are split into the
  towers on this device, each convolved separately with its slice of the kernel); 'all_towers',
  the maps of every tower, gathered over `model_axis` first.
  """
  features: int  # Over all towers and devices.
  kernel_size: int
  stride: int = 1
  padding: str | Sequence[tuple[int, int]] = 'SAME'
  inputs: str = 'all_towers'
  num_local_towers: int = 1
  model_axis: str | None = None
  init_std: float = 0.01
  bias_init: float = 0.0
  ops: Ops = OPS['xla']

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    groups = self.num_local_towers if self.inputs == 'own_tower' else 1
    if self.inputs == 'all_towers':
      x = _gather_channels(x, self.model_axis)
    local_features = self.features // _axis_size(self.model_axis)
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (self.kernel_size, self.kernel_size, x.shape[-1] // groups, local_features))
    bias = self.param('bias', nn.initializers.constant(self.bias_init), (local_features,))
    padding = cpu_ops.explicit_padding(self.padding, x.shape[1:3], self.kernel_size, self.stride)
    outputs = [self.ops.conv(xs, ws, self.stride, padding)
               for xs, ws in zip(jnp.split(x, groups, axis=-1), jnp.split(kernel, groups, axis=-1))]
    return jnp.concatenate(outputs, axis=-1) + bias


class Dense(nn.Module):
  """A fully-connected layer over all towers' inputs.

  Its output features are sharded over `model_axis` unless `sharded=False`: the classifier is
  computed whole on every model shard, so the loss needs no more communication.
  """
  features: int
  sharded: bool = True
  model_axis: str | None = None
  init_std: float = 0.01
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = _gather_channels(x, self.model_axis)
    x = x.reshape(x.shape[0], -1)
    local_features = self.features // (_axis_size(self.model_axis) if self.sharded else 1)
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (x.shape[-1], local_features))
    bias = self.param('bias', nn.initializers.constant(self.bias_init), (local_features,))
    return x @ kernel + bias


def dropout(x: jax.Array, rate: float, rng: jax.Array, *, data_axis: str | None,
            model_axis: str | None) -> jax.Array:
  """Dropout whose mask does not depend on the mesh.

  The mask is drawn for the global batch and all features, then this device's rows (over
  `data_axis`) and columns (over `model_axis`) are cut from it, so every mesh shape drops the same
  units as the single-device network with the same key.
  """
  if rate == 0.0:
    return x
  batch, features = x.shape
  num_rows, num_cols = batch * _axis_size(data_axis), features * _axis_size(model_axis)
  keep = jax.random.bernoulli(rng, 1.0 - rate, (num_rows, num_cols))
  keep = lax.dynamic_slice(keep, (_axis_index(data_axis) * batch,
                                  _axis_index(model_axis) * features), (batch, features))
  return jnp.where(keep, x / (1.0 - rate), 0.0)


class AlexNet(nn.Module):
  """The paper's network (Figure 2), every ablation behind an attribute."""
  num_classes: int
  activation: str = 'relu'
  pool_size: int = 3
  pool_stride: int = 2
  lrn: bool = True
  lrn_k: float = 2.0
  lrn_n: int = 5
  lrn_alpha: float = 1e-4
  lrn_beta: float = 0.75
  lrn_alpha_convention: str = 'paper'
  conv1_order: str = 'relu_norm_pool'
  conv2_contrast_norm: bool = False  # The 2012 code's extra normalization after LRN2.
  contrast_norm_size: int = 5
  contrast_norm_scale: float = 1e-3
  contrast_norm_power: float = 0.75
  dropout_rate: float = 0.5
  num_towers: int = 2
  conv_features: Sequence[int] = (96, 256, 384, 384, 256)
  fc_features: Sequence[int] = (4096, 4096)
  width_multiplier: float = 1.0
  conv1_padding: str = 'valid'
  init_std: float = 0.01
  # (layer, std) pairs that replace init_std for those layers, e.g. (('conv3', 0.03),).
  init_std_overrides: Sequence[tuple[str, float]] = ()
  bias_one_layers: Sequence[str] = ('conv2', 'conv4', 'conv5', 'fc6', 'fc7')
  ops: Ops = OPS['xla']  # create_model picks OPS[config.model.ops].
  data_axis: str | None = None
  model_axis: str | None = None

  def replicated_layers(self) -> tuple[str, ...]:
    return ('fc8',)  # The classifier, computed whole on every model shard.

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    local_towers = self.num_towers // _axis_size(self.model_axis)
    # Footnote 2: the one-GPU net halves conv1-conv4 only.
    features = [int(f * self.width_multiplier) if i < 4 else f
                for i, f in enumerate(self.conv_features)]

    init_stds = _init_stds(ALEXNET_LAYERS, self.init_std, self.init_std_overrides)

    def conv(name, index, kernel_size, stride, padding, inputs):
      return Conv(features[index], kernel_size, stride, padding, inputs=inputs,
                  num_local_towers=local_towers, model_axis=self.model_axis,
                  init_std=init_stds[name], bias_init=float(name in self.bias_one_layers),
                  ops=self.ops, name=name)

    def dense(name, num_features, sharded=True):
      return Dense(num_features, sharded=sharded, model_axis=self.model_axis,
                   init_std=init_stds[name], bias_init=float(name in self.bias_one_layers),
                   name=name)

    def norm(x):
      if not self.lrn:
        return x
      return _lrn(self, x, num_groups=local_towers)

    def pool(x):
      return _pool(self.ops, x, self.pool_size, self.pool_stride, 'VALID')

    def drop(x):
      if not train or self.dropout_rate == 0.0:
        return x
      return dropout(x, self.dropout_rate, self.make_rng('dropout'),
                     data_axis=self.data_axis, model_axis=self.model_axis)

    x = conv('conv1', 0, 11, 4, CONV1_PADDINGS[self.conv1_padding], 'image')(images)
    x = pool(norm(act(x))) if self.conv1_order == 'relu_norm_pool' else act(pool(norm(x)))
    x = norm(act(conv('conv2', 1, 5, 1, ((2, 2), (2, 2)), 'own_tower')(x)))
    if self.conv2_contrast_norm:
      x = convnet_layers.contrast_norm(x, size=self.contrast_norm_size,
                                       scale=self.contrast_norm_scale,
                                       power=self.contrast_norm_power)
    x = pool(x)
    x = act(conv('conv3', 2, 3, 1, ((1, 1), (1, 1)), 'all_towers')(x))
    x = act(conv('conv4', 3, 3, 1, ((1, 1), (1, 1)), 'own_tower')(x))
    x = pool(act(conv('conv5', 4, 3, 1, ((1, 1), (1, 1)), 'own_tower')(x)))
    x = drop(act(dense('fc6', self.fc_features[0])(x)))
    x = drop(act(dense('fc7', self.fc_features[1])(x)))
    return dense('fc8', self.num_classes, sharded=False)(x)


class CifarNet(nn.Module):
  """The four-layer net of Figure 1: cuda-convnet's 18% CIFAR-10 net.

  Three 5x5 convolutions, each followed by the activation, max pooling (padded at the end, as
  cuda-convnet pooled, so 32 -> 16 -> 8 -> 4 for 3/2 and 2/2 alike) and optional LRN, then a
  linear classifier. With `fc_features` it grows AlexNet's head: hidden fully-connected layers
  with dropout on their outputs (Sec. 4.2) before the classifier.
  """
  num_classes: int
  activation: str = 'relu'
  pool_size: int = 3
  pool_stride: int = 2
  lrn: bool = False
  lrn_k: float = 2.0
  lrn_n: int = 5
  lrn_alpha: float = 1e-4
  lrn_beta: float = 0.75
  lrn_alpha_convention: str = 'paper'
  conv_features: Sequence[int] = (32, 32, 64)
  kernel_size: int = 5
  fc_features: Sequence[int] = ()  # None in Figure 1.
  dropout_rate: float = 0.0
  init_std: float = 0.01
  # (layer, std) pairs that replace init_std, e.g. the 2012 code's (('conv1', 1e-4),).
  init_std_overrides: Sequence[tuple[str, float]] = ()
  bias_one_layers: Sequence[str] = ()
  ops: Ops = OPS['xla']  # create_model picks OPS[config.model.ops].
  micro_batch: int = 0  # See in_micro_batches; create_model sets it.
  data_axis: str | None = None
  model_axis: str | None = None

  def layer_names(self) -> tuple[str, ...]:
    return _cifar_net_layer_names(len(self.conv_features), len(self.fc_features))

  def replicated_layers(self) -> tuple[str, ...]:
    return self.layer_names()[-1:]  # The classifier.

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    names = self.layer_names()
    init_stds = _init_stds(names, self.init_std, self.init_std_overrides)
    convs = [Conv(num_features, self.kernel_size, padding='SAME',
                  inputs='image' if i == 0 else 'all_towers', model_axis=self.model_axis,
                  init_std=init_stds[name], bias_init=float(name in self.bias_one_layers),
                  ops=self.ops, name=name)
             for i, (name, num_features) in enumerate(zip(names, self.conv_features))]

    def trunk(x):
      for conv in convs:
        x = _pool(self.ops, act(conv(x)), self.pool_size, self.pool_stride, 'SAME')
        if self.lrn:
          x = _lrn(self, x)
      return x

    x = in_micro_batches(trunk, images, self.micro_batch if train else 0)
    fc_names = names[len(self.conv_features):]
    for i, (name, num_features) in enumerate(zip(fc_names,
                                                  (*self.fc_features, self.num_classes))):
      is_classifier = i == len(self.fc_features)
      x = Dense(num_features, sharded=not is_classifier, model_axis=self.model_axis,
                init_std=init_stds[name], bias_init=float(name in self.bias_one_layers),
                name=name)(x)
      if not is_classifier:
        x = act(x)
        if train and self.dropout_rate > 0.0:
          x = dropout(x, self.dropout_rate, self.make_rng('dropout'),
                      data_axis=self.data_axis, model_axis=self.model_axis)
    return x


class LayerNet(nn.Module):
  """A net stacked from cuda-convnet layer specs (convnet_layers.parse_layers), as the 2012 code
  built its CIFAR-10 nets from layer files: conv, local, pool, rnorm, cmrnorm and fc layers in
  order, each computing what its cuda-convnet kernel did. Under `model_axis`, weight layers split
  their outputs over it (the classifier is computed whole) and gather their input first; the
  cross-map normalization sees every shard's maps.
  """
  num_classes: int
  layers: Sequence[str] = ()
  activation: str = 'relu'
  init_std: float = 0.01  # For layers whose spec gives none.
  init_std_overrides: Sequence[tuple[str, float]] = ()
  ops: Ops = OPS['xla']  # create_model picks OPS[config.model.ops].
  micro_batch: int = 0  # See in_micro_batches; create_model sets it.
  data_axis: str | None = None
  model_axis: str | None = None

  def replicated_layers(self) -> tuple[str, ...]:
    return (convnet_layers.parse_layers(self.layers)[-1].name,)  # The classifier.

  def _layer(self, spec: convnet_layers.LayerSpec, init_std: float, is_first: bool,
             is_classifier: bool) -> Callable[[jax.Array], jax.Array]:
    """The function of one layer spec, its activation (act=1) included."""
    kind = spec.type
    if kind == 'conv':
      padding = ((spec['padding'],) * 2,) * 2
      fn = Conv(spec['filters'], spec['size'], spec['stride'], padding,
                inputs='image' if is_first else 'all_towers',
                model_axis=self.model_axis, init_std=init_std, ops=self.ops, name=spec.name)
    elif kind == 'local':
      fn = convnet_layers.LocallyConnected(spec['filters'], spec['size'], spec['stride'],
                                           spec['padding'], init_std, self.model_axis,
                                           name=spec.name)
    elif kind == 'fc':
      fn = Dense(self.num_classes if is_classifier else spec['outputs'],
                 sharded=not is_classifier, model_axis=self.model_axis, init_std=init_std,
                 name=spec.name)
    elif kind == 'pool':
      fn = lambda x: convnet_layers.pool(x, spec['kind'], spec['size'], spec['stride'],
                                         start=spec['start'], outputs=spec['outputs'],
                                         max_pool_fn=self.ops.max_pool)
    elif kind == 'rnorm':
      fn = lambda x: convnet_layers.response_norm(x, size=spec['size'], scale=spec['scale'],
                                                  power=spec['pow'])
    else:  # cmrnorm: the paper's LRN formula with cuda-convnet's constants, over all shards.
      constants = convnet_layers.cross_map_norm_constants(spec['size'], spec['scale'],
                                                          spec['pow'])
      fn = lambda x: convnet_layers.output_channel_slice(
          self.ops.lrn(_gather_channels(x, self.model_axis), num_groups=1, **constants),
          self.model_axis, _axis_size(self.model_axis))
    act = ACTIVATIONS[self.activation]
    return (lambda x: act(fn(x))) if spec.params.get('act') else fn

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    specs = convnet_layers.parse_layers(self.layers)
    init_stds = dict(self.init_std_overrides)
    fns = [self._layer(spec, init_stds.get(spec.name, spec['init_std'] or self.init_std)
                       if spec.type in convnet_layers.WEIGHT_LAYER_TYPES else None,
                       i == 0, i == len(specs) - 1)
           for i, spec in enumerate(specs)]
    first_fc = next(i for i, spec in enumerate(specs) if spec.type == 'fc')

    def trunk(x):
      for fn in fns[:first_fc]:
        x = fn(x)
      return x

    x = in_micro_batches(trunk, images, self.micro_batch if train else 0)
    for fn in fns[first_fc:]:
      x = fn(x)
    return x


MODELS = {'alexnet': AlexNet, 'cifar_net': CifarNet, 'layer_net': LayerNet}
# Module attributes that no config.model key sets.
_NOT_FROM_CONFIG = ('parent', 'name', 'num_classes', 'ops', 'micro_batch', 'data_axis',
                    'model_axis')
# Where the knobs of the other networks live in a network that has no attribute for them.
KNOBS_ELSEWHERE = {
    'alexnet': 'it is the paper\'s net; its sizes are model.conv_features and model.fc_features',
    'cifar_net': 'the Figure-1 net has one tower and no width multiplier; its sizes are '
                 'model.conv_features, model.kernel_size and model.fc_features',
    'layer_net': 'a layer net is its layer specs: pooling, normalization, sizes and dropout '
                 'are set in model.layers (configs/cuda_convnet_cifar.py)',
}


def as_tuples(value: Any) -> Any:
  """Lists (from JSON or the command line) as tuples, nested ones too, as the config files write
  them."""
  return tuple(map(as_tuples, value)) if isinstance(value, (list, tuple)) else value


def keys_read(name: str) -> frozenset[str]:
  """The config.model keys that create_model reads for the network `name`: its attributes, the
  op set, and its micro-batch size and layer file where it has them. Any other key changes
  nothing in it."""
  attributes = MODELS[name].__dataclass_fields__
  read = {'name', 'ops', *(f for f in attributes if f not in _NOT_FROM_CONFIG)}
  if 'micro_batch' in attributes:
    read.add('cpu_micro_batch')
  if name == 'layer_net':
    read.add('layer_file')  # The provenance of its specs, which the report names.
  return frozenset(read)


def num_towers(model_config: Mapping[str, Any]) -> int:
  """The towers of the network: model.num_towers for AlexNet; one for a net without towers."""
  if 'num_towers' in keys_read(model_config['name']):
    return model_config['num_towers']
  return 1


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """The two keys a run's seed gives: its parameters' initialization, its dropout masks."""
  params_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
  return params_key, dropout_key


def init_params(model: nn.Module, image_shape: tuple[int, ...], params_key: jax.Array) -> dict:
  """The parameters `model` starts from, computed whole (as on a single device)."""
  return model.init({'params': params_key}, jnp.zeros((1, *image_shape)), train=False)['params']


def create_model(model_config, num_classes: int, *, data_axis: str | None = None,
                 model_axis: str | None = None) -> nn.Module:
  """The network named by `model_config.name`, its attributes taken from the config."""
  cls = MODELS[model_config.name]
  fields = {f for f in cls.__dataclass_fields__ if f not in ('parent', 'name')}
  kwargs = {k: v for k, v in model_config.items() if k in fields}
  kwargs = {k: as_tuples(v) for k, v in kwargs.items()}  # Module attributes must be hashable.
  ops = kwargs.pop('ops', 'auto')
  if ops == 'auto':
    ops = 'cpu' if jax.default_backend() == 'cpu' else 'xla'
  if 'micro_batch' in fields:
    kwargs['micro_batch'] = model_config.cpu_micro_batch if ops == 'cpu' else 0
  return cls(num_classes=num_classes, ops=OPS[ops], data_axis=data_axis, model_axis=model_axis,
             **kwargs)
