"""The layer types of cuda-convnet, the code that trained the paper's nets, as its kernels compute
them: its pooling geometry, its two response normalizations, its locally connected layer, and
the layer specs (one string per layer, like its layer files), and `LayerNet`, which stacks them.

A spec is 'NAME TYPE key=value ...', e.g. 'pool2 pool kind=avg size=3 stride=2'. Types and keys
(`act=1` applies the net's activation, relu or tanh, after the layer):
  conv     filters, size, stride=1, padding=0, init_std, init_bias=0, act
                                              (cuda-convnet 'conv', shared biases)
  local    filters, size, stride=1, padding=0, init_std, init_bias=0, act
                                              ('local': unshared weights and biases, one set per
                                               output pixel)
  pool     kind=max|avg, size, stride, start=0, outputs=0, act  ('pool'; act after the pooling)
  rnorm    size, scale, pow                   ('rnorm': within each map)
  cmrnorm  size, scale, pow, min_div=1        ('cmrnorm': across maps; min_div is cuda-convnet2's
                                               minDiv, the k of the paper's LRN)
  fc       outputs, init_std, init_bias=0, act  ('fc'; the last layer is the classifier, outputs =
                                               classes)
  dropout  keep                               (cuda-convnet2's 'dropout2': after an fc layer, each
                                               output kept with probability keep and scaled by
                                               1/keep in training, untouched in the test)
init_std defaults to the net's model.init_std (cuda-convnet's initW default is 0.01 too);
init_bias is its initB.
"""

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from alexnet_jax import blocks, parallel

# Each type's keys and their defaults (None: required).
LAYER_KEYS: dict[str, dict[str, Any]] = {
    'conv': {'filters': None, 'size': None, 'stride': 1, 'padding': 0, 'init_std': None,
             'init_bias': 0.0, 'act': 0},
    'local': {'filters': None, 'size': None, 'stride': 1, 'padding': 0, 'init_std': None,
              'init_bias': 0.0, 'act': 0},
    'pool': {'kind': None, 'size': None, 'stride': None, 'start': 0, 'outputs': 0, 'act': 0},
    'rnorm': {'size': None, 'scale': None, 'pow': None},
    'cmrnorm': {'size': None, 'scale': None, 'pow': None, 'min_div': 1.0},
    'fc': {'outputs': None, 'init_std': None, 'init_bias': 0.0, 'act': 0},
    'dropout': {'keep': None},
}
WEIGHT_LAYER_TYPES = ('conv', 'local', 'fc')
POOL_KINDS = ('max', 'avg')


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  name: str
  type: str
  params: dict[str, Any]

  def __getitem__(self, key: str) -> Any:
    return self.params[key]


def _number(text: str) -> int | float | str:
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return text


def parse_layers(specs: Sequence[str]) -> list[LayerSpec]:
  """The layer specs, checked: a bad one raises ValueError naming it and what is allowed."""
  layers, names = [], set()
  for spec in specs:
    words = spec.split()
    if len(words) < 2 or words[1] not in LAYER_KEYS:
      raise ValueError(f'layer spec {spec!r} must be "NAME TYPE key=value ...", TYPE one of '
                       f'{list(LAYER_KEYS)}.')
    name, kind = words[:2]
    if name in names:
      raise ValueError(f'layer spec {spec!r}: the name {name!r} is used twice.')
    names.add(name)
    allowed = LAYER_KEYS[kind]
    given = {}
    for word in words[2:]:
      key, sep, value = word.partition('=')
      if not sep or key not in allowed:
        raise ValueError(f'layer spec {spec!r}: {word!r} is not allowed; a {kind} layer takes '
                         f'{list(allowed)} as key=value.')
      given[key] = _number(value)
    is_classifier = len(layers) == len(specs) - 1
    missing = [k for k, v in allowed.items() if v is None and k not in given
               and k != 'init_std' and not (is_classifier and k == 'outputs')]
    if missing:
      raise ValueError(f'layer spec {spec!r} lacks {missing}.')
    if kind == 'pool' and given['kind'] not in POOL_KINDS:
      raise ValueError(f'layer spec {spec!r}: kind={given["kind"]!r}; use one of {POOL_KINDS}.')
    if kind == 'cmrnorm' and given['size'] % 2 == 0:
      raise ValueError(f'layer spec {spec!r}: cross-map size={given["size"]} must be odd (an '
                       'even size makes cuda-convnet\'s window lopsided; not supported).')
    if kind == 'dropout' and not (layers and layers[-1].type == 'fc'):
      raise ValueError(f'layer spec {spec!r}: a dropout layer must follow an fc layer.')
    if kind == 'dropout' and not 0.0 < given['keep'] <= 1.0:
      raise ValueError(f'layer spec {spec!r}: keep={given["keep"]} must be in (0, 1].')
    layers.append(LayerSpec(name, kind, {**allowed, **given}))
  if not layers or layers[-1].type != 'fc':
    raise ValueError(f'layer specs {list(specs)} must end with an fc layer (the classifier).')
  return layers


def pool_geometry(size: int, window: int, stride: int, start: int = 0,
                  outputs: int = 0) -> tuple[int, tuple[int, int]]:
  """cuda-convnet's pooling geometry on a size x size map: the number of outputs per side
  (`outputs`, or for 0 ceil((size - start - window) / stride) + 1) and the (before, after)
  padding that makes every window whole; windows start at `start` + i * stride and are clipped
  to the map, so the last one may hang over its edge."""
  if outputs <= 0:
    outputs = int(np.ceil((size - start - window) / stride)) + 1
  return outputs, (-start, start + (outputs - 1) * stride + window - size)


def _pad_or_crop(x: jax.Array, before: int, after: int, value: float) -> jax.Array:
  """Pads (positive) or crops (negative) both spatial axes of NHWC maps."""
  x = x[:, max(0, -before):x.shape[1] - max(0, -after), max(0, -before):x.shape[2] - max(0, -after)]
  pad = (max(0, before), max(0, after))
  return jnp.pad(x, ((0, 0), pad, pad, (0, 0)), constant_values=value)


def _window_sum(x: jax.Array, window: int, stride: int) -> jax.Array:
  """Sums of the window x window windows at `stride` of (already padded) NHWC maps."""
  return lax.reduce_window(x, 0.0, lax.add, (1, window, window, 1), (1, stride, stride, 1),
                           'VALID')


def pool(x: jax.Array, kind: str, window: int, stride: int, *, start: int = 0, outputs: int = 0,
         max_pool_fn=None) -> jax.Array:
  """cuda-convnet's max or average pooling of NHWC maps (kLocalPool): each window is clipped to
  the map, and the average divides by the number of its pixels inside the map.

  `max_pool_fn(x, window, stride, padding)` is the ops namespace's max pooling (-inf padding).
  """
  num_out, (before, after) = pool_geometry(x.shape[1], window, stride, start, outputs)
  if kind == 'max':
    x = _pad_or_crop(x, min(before, 0), min(after, 0), 0.0)
    return max_pool_fn(x, window, stride, ((max(before, 0), max(after, 0)),) * 2)
  inside = np.pad(np.ones(x.shape[1], np.float32), (max(before, 0), max(after, 0)))
  inside = inside[max(0, -before):len(inside) - max(0, -after)]
  counts = np.convolve(inside, np.ones(window), 'valid')[::stride][:num_out]
  sums = _window_sum(_pad_or_crop(x, before, after, 0.0), window, stride)
  return sums / jnp.asarray(np.outer(counts, counts)[None, :, :, None], x.dtype)


def _centred_window_sum(v: jax.Array, size: int) -> jax.Array:
  """Per map, the sum over the size x size window that starts size // 2 pixels before each
  pixel (cuda-convnet's kCNorm window), the part inside the map."""
  before = size // 2
  padding = ((0, 0), (before, size - 1 - before), (before, size - 1 - before), (0, 0))
  return lax.reduce_window(v, 0.0, lax.add, (1, size, size, 1), (1, 1, 1, 1), padding)


def response_norm(x: jax.Array, *, size: int, scale: float, power: float) -> jax.Array:
  """cuda-convnet's 'rnorm', within each map: b = a (1 + scale / size^2 * sum_window a^2)^-power
  (convResponseNorm; its layer parser divides the configured scale by size^2)."""
  return x * lax.pow(1.0 + scale / size**2 * _centred_window_sum(jnp.square(x), size),
                     jnp.asarray(-power, x.dtype))


def contrast_norm(x: jax.Array, *, size: int, scale: float, power: float) -> jax.Array:
  """cuda-convnet's spatial contrast normalization ('cnorm'), within each map:
  b = a / (1 + scale / size^2 * sum_window (a - m)^2)^power, where m is the mean of a over the
  size x size window around each pixel (its sum divided by size^2, nothing outside the map) and
  the sum runs over the window's pixels inside the map. Dividing scale by size^2 is what the 2012
  code's layer parser did with the configured scale.
  """
  diffs = x - _centred_window_sum(x, size) / size**2
  return x * lax.pow(1.0 + scale / size**2 * _centred_window_sum(jnp.square(diffs), size),
                     jnp.asarray(-power, x.dtype))


def cross_map_norm_constants(size: int, scale: float, power: float,
                             min_div: float = 1.0) -> dict[str, float]:
  """cuda-convnet's 'cmrnorm', b_f = a_f (min_div + scale / size * sum_{g near f} a_g^2)^-power
  over the `size` maps centred on f (kFCNorm; the parser divides scale by size; min_div is
  cuda-convnet2's minDiv, 1 in the 2012 code), as the k, n, alpha, beta of the paper's LRN
  formula, which it is for odd sizes."""
  return {'k': min_div, 'n': size, 'alpha': scale / size, 'beta': power}


class LocallyConnected(nn.Module):
  """cuda-convnet's 'local' layer: a convolution whose filters and biases differ at every output
  pixel. Kernel [out_h, out_w, size * size, in_channels, filters], offsets row-major; bias
  [out_h, out_w, filters]. The filters may be split over `model_axis` like a Conv's, its input
  then gathered from every shard first (see blocks.Conv)."""
  features: int  # Over all devices.
  kernel_size: int
  stride: int = 1
  padding: int = 0
  init_std: float = 0.01
  bias_init: float = 0.0
  model_axis: str | tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = blocks.gather_channels(x, self.model_axis)
    local_features = self.features // blocks.axis_size(self.model_axis)
    size, stride, pad = self.kernel_size, self.stride, self.padding
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out_h = (x.shape[1] - size) // stride + 1
    out_w = (x.shape[2] - size) // stride + 1
    views = jnp.stack([x[:, i:i + (out_h - 1) * stride + 1:stride,
                         j:j + (out_w - 1) * stride + 1:stride]
                       for i in range(size) for j in range(size)], axis=3)
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (out_h, out_w, size * size, x.shape[-1], local_features))
    bias = self.param('bias', nn.initializers.constant(self.bias_init),
                      (out_h, out_w, local_features))
    return jnp.einsum('bhwkc,hwkcf->bhwf', views, kernel,
                      precision=lax.Precision.HIGHEST) + bias


def output_channel_slice(x: jax.Array, model_axis: str | tuple[str, ...] | None,
                         num_shards: int) -> jax.Array:
  """This model shard's channels of maps computed whole on every shard."""
  if model_axis is None:
    return x
  per_shard = x.shape[-1] // num_shards
  return lax.dynamic_slice_in_dim(x, lax.axis_index(model_axis) * per_shard, per_shard, axis=-1)


class LayerNet(nn.Module):
  """A net stacked from cuda-convnet layer specs (parse_layers), as the 2012 code
  built its CIFAR-10 nets from layer files: conv, local, pool, rnorm, cmrnorm, fc and dropout
  layers in order, each computing what its cuda-convnet kernel did. Under a scheme (`axes`), the
  conv and local layers split their outputs over `axes.conv` and the hidden fc layers over
  `axes.fc`, each gathering its input first (the classifier is computed whole); the cross-map
  normalization sees every shard's maps.
  """
  num_classes: int
  layers: Sequence[str] = ()
  activation: str = 'relu'
  init_std: float = 0.01  # For layers whose spec gives none.
  init_std_overrides: Sequence[tuple[str, float]] = ()
  ops: blocks.Ops = blocks.OPS['xla']  # models.create_model picks the op set.
  micro_batch: int = 0  # See in_micro_batches; create_model sets it.
  axes: parallel.Axes = parallel.Axes()  # The scheme's; none on a single device.

  def replicated_layers(self) -> tuple[str, ...]:
    return (parse_layers(self.layers)[-1].name,)  # The classifier.

  def _layer(self, spec: LayerSpec, init_std: float, is_first: bool, input_axis: Any,
             is_classifier: bool) -> Callable[..., jax.Array]:
    """The function of one layer spec (of x, and of `train` for dropout), its activation
    (act=1) included. `input_axis`: the mesh axis its input channels are split over."""
    kind, axes = spec.type, self.axes
    if kind == 'conv':
      padding = ((spec['padding'],) * 2,) * 2
      fn = blocks.Conv(spec['filters'], spec['size'], spec['stride'], padding,
                       inputs='image' if is_first else 'all_towers', model_axis=axes.conv,
                       init_std=init_std, bias_init=spec['init_bias'], ops=self.ops,
                       name=spec.name)
    elif kind == 'local':
      fn = LocallyConnected(spec['filters'], spec['size'], spec['stride'], spec['padding'],
                            init_std, spec['init_bias'], axes.conv, name=spec.name)
    elif kind == 'fc' and is_classifier:
      dense = blocks.Dense(self.num_classes, None, None, init_std, spec['init_bias'],
                           name=spec.name)
      fn = lambda x: dense(blocks.classifier_input(x, input_axis, axes, spec.name))
    elif kind == 'fc':
      fn = blocks.Dense(spec['outputs'], input_axis, axes.fc, init_std, spec['init_bias'],
                        name=spec.name)
    elif kind == 'dropout':
      return lambda x, train: blocks.fc_dropout(x, 1.0 - spec['keep'], self.make_rng('dropout'),
                                                axes) if train else x
    elif kind == 'pool':
      fn = lambda x: pool(x, spec['kind'], spec['size'], spec['stride'], start=spec['start'],
                          outputs=spec['outputs'], max_pool_fn=self.ops.max_pool)
    elif kind == 'rnorm':
      fn = lambda x: response_norm(x, size=spec['size'], scale=spec['scale'], power=spec['pow'])
    else:  # cmrnorm: the paper's LRN formula with cuda-convnet's constants, over all shards.
      constants = cross_map_norm_constants(spec['size'], spec['scale'], spec['pow'],
                                           spec['min_div'])
      fn = lambda x: output_channel_slice(
          self.ops.lrn(blocks.gather_channels(x, axes.conv), num_groups=1, **constants),
          axes.conv, blocks.axis_size(axes.conv))
    act = blocks.ACTIVATIONS[self.activation]
    return (lambda x, train: act(fn(x))) if spec.params.get('act') else lambda x, train: fn(x)

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    specs = parse_layers(self.layers)
    init_stds = dict(self.init_std_overrides)
    first_fc = next(i for i, spec in enumerate(specs) if spec.type == 'fc')
    fns = []
    for i, spec in enumerate(specs):
      init_std = (init_stds.get(spec.name, spec['init_std'] or self.init_std)
                  if spec.type in WEIGHT_LAYER_TYPES else None)
      # The first fc layer reads the conv layers' channels; the others, the fc layers'.
      input_axis = self.axes.conv if i <= first_fc else self.axes.fc
      fns.append(self._layer(spec, init_std, i == 0, input_axis, i == len(specs) - 1))

    def trunk(x):
      for fn in fns[:first_fc]:
        x = fn(x, train)
      return x

    x = blocks.in_micro_batches(trunk, images, self.micro_batch if train else 0)
    x = blocks.whole_batch(x, self.axes)
    for fn in fns[first_fc:]:
      x = fn(x, train)
    return x
