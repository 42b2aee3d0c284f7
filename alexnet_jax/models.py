"""AlexNet (Krizhevsky et al., 2012) and the four-layer CIFAR-10 net of its Figure 1, in Flax Linen.

Towers. The two-tower net is the paper's grouped network: conv2, conv4 and conv5 see only their
own tower's maps, conv3 and the fully-connected layers see both towers. Its parameter tree is the
grouped one (conv2's kernel is 5x5x48x256), and it is the same for every mesh shape, so
checkpoints move between meshes. Each tower is computed as its own convolution on its channel
half, because a grouped convolution (`feature_group_count`) is 4-6x slower on XLA:CPU.

Parallelism. Under `jax.shard_map`, `axes` (a scheme of parallel.SCHEMES) says which mesh axes
split the examples and the layers' output channels. Under 'towers' every layer's output channels
(kernel and bias) are split over 'model', so a device holds its towers' share of every layer, as
each GPU did: layers that read both towers first `all_gather` their input over the axis, layers
that read their own tower need no communication. Under 'data' nothing is split but the batch;
under 'hybrid' the conv layers are data parallel and the fc layers split over every device. With
the default `axes` the module is the plain single-device network.
"""

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from alexnet_jax import blocks, convnet_layers, parallel

CONV1_PADDINGS = {'valid': ((0, 0), (0, 0)), 'cuda_convnet': ((2, 1), (2, 1))}
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


def cast_for_compute(tree, dtype) -> object:
  """Every floating-point leaf of `tree` (parameters, images) in `dtype`: the network then
  computes in that type, while gradients flow back to the float32 originals through the cast
  (mixed precision as Flax's `dtype`/`param_dtype` split does it)."""
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      tree)


class _LRNConstants(nn.Module):
  """Sec. 3.3's LRN constants, shared by AlexNet and the Figure-1 net; configs/default.py holds
  the paper's (k=2, n=5, alpha=1e-4, beta=0.75), which create_model passes in."""
  lrn_k: float
  lrn_n: int
  lrn_alpha: float
  lrn_beta: float
  lrn_alpha_convention: str  # One of blocks.LRN_ALPHA_CONVENTIONS.

  def local_response_norm(self, x: jax.Array, num_groups: int = 1) -> jax.Array:
    """LRN within each of `num_groups` channel groups, by the network's op set: `ops`, a field
    each subclass declares (it has a default, so it must come after their required fields)."""
    alpha = blocks.lrn_alpha(self.lrn_alpha, self.lrn_n, self.lrn_alpha_convention)
    return self.ops.lrn(x, self.lrn_k, self.lrn_n, alpha, self.lrn_beta, num_groups)


class AlexNet(_LRNConstants):
  """The paper's network (Figure 2), every ablation behind an attribute."""
  num_classes: int
  activation: str = 'relu'
  pool_size: int = 3
  pool_stride: int = 2
  lrn: bool = True
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
  ops: blocks.Ops = blocks.OPS['xla']  # create_model picks the op set (choose_ops).
  axes: parallel.Axes = parallel.Axes()  # The scheme's; none on a single device.

  def replicated_layers(self) -> tuple[str, ...]:
    return ('fc8',)  # The classifier, computed whole on every model shard.

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    act = blocks.ACTIVATIONS[self.activation]
    axes = self.axes
    local_towers = self.num_towers // blocks.axis_size(axes.conv)
    # Footnote 2: the one-GPU net halves conv1-conv4 only.
    features = [int(f * self.width_multiplier) if i < 4 else f
                for i, f in enumerate(self.conv_features)]

    init_stds = _init_stds(ALEXNET_LAYERS, self.init_std, self.init_std_overrides)

    def conv(name, index, kernel_size, stride, padding, inputs):
      return blocks.Conv(features[index], kernel_size, stride, padding, inputs=inputs,
                  num_local_towers=local_towers, model_axis=axes.conv,
                  init_std=init_stds[name], bias_init=float(name in self.bias_one_layers),
                  ops=self.ops, name=name)

    def dense(name, num_features, input_axis, output_axis):
      return blocks.Dense(num_features, input_axis, output_axis, init_std=init_stds[name],
                          bias_init=float(name in self.bias_one_layers), name=name)

    def norm(x):
      if not self.lrn:
        return x
      return self.local_response_norm(x, num_groups=local_towers)

    def pool(x):
      return blocks.pool(self.ops, x, self.pool_size, self.pool_stride, 'VALID')

    def drop(x):
      if not train or self.dropout_rate == 0.0:
        return x
      return blocks.fc_dropout(x, self.dropout_rate, self.make_rng('dropout'), axes)

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
    x = blocks.whole_batch(x, axes)
    x = drop(act(dense('fc6', self.fc_features[0], axes.conv, axes.fc)(x)))
    x = drop(act(dense('fc7', self.fc_features[1], axes.fc, axes.fc)(x)))
    return dense('fc8', self.num_classes, None, None)(
        blocks.classifier_input(x, axes.fc, axes, 'fc8'))


class CifarNet(_LRNConstants):
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
  conv_features: Sequence[int] = (32, 32, 64)
  kernel_size: int = 5
  fc_features: Sequence[int] = ()  # None in Figure 1.
  dropout_rate: float = 0.0
  init_std: float = 0.01
  # (layer, std) pairs that replace init_std, e.g. the 2012 code's (('conv1', 1e-4),).
  init_std_overrides: Sequence[tuple[str, float]] = ()
  bias_one_layers: Sequence[str] = ()
  ops: blocks.Ops = blocks.OPS['xla']  # create_model picks the op set (choose_ops).
  micro_batch: int = 0  # See in_micro_batches; create_model sets it.
  axes: parallel.Axes = parallel.Axes()  # The scheme's; none on a single device.

  def layer_names(self) -> tuple[str, ...]:
    return _cifar_net_layer_names(len(self.conv_features), len(self.fc_features))

  def replicated_layers(self) -> tuple[str, ...]:
    return self.layer_names()[-1:]  # The classifier.

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    act = blocks.ACTIVATIONS[self.activation]
    names = self.layer_names()
    init_stds = _init_stds(names, self.init_std, self.init_std_overrides)
    convs = [blocks.Conv(num_features, self.kernel_size, padding='SAME',
                         inputs='image' if i == 0 else 'all_towers',
                         model_axis=self.axes.conv, init_std=init_stds[name],
                         bias_init=float(name in self.bias_one_layers), ops=self.ops, name=name)
             for i, (name, num_features) in enumerate(zip(names, self.conv_features))]

    def trunk(x):
      for conv in convs:
        x = blocks.pool(self.ops, act(conv(x)), self.pool_size, self.pool_stride, 'SAME')
        if self.lrn:
          x = self.local_response_norm(x)
      return x

    x = blocks.in_micro_batches(trunk, images, self.micro_batch if train else 0)
    fc_names = names[len(self.conv_features):]
    if self.fc_features:
      x = blocks.whole_batch(x, self.axes)
    input_axis = self.axes.conv
    for name, num_features in zip(fc_names, self.fc_features):
      x = act(blocks.Dense(num_features, input_axis, self.axes.fc, init_stds[name],
                           float(name in self.bias_one_layers), name=name)(x))
      input_axis = self.axes.fc
      if train and self.dropout_rate > 0.0:
        x = blocks.fc_dropout(x, self.dropout_rate, self.make_rng('dropout'), self.axes)
    classifier = fc_names[-1]
    return blocks.Dense(self.num_classes, None, None, init_stds[classifier],
                        float(classifier in self.bias_one_layers), name=classifier)(
                            blocks.classifier_input(x, input_axis, self.axes, classifier))


MODELS = {'alexnet': AlexNet, 'cifar_net': CifarNet, 'layer_net': convnet_layers.LayerNet}
# Module attributes that no config.model key sets.
_NOT_FROM_CONFIG = ('parent', 'name', 'num_classes', 'ops', 'micro_batch', 'axes')
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


def hidden_fc_features(model_config: Mapping[str, Any]) -> tuple[int, ...]:
  """The output sizes of the network's fully-connected layers before its classifier."""
  if model_config['name'] == 'layer_net':
    specs = convnet_layers.parse_layers(model_config['layers'])[:-1]
    return tuple(spec['outputs'] for spec in specs if spec.type == 'fc')
  return tuple(model_config['fc_features'])


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


def choose_ops(model_config, backend: str) -> tuple[str, int]:
  """(op set, micro-batch) of `model_config` on `backend` ('cpu', 'gpu', 'tpu'): the one place
  that decides. ops 'auto' is the hand-written gradients on the CPU, where XLA:CPU runs them 2-6x
  faster, and XLA's own on accelerators; the micro-batch (`in_micro_batches`, which keeps a few
  images' maps in a CPU's cache) applies on the CPU to the hand-written gradients only."""
  ops = model_config.ops
  if ops == 'auto':
    ops = 'handwritten' if backend == 'cpu' else 'xla'
  uses_cache = backend == 'cpu' and ops == 'handwritten'
  return ops, model_config.cpu_micro_batch if uses_cache else 0


def create_model(model_config, num_classes: int, *, scheme: str | None = None,
                 backend: str | None = None) -> nn.Module:
  """The network named by `model_config.name`, its attributes taken from the config, laid out on
  the mesh by `scheme` (parallel.SCHEMES; None: the single-device network, outside shard_map),
  with the op set `choose_ops` gives for `backend` (default: JAX's)."""
  cls = MODELS[model_config.name]
  fields = {f for f in cls.__dataclass_fields__ if f not in ('parent', 'name', 'ops')}
  kwargs = {k: v for k, v in model_config.items() if k in fields}
  kwargs = {k: as_tuples(v) for k, v in kwargs.items()}  # Module attributes must be hashable.
  ops, micro_batch = choose_ops(model_config, backend or jax.default_backend())
  if 'micro_batch' in fields:
    kwargs['micro_batch'] = micro_batch
  axes = parallel.Axes() if scheme is None else parallel.SCHEMES[scheme]
  return cls(num_classes=num_classes, ops=blocks.OPS[ops], axes=axes, **kwargs)
