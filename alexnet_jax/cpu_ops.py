"""Convolution, max pooling and LRN with hand-written gradients that XLA:CPU runs fast.

Each function computes exactly what its plain counterpart in `models` computes; only the
backward pass is reformulated (tests hold them equal within float32 rounding):
- a convolution's kernel gradient is one matmul per kernel offset, [C, M] @ [M, O] over the
  M = batch x output pixels, where that beats XLA:CPU's kernel-gradient convolution (2-4x for
  AlexNet's conv2-conv5 and for 3-channel inputs; see `_matmul_kernel_gradient`);
- max pooling's forward pass also records which pixel is each window's first maximum (in
  row-major order, as XLA's select_and_scatter picks it); the gradient is then elementwise, each
  window's gradient given to that pixel and summed per input pixel through the pooling stride's
  parity planes, instead of select_and_scatter (4-8x slower);
- LRN's gradient is the closed form g d^-beta - 2 alpha beta x S(g x d^(-beta-1)), with S the
  window sum over channels, and d^-0.75 is computed with two square roots instead of a pow.
On GPU and TPU, XLA's own gradients are the fast ones: `models` uses these on the CPU only.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

Padding = tuple[tuple[int, int], tuple[int, int]]


def explicit_padding(padding: str | Sequence[tuple[int, int]], spatial: Sequence[int],
                     window: int, stride: int) -> Padding:
  """'SAME' / 'VALID' (or explicit pairs) as the (low, high) pairs of the two spatial axes."""
  if isinstance(padding, str):
    return tuple(lax.padtype_to_pads(tuple(spatial), (window, window), (stride, stride), padding))
  return tuple(tuple(p) for p in padding)


def xla_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  """The plain NHWC x HWIO convolution, differentiated by XLA."""
  return lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _window_views(x: jax.Array, window: int, stride: int, out_shape: Sequence[int]):
  """For each window offset (i, j), row-major: the input pixel at that offset of every window,
  as a [batch, out_h, out_w, channels] view of the (already padded) input."""
  batch, out_h, out_w = out_shape[:3]
  for i in range(window):
    for j in range(window):
      yield i, j, lax.slice(x, (0, i, j, 0),
                            (batch, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1,
                             x.shape[3]), (1, stride, stride, 1))


def _varying_axes(x: jax.Array) -> frozenset:
  """The shard_map mesh axes over which `x` differs between devices (none outside shard_map)."""
  return jax.typeof(x).manual_axis_type.varying


def _vary(x: jax.Array, axes: frozenset) -> jax.Array:
  missing = tuple(sorted(axes - _varying_axes(x)))
  return lax.pcast(x, missing, to='varying') if missing else x


def _stride_aligned(padding: Padding, spatial: Sequence[int], window: int,
                    stride: int) -> Padding:
  """`padding` with zeros added at the high end of each spatial axis until the padded size is a
  multiple of the stride, where no window reads them (the output's size is unchanged): XLA:CPU
  runs such a strided convolution 3-4x faster (AlexNet's conv1, 227 -> 228: 113 ms against 35
  for 32 images, the same numbers)."""
  aligned = []
  for (low, high), size in zip(padding, spatial):
    padded = size + low + high
    extra = -padded % stride
    if (padded - window) % stride + extra >= stride:
      extra = 0  # A window would read the new zeros: the output would grow.
    aligned.append((low, high + extra))
  return tuple(aligned)


def conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  """NHWC x HWIO convolution (explicit `padding` pairs).

  Two layouts XLA:CPU runs faster give the same numbers: a strided convolution's input padded to
  a multiple of the stride (`_stride_aligned`), and a 3-channel input (RGB) of an unstrided one
  given a zero fourth channel, the kernel zero weights for it (the CIFAR-10 nets' conv1, 8
  images: 1.4 ms against 0.3; the pad's transpose drops that channel's kernel gradient). A
  strided one runs slower with 4 channels (AlexNet's conv1: 35 ms against 40).

  Inside shard_map, input and kernel are first cast to vary over the same mesh axes, so that
  the hand-written gradients have their types; the cast's transpose sums the kernel's gradient
  over the data replicas, as autodiff would.
  """
  axes = _varying_axes(x) | _varying_axes(kernel)
  if stride > 1:
    padding = _stride_aligned(padding, x.shape[1:3], kernel.shape[0], stride)
  elif x.shape[-1] == 3:
    x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, 1)))
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, 1), (0, 0)))
  return _conv(_vary(x, axes), _vary(kernel, axes), stride, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  return xla_conv(x, kernel, stride, padding)


def _conv_fwd(x, kernel, stride, padding):
  return _conv(x, kernel, stride, padding), (x, kernel)


def _matmul_kernel_gradient(images: int, in_channels: int, out_channels: int) -> bool:
  """Whether the per-offset matmuls beat XLA:CPU's kernel gradient. Measured on one core, 64
  images (ms, XLA vs matmuls): 3->32 at 32x32 77 vs 32; 32->32 at 16x16 36 vs 71; 32->64 at 8x8
  15 vs 19; AlexNet (32 images) 48->128 1036 vs 288, 256->384 435 vs 303, 192->192 188 vs 136.
  A [C, M] @ [M, O] matmul with a small C x O output runs slowly; XLA's gradient does so with
  few input channels, and with many images only: on micro-batches of 8 (blocks.in_micro_batches)
  XLA's was the faster (the CIFAR-10 net's training step 11% faster than with 3->32 matmuls)."""
  return images > 16 and (in_channels <= 4 or in_channels * out_channels >= 4096)


def _conv_bwd(stride, padding, residuals, g):
  x, kernel = residuals
  if not _matmul_kernel_gradient(x.shape[0], *kernel.shape[2:]):
    return jax.vjp(lambda v, k: xla_conv(v, k, stride, padding), x, kernel)[1](g)
  grad_x = jax.vjp(lambda v: xla_conv(v, kernel, stride, padding), x)[1](g)[0]
  padded = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  g_matrix = g.reshape(-1, g.shape[-1])
  size = kernel.shape[0]
  rows = [view.reshape(-1, x.shape[-1]).T @ g_matrix
          for _, _, view in _window_views(padded, size, stride, g.shape)]
  return grad_x, jnp.stack(rows).reshape(kernel.shape)


_conv.defvjp(_conv_fwd, _conv_bwd)


def _pool_windows(x: jax.Array, window: int, stride: int, padding: Padding) -> list[jax.Array]:
  """The window-offset views of the -inf padded input (see _window_views), row-major."""
  (top, bottom), (left, right) = padding
  out_h = (x.shape[1] + top + bottom - window) // stride + 1
  out_w = (x.shape[2] + left + right - window) // stride + 1
  padded = jnp.pad(x, ((0, 0), *padding, (0, 0)), constant_values=-jnp.inf)
  return [view for _, _, view in _window_views(padded, window, stride, (x.shape[0], out_h, out_w))]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool(x: jax.Array, window: int, stride: int, padding: Padding) -> jax.Array:
  """Max pooling of NHWC maps over window x window, padded with -inf by `padding` pairs: the
  maximum of the window's strided views (exact, and 2x faster on the CPU than reduce_window)."""
  return functools.reduce(jnp.maximum, _pool_windows(x, window, stride, padding))


def _max_pool_fwd(x, window, stride, padding):
  views = _pool_windows(x, window, stride, padding)
  y = functools.reduce(jnp.maximum, views)
  # Which view holds each window's first maximum (select_and_scatter's choice among ties).
  index_type = jnp.int8 if len(views) <= 127 else jnp.int32
  first_max = jnp.full(y.shape, len(views) - 1, index_type)
  for k in range(len(views) - 2, -1, -1):
    first_max = jnp.where(views[k] == y, index_type(k), first_max)
  return y, (x, first_max)  # x for its shape only.


def _max_pool_bwd(window, stride, padding, residuals, g):
  x, first_max = residuals
  batch, height, width, channels = x.shape
  out_h, out_w = g.shape[1:3]
  (top, _), (left, _) = padding
  # The padded map is cut into stride x stride parity planes of plane_h x plane_w pixels: window
  # (p, q) meets plane (i % s, j % s) at pixel (p + i // s, q + j // s). Each plane pixel sums
  # the gradients of the windows whose first maximum it is, read from g and first_max shifted
  # by (i // s, j // s): slices of one zero-padded copy of each.
  reach = (window - 1) // stride
  plane_h = max(out_h + reach, -(-(height + top) // stride))
  plane_w = max(out_w + reach, -(-(width + left) // stride))
  pad = ((0, 0), (reach, plane_h - out_h), (reach, plane_w - out_w), (0, 0))
  g_padded, first_padded = jnp.pad(g, pad), jnp.pad(first_max, pad, constant_values=-1)
  planes = {}
  for k, (i, j) in enumerate((i, j) for i in range(window) for j in range(window)):
    down, right = reach - i // stride, reach - j // stride
    shifted = lambda a: a[:, down:down + plane_h, right:right + plane_w]
    share = jnp.where(shifted(first_padded) == k, shifted(g_padded), 0.0)
    key = (i % stride, j % stride)
    planes[key] = planes[key] + share if key in planes else share
  zero = jnp.zeros((batch, plane_h, plane_w, channels), g.dtype)
  interleaved = jnp.stack(
      [jnp.stack([planes.get((a, b), zero) for b in range(stride)], axis=3)
       for a in range(stride)], axis=2)
  grad = interleaved.reshape(batch, plane_h * stride, plane_w * stride, channels)
  return (grad[:, top:top + height, left:left + width],)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def _negative_power(d: jax.Array, beta: float) -> jax.Array:
  """d ** -beta; for the paper's beta = 0.75 as 1 / (sqrt(d) sqrt(sqrt(d))), far cheaper on CPU
  than pow's exp(log)."""
  if beta == 0.75:
    return lax.rsqrt(d) * lax.rsqrt(jnp.sqrt(d))
  return lax.pow(d, jnp.asarray(-beta, d.dtype))


def _channel_window_sum(v: jax.Array, n: int, num_groups: int) -> jax.Array:
  """sum_{|j-i|<=n/2} v_j over the channels of each group."""
  grouped = v.reshape(*v.shape[:-1], num_groups, v.shape[-1] // num_groups)
  ones = (1,) * grouped.ndim
  summed = lax.reduce_window(grouped, 0.0, lax.add, ones[:-1] + (n,), ones,
                             ((0, 0),) * (grouped.ndim - 1) + ((n // 2, n // 2),))
  return summed.reshape(v.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def local_response_norm(x: jax.Array, k: float, n: int, alpha: float, beta: float,
                        num_groups: int = 1) -> jax.Array:
  """b = x (k + alpha S(x^2))^-beta, as `blocks.local_response_norm`."""
  return x * _negative_power(k + alpha * _channel_window_sum(jnp.square(x), n, num_groups), beta)


def _lrn_fwd(x, k, n, alpha, beta, num_groups):
  d = k + alpha * _channel_window_sum(jnp.square(x), n, num_groups)
  scale = _negative_power(d, beta)
  return x * scale, (x, d, scale)


def _lrn_bwd(k, n, alpha, beta, num_groups, residuals, g):
  del k
  x, d, scale = residuals
  inner = _channel_window_sum(g * x * scale / d, n, num_groups)
  return (g * scale - (2.0 * alpha * beta) * x * inner,)


local_response_norm.defvjp(_lrn_fwd, _lrn_bwd)
