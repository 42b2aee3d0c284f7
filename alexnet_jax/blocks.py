"""The building blocks of every network here: the op set (how convolution, pooling and LRN are
differentiated), LRN, and the layers whose output channels may be split over the mesh (`Conv`,
`Dense`), the hybrid scheme's gather of the batch, and dropout whose mask does not depend on the
mesh. `models` builds AlexNet and the Figure-1 net from them, `convnet_layers.LayerNet` the 2012
code's layer nets.
"""

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from alexnet_jax import cpu_ops, parallel

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {'relu': nn.relu, 'tanh': jnp.tanh}
# What LRN's alpha multiplies: the sum of squares (the paper's text) or their mean over the n
# maps (the 2012 code, and torch's LocalResponseNorm).
LRN_ALPHA_CONVENTIONS = ('paper', 'cuda_convnet')


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


def axis_size(axis: str | tuple[str, ...] | None) -> int:
  """The number of devices along a mesh axis, or a tuple of axes taken as one (1 for None)."""
  if axis is None:
    return 1
  return int(np.prod([lax.axis_size(a) for a in (axis if isinstance(axis, tuple) else (axis,))]))


def axis_index(axis: str | tuple[str, ...] | None) -> jax.Array | int:
  return 0 if axis is None else lax.axis_index(axis)


def gather_channels(x: jax.Array, axis: str | tuple[str, ...] | None) -> jax.Array:
  """All the towers' maps on every device: channels of all shards, in tower order. Over one
  device there is nothing to gather (XLA:CPU would still copy the maps)."""
  if axis_size(axis) == 1:
    return x
  return lax.all_gather(x, axis, axis=x.ndim - 1, tiled=True)


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


# XLA's own gradients, or `cpu_ops`' hand-written ones (the same functions, their gradients
# reformulated for XLA:CPU). `choose_ops` decides which a run builds.
OPS: dict[str, Ops] = {
    'xla': Ops(cpu_ops.xla_conv, _xla_max_pool, local_response_norm),
    'handwritten': Ops(cpu_ops.conv, cpu_ops.max_pool, cpu_ops.local_response_norm),
}
OPS_CHOICES = ('auto', *OPS)


def pool(ops: Ops, x: jax.Array, window: int, stride: int, padding: str) -> jax.Array:
  """Max pooling with 'SAME' or 'VALID' padding."""
  return ops.max_pool(x, window, stride,
                      cpu_ops.explicit_padding(padding, x.shape[1:3], window, stride))


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
  model_axis: str | tuple[str, ...] | None = None
  init_std: float = 0.01
  bias_init: float = 0.0
  ops: Ops = OPS['xla']

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    groups = self.num_local_towers if self.inputs == 'own_tower' else 1
    if self.inputs == 'all_towers':
      x = gather_channels(x, self.model_axis)
    local_features = self.features // axis_size(self.model_axis)
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (self.kernel_size, self.kernel_size, x.shape[-1] // groups, local_features))
    bias = self.param('bias', nn.initializers.constant(self.bias_init), (local_features,))
    padding = cpu_ops.explicit_padding(self.padding, x.shape[1:3], self.kernel_size, self.stride)
    outputs = [self.ops.conv(xs, ws, self.stride, padding)
               for xs, ws in zip(jnp.split(x, groups, axis=-1), jnp.split(kernel, groups, axis=-1))]
    return jnp.concatenate(outputs, axis=-1) + bias


class Dense(nn.Module):
  """A fully-connected layer whose input channels arrive split over `input_axis` (gathered
  first) and whose output features are split over `output_axis` (None: computed whole, as the
  classifier is, so that the loss needs no more communication)."""
  features: int
  input_axis: str | tuple[str, ...] | None = None
  output_axis: str | tuple[str, ...] | None = None
  init_std: float = 0.01
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = gather_channels(x, self.input_axis)
    x = x.reshape(x.shape[0], -1)
    local_features = self.features // axis_size(self.output_axis)
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (x.shape[-1], local_features))
    bias = self.param('bias', nn.initializers.constant(self.bias_init), (local_features,))
    return x @ kernel + bias


def whole_batch(x: jax.Array, axes: parallel.Axes) -> jax.Array:
  """Before the first hidden fc layer: every device's examples on every device where the fc
  layers see the whole batch (the hybrid scheme's one gather of the conv features)."""
  if not axes.gathers_batch():
    return x
  with jax.named_scope('whole_batch'):  # compile_check names its collectives by this.
    return lax.all_gather(x, axes.batch, axis=0, tiled=True)


def local_batch(x: jax.Array, axes: parallel.Axes) -> jax.Array:
  """Before the classifier: this device's examples again, where the fc layers saw the whole
  batch (the inverse of `whole_batch`)."""
  if not axes.gathers_batch():
    return x
  rows = x.shape[0] // axis_size(axes.batch)
  return lax.dynamic_slice_in_dim(x, axis_index(axes.batch) * rows, rows)


def classifier_input(x: jax.Array, input_axis: str | tuple[str, ...] | None,
                     axes: parallel.Axes, name: str) -> jax.Array:
  """What the classifier `name` (computed whole on every device) reads: all the channels of the
  layer before it (split over `input_axis`), for this device's examples."""
  with jax.named_scope(name):  # Its gather is the classifier's in compile_check's counts.
    return local_batch(gather_channels(x, input_axis), axes)


def dropout(x: jax.Array, rate: float, rng: jax.Array, *, rows_axis: str | tuple[str, ...] | None,
            columns_axis: str | tuple[str, ...] | None) -> jax.Array:
  """Dropout whose mask does not depend on the mesh.

  The mask is drawn for the global batch and all features, then this device's rows (over
  `rows_axis`) and columns (over `columns_axis`) are cut from it, so every mesh shape drops the same
  units as the single-device network with the same key.
  """
  if rate == 0.0:
    return x
  batch, features = x.shape
  num_rows, num_cols = batch * axis_size(rows_axis), features * axis_size(columns_axis)
  keep = jax.random.bernoulli(rng, 1.0 - rate, (num_rows, num_cols))
  keep = lax.dynamic_slice(keep, (axis_index(rows_axis) * batch,
                                  axis_index(columns_axis) * features), (batch, features))
  return jnp.where(keep, x / (1.0 - rate), 0.0)


def fc_dropout(x: jax.Array, rate: float, rng: jax.Array, axes: parallel.Axes) -> jax.Array:
  """`dropout` of a hidden fc layer's outputs, laid out by the scheme's `axes`."""
  return dropout(x, rate, rng, rows_axis=axes.fc_batch, columns_axis=axes.fc)
