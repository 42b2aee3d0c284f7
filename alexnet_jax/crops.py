"""Training crops resized on the device (`dataset.resize_on_device`): the host only decodes each
JPEG (scaled down by the decoder's DCT where the crop's window is at least twice the crop; whole
when it fits the canvas, else the window's pixels) into the top-left of a fixed uint8 canvas,
and the step resamples each window to the crop size, a few gathers beside the first convolution.

Where the canvas fits the images this lets the host deliver more images; where it is much
larger than them, filling it costs what the resize saved (docs/performance.md). Written for
NumPy and JAX alike (tests compare the two).
"""

from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

DCT_RATIOS = (1, 2, 4, 8)  # The downscaling factors the JPEG decoder offers.


def window_canvas(dataset: ml_collections.ConfigDict) -> int | None:
  """The side of the canvas that carries each training window, or None when the host crops to
  `crop_size` itself: `resize_on_device` off, or a pipeline that crops decoded squares (a cache,
  synthetic images), whose crops need no resizing.

  `window_canvas`, or 2 * crop_size - 1, which holds every window: DCT downscaling leaves a
  window that is at least the crop under twice the crop (the host resizes any window larger than
  the canvas itself).
  """
  if not dataset.resize_on_device or dataset.cache or dataset.name == 'synthetic':
    return None
  return dataset.window_canvas or 2 * dataset.crop_size - 1


def _taps(xp: Any, start: Any, extent: Any, size: int, canvas: int,
          antialias: bool) -> tuple[Any, Any]:
  """For each example's window along one axis (its start and extent [B] in canvas pixels), the
  canvas indices [B, size, taps] and weights that resample it to `size` as `tf.image.resize`
  resamples a whole image (bilinear, half-pixel centres; `antialias`: the triangle kernel
  widened by the shrink factor), over the pixels the window touches only (weights renormalized
  at its edges, which for the plain kernel equals clamping)."""
  # The kernel's radius is at most canvas / size, and an open interval of width 2r holds at most
  # ceil(2r) pixels: 4 for the default canvas (2 * size - 1).
  num_taps = int(np.ceil(2 * max(canvas / size, 1.0))) if antialias else 2
  start, extent = start[:, None, None], extent[:, None, None]
  centres = start + (xp.arange(size, dtype=xp.float32)[None, :, None] + 0.5) * extent / size
  radius = xp.maximum(extent / size, 1.0) if antialias else xp.ones_like(extent)
  first = xp.floor(centres - 0.5 - radius) + 1  # The first pixel inside the kernel.
  index = first + xp.arange(num_taps, dtype=xp.float32)
  inside = (index >= xp.floor(start)) & (index < xp.ceil(start + extent))
  weights = xp.where(inside, xp.maximum(0.0, 1.0 - xp.abs(index + 0.5 - centres) / radius), 0.0)
  weights = weights / xp.sum(weights, axis=-1, keepdims=True)
  return xp.clip(index, 0, canvas - 1).astype(xp.int32), weights.astype(xp.float32)


def _resample_axis1(xp: Any, images: Any, index: Any, weights: Any) -> Any:
  """images [B, N, ...] resampled along axis 1 by the taps of `_taps`: [B, size, ...], float32.

  Advanced indexing gathers whole rows (one gather XLA:CPU runs fast), and the taps are summed
  one by one: XLA:CPU's reduction over a small inner axis is slower than the gather tenfold."""
  batch, size, num_taps = index.shape
  picked = images[xp.arange(batch)[:, None], index.reshape(batch, -1)]
  picked = picked.reshape(batch, size, num_taps, *images.shape[2:]).astype(xp.float32)
  weights = weights.reshape(batch, size, num_taps, *([1] * (images.ndim - 2)))
  return sum(picked[:, :, k] * weights[:, :, k] for k in range(num_taps))


def resize_windows(canvas: Any, window: Any, size: int, antialias: bool = False) -> Any:
  """Each example's window of its canvas (uint8 [B, C, C, 3]; window[b] = [top, left, height,
  width], float32 in canvas pixels) resampled to float32 [B, size, size, 3]. A window
  [0, 0, size, size] comes back unchanged, bit for bit."""
  xp = np if isinstance(canvas, np.ndarray) else jnp
  side = canvas.shape[1]
  window = window.astype(xp.float32)
  rows = _resample_axis1(xp, canvas, *_taps(xp, window[:, 0], window[:, 2], size, side,
                                            antialias))
  cols = _resample_axis1(xp, xp.swapaxes(rows, 1, 2),
                         *_taps(xp, window[:, 1], window[:, 3], size, side, antialias))
  return xp.swapaxes(cols, 1, 2)
