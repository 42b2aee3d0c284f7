"""Image-classification data from TFDS, an image folder or a synthetic task, through tf.data.

Every source yields (encoded or decoded image, label) pairs. Training order and augmentation are
functions of (seed, epoch, position) only, so a run resumed in the middle of an epoch sees exactly
the batches it would have seen. For image folders and the synthetic task every process knows the
whole (cheap) list of training examples, shuffles it the same way and reads only its rows of each
global batch, so the batches do not depend on the number of processes. A TFDS split is divided
between the processes by TFDS (`even_splits`), each reading its own files.
"""

import concurrent.futures
import dataclasses
import math
import re
import socket
import urllib.parse
from typing import Any, Iterable, Iterator, Sequence

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from alexnet_jax import crops
from alexnet_jax import image_stats
from alexnet_jax import paths
from alexnet_jax.errors import UserInputError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')


@dataclasses.dataclass(frozen=True)
class Split:
  """This process's examples of one split: a dataset of {'image', 'label'} and counts."""
  examples: tf.data.Dataset
  num_local: int  # Examples in `examples`.
  num_global: int  # Examples over all processes.
  holds: str  # What 'image' is: 'path' (a file's), 'encoded' (a file's bytes) or 'decoded' (uint8).
  process_sharded: bool  # True when `examples` holds only this process's share.
  image_files: tuple[str, ...] = ()  # An image folder's: to name a bad one, and to shuffle.
  # An image folder's [height, width] of each JPEG (from its header), 0 for other files, and
  # labels (for shuffling paths without tf.data's shuffle buffer).
  jpeg_sizes: np.ndarray | None = None
  labels: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Source:
  num_classes: int
  train: Split
  eval: Split | None  # None when the source was made for the training split only.
  class_names: tuple[str, ...] = ()  # An image folder's or a TFDS dataset's; none synthetic.

  def identity(self) -> dict[str, Any]:
    """What a run's checkpoints must have been trained on to resume on this source."""
    return {'train_examples': self.train.num_global, 'num_classes': self.num_classes,
            'class_names': list(self.class_names)}


# ---------------------------------------------------------------------------------- sources


# The first bytes of the formats decode_image reads; anything else in an image folder is not one.
IMAGE_SIGNATURES = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF87a', b'GIF89a', b'BM')


# JPEG markers of frame headers, which hold the image's size: SOF0-15 but DHT, JPG and DAC.
_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(file: Any) -> tuple[int, int]:
  """A JPEG's [height, width] from its frame header, (0, 0) when none comes before the image
  data: reads each segment's marker and length, and seeks past its body."""
  position = 2  # After the start-of-image marker.
  while True:
    file.seek(position)
    head = file.read(4)
    if len(head) < 4 or head[0] != 0xFF or head[1] in (0xD9, 0xDA):  # Broken, end, scan.
      return 0, 0
    if head[1] == 0xFF or head[1] == 0x01 or 0xD0 <= head[1] <= 0xD8:  # Fill byte; no length.
      position += 1 if head[1] == 0xFF else 2
      continue
    if head[1] in _FRAME_MARKERS:
      frame = file.read(5)  # Sample precision, height, width.
      return (int.from_bytes(frame[1:3], 'big'), int.from_bytes(frame[3:5], 'big')) \
          if len(frame) == 5 else (0, 0)
    position += 2 + int.from_bytes(head[2:4], 'big')


def probe_image_file(path: str) -> tuple[bool, tuple[int, int]]:
  """Whether the file starts like a JPEG, PNG, GIF or BMP, and a JPEG's [height, width], else
  (0, 0) (cheap: a few small reads)."""
  try:
    with paths.Path(path).open('rb') as f:
      signature = f.read(8)
      is_jpeg = signature.startswith(IMAGE_SIGNATURES[0])
      return signature.startswith(IMAGE_SIGNATURES), _jpeg_size(f) if is_jpeg else (0, 0)
  except OSError:
    return False, (0, 0)


def _class_folders(split_dir: str) -> list[str]:
  """The split's class folders, sorted; hidden ones (.ipynb_checkpoints, .git) are no class."""
  return sorted(entry.name for entry in paths.Path(split_dir).iterdir()
                if entry.is_dir() and not entry.name.startswith('.'))


def _list_images(split_dir: str, class_names: list[str],
                 bad_images: str) -> tuple[list[str], list[int], np.ndarray]:
  """Paths, labels and JPEG sizes ([N, 2], `probe_image_file`) of a split's images; files that
  are not images skipped or refused."""
  image_paths, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = paths.join(split_dir, name)
    files = sorted(entry.name for entry in paths.Path(class_dir).iterdir()
                   if entry.name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise UserInputError(f'the class folder {class_dir} has no images '
                           f'({", ".join(IMAGE_EXTENSIONS)}).')
    image_paths += [paths.join(class_dir, f) for f in files]
    labels += [label] * len(files)
  with concurrent.futures.ThreadPoolExecutor(32) as pool:  # I/O bound: many small reads.
    good, sizes = zip(*pool.map(probe_image_file, image_paths))  # Never empty (checked above).
  bad = [p for p, ok in zip(image_paths, good) if not ok]
  if bad and bad_images == 'fail':
    raise UserInputError(f'{bad[0]} is not an image (JPEG, PNG, GIF or BMP), nor are '
                         f'{len(bad) - 1} other files in {split_dir}; remove them or set '
                         'dataset.bad_images=skip.')
  if bad:
    logging.warning('Skipping %d files in %s that are not images (the first: %s).', len(bad),
                    split_dir, bad[0])
  kept_labels = [l for l, ok in zip(labels, good) if ok]
  present = set(kept_labels)
  empty = [name for label, name in enumerate(class_names) if label not in present]
  if empty:  # Every file of the class was skipped: the class would have no example.
    raise UserInputError(f'the class folder {paths.join(split_dir, empty[0])} has no images: '
                         'none of its files is a JPEG, PNG, GIF or BMP.')
  return ([p for p, ok in zip(image_paths, good) if ok], kept_labels,
          np.asarray([size for size, ok in zip(sizes, good) if ok], np.int32).reshape(-1, 2))


def _image_folder(config: ml_collections.ConfigDict, process_index: int,
                  process_count: int, with_eval: bool) -> Source:
  """DIR/split/class/image, classes named by the training split's folders, sorted.

  Every split read (the training split, and the evaluation split `with_eval`) must have the same
  class folders, each with at least one image.
  """
  splits = (config.train_split, config.eval_split) if with_eval else (config.train_split,)
  split_dirs = {s: paths.join(config.data_dir, s) for s in splits}
  for split, split_dir in split_dirs.items():
    if not paths.Path(split_dir).is_dir():
      raise UserInputError(f'dataset.data_dir={config.data_dir!r} has no {split!r} split folder '
                           f'(expected {split_dir}/<class>/<image>).')
  class_names = _class_folders(split_dirs[config.train_split])
  if len(class_names) < 2:  # One class: the loss falls to 0 with nothing learnt.
    raise UserInputError(f'{split_dirs[config.train_split]} has {len(class_names)} class '
                         f'folder{"" if class_names else "s"} {class_names}; a classifier needs '
                         'two or more.')
  eval_classes = _class_folders(split_dirs[config.eval_split]) if with_eval else class_names
  if eval_classes != class_names:
    only_train = sorted(set(class_names) - set(eval_classes))
    only_eval = sorted(set(eval_classes) - set(class_names))
    raise UserInputError(
        f'the splits {config.train_split!r} and {config.eval_split!r} of {config.data_dir} have '
        f'different classes: only in {config.train_split!r}: {only_train[:5]}, only in '
        f'{config.eval_split!r}: {only_eval[:5]}.')

  def split(name, process_sharded):
    files, labels, jpeg_sizes = _list_images(split_dirs[name], class_names, config.bad_images)
    local = slice(process_index, None, process_count) if process_sharded else slice(None)
    # Paths, read by the map that decodes them (`encoded`).
    labels = np.asarray(labels[local], np.int32)
    examples = tf.data.Dataset.from_tensor_slices({'image': files[local], 'label': labels})
    return Split(examples, len(files[local]), len(files), holds='path',
                 process_sharded=process_sharded, image_files=tuple(files[local]),
                 jpeg_sizes=jpeg_sizes[local], labels=labels)

  return Source(len(class_names), split(config.train_split, process_sharded=False),
                split(config.eval_split, process_sharded=True) if with_eval else None,
                tuple(class_names))


def _unreachable_host(urls: Iterable[str], timeout_seconds: float = 5.0) -> str | None:
  """The first host of `urls` that takes no connection within the timeout, or None."""
  for url in urls:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
      continue
    port = parts.port or (80 if parts.scheme == 'http' else 443)
    try:
      socket.create_connection((parts.hostname, port), timeout=timeout_seconds).close()
    except OSError:
      return parts.hostname
  return None


def _tfds(config: ml_collections.ConfigDict, process_index: int, process_count: int,
          with_eval: bool) -> Source:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def cannot_prepare(reason):
    return UserInputError(
        f'dataset.name={config.name!r} could not be prepared with TFDS in dataset.data_dir='
        f'{config.data_dir!r} ({reason[:300]}). Offline, use dataset.name=image_folder or '
        'synthetic.')

  try:
    builder = tfds.builder(config.name, data_dir=config.data_dir)
    if not builder.is_prepared():
      unreachable = _unreachable_host(builder.url_infos or {})
      if unreachable:  # TFDS would retry its download for minutes before saying so.
        raise cannot_prepare(f'its download needs {unreachable}, which cannot be reached')
    builder.download_and_prepare()  # A no-op when prepared; imagenet2012 needs its manual_dir.
  except UserInputError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise cannot_prepare(str(e).strip().splitlines()[0] if str(e).strip()
                         else type(e).__name__) from e

  def split(name):
    local_name = tfds.even_splits(name, n=process_count)[process_index]
    examples = builder.as_dataset(split=local_name, shuffle_files=False,
                                  decoders={'image': tfds.decode.SkipDecoding()})
    examples = examples.map(lambda x: {'image': x['image'], 'label': tf.cast(x['label'], tf.int32)})
    return Split(examples, builder.info.splits[local_name].num_examples,
                 builder.info.splits[name].num_examples, holds='encoded', process_sharded=True)

  label = builder.info.features['label']
  return Source(label.num_classes, split(config.train_split),
                split(config.eval_split) if with_eval else None, tuple(label.names))


def synthetic_images(num_examples: int, num_classes: int, image_size: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
  """A learnable task: each class is a fixed random low-frequency pattern, plus noise.

  The patterns are the same for every seed (every split); labels and noise differ.
  """
  coarse = np.random.default_rng(0).uniform(0, 255, (num_classes, 4, 4, 3))
  rng = np.random.default_rng(seed + 1)
  templates = np.kron(coarse, np.ones((1, -(-image_size // 4), -(-image_size // 4), 1)))
  templates = templates[:, :image_size, :image_size]
  labels = rng.integers(0, num_classes, num_examples).astype(np.int32)
  noise = rng.normal(0, 40, (num_examples, image_size, image_size, 3))
  images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
  return images, labels


def _synthetic(config: ml_collections.ConfigDict, process_index: int,
               process_count: int) -> Source:
  def split(num_examples, seed, process_sharded):
    images, labels = synthetic_images(num_examples, config.synthetic_num_classes,
                                      config.image_size, seed)
    local = slice(process_index, None, process_count) if process_sharded else slice(None)
    examples = tf.data.Dataset.from_tensor_slices({'image': images[local], 'label': labels[local]})
    return Split(examples, len(labels[local]), num_examples, holds='decoded',
                 process_sharded=process_sharded)

  return Source(config.synthetic_num_classes,
                split(config.synthetic_train_examples, 0, process_sharded=False),
                split(config.synthetic_eval_examples, 1, process_sharded=True))


def create_source(config: ml_collections.ConfigDict, process_index: int = 0,
                  process_count: int = 1, with_eval: bool = True) -> Source:
  """The dataset named by `config.name` (a `config.dataset` block); its evaluation split too
  unless `with_eval` is False (write_image_stats reads the training split only)."""
  if config.name not in ('synthetic',) and config.data_dir is not None \
      and not paths.Path(config.data_dir).is_dir():
    what = 'is a file, not a folder' if paths.Path(config.data_dir).exists() else 'does not exist'
    raise UserInputError(f'dataset.data_dir={config.data_dir!r} {what}.')
  if config.name == 'synthetic':
    return _synthetic(config, process_index, process_count)
  if config.name == 'image_folder':
    if config.data_dir is None:
      raise UserInputError('dataset.name=image_folder needs dataset.data_dir=PATH.')
    return _image_folder(config, process_index, process_count, with_eval)
  return _tfds(config, process_index, process_count, with_eval)


# ----------------------------------------------------------------------------- preprocessing


def resize(image: tf.Tensor, size: Any, *, antialias: bool = True) -> tf.Tensor:
  """Bilinear (antialiased when shrinking, unless asked not to), rounded back to uint8."""
  image = tf.image.resize(image, size, method='bilinear', antialias=antialias)
  return tf.cast(image + 0.5, tf.uint8)  # Its weights are positive: no value leaves [0, 255].


def decode_and_resize(image: tf.Tensor, image_size: int, decoded: bool) -> tf.Tensor:
  """Decode, rescale the shorter side to `image_size`, keep the central square (Sec. 2): uint8."""
  if not decoded:
    image = tf.io.decode_image(image, channels=3, expand_animations=False)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  scale = tf.cast(image_size, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
  new_size = tf.cast(tf.math.ceil(tf.cast([height, width], tf.float32) * scale), tf.int32)
  image = resize(image, tf.maximum(new_size, image_size))
  image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
  return tf.ensure_shape(image, [image_size, image_size, 3])


def decoder_error(error: tf.errors.OpError) -> str:
  """A TensorFlow error's own reason, without the names of the graph functions it passed."""
  message = (error.message or type(error).__name__).strip().splitlines()[0]
  return re.sub(r'\{\{[^}]*\}\}\s*', '', message).strip()[:300]


def first_undecodable(image_files: Sequence[str], image_size: int) -> tuple[str, str] | None:
  """The first of `image_files` that does not decode as preprocessing decodes it, with the decoder's
  reason, or None (reads every file: for naming a bad file, and for `bad_images=fail`'s check
  of an evaluation split before training)."""

  def check(path):
    try:
      decode_and_resize(tf.io.read_file(path), image_size, decoded=False)
      return None
    except tf.errors.OpError as e:
      return path, decoder_error(e)

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    return next((bad for bad in pool.map(check, image_files) if bad is not None), None)


DRAWS = 6  # Uniform numbers per training example: crop top and left, reflection, lighting (3).
_GOLDEN, _MIX = 0x9E3779B97F4A7C15, (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # SplitMix64's.


def _mix64(bits: tf.Tensor) -> tf.Tensor:
  """SplitMix64's finalizer on uint64: every output bit depends on every input bit."""
  for shift, multiplier in zip((30, 27), _MIX):
    bits = tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, tf.constant(shift, tf.uint64)))
    bits = bits * tf.constant(multiplier, tf.uint64)
  return tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, tf.constant(31, tf.uint64)))


def example_draws(epoch_seed: int, index: tf.Tensor) -> tf.Tensor:
  """The DRAWS uniform numbers in (0, 1) of the training examples at `index` (int64, any
  shape) of the epoch's shuffled order: [..., DRAWS] float32, SplitMix64's stream from the
  epoch's seed at each example's own counters. Elementwise, so one example's numbers are the
  same drawn alone (`augment`) or with its batch (`train_epoch`'s whole-JPEG path)."""
  state = _mix64(tf.constant(epoch_seed % 2**64, tf.uint64))
  counters = tf.cast(index, tf.uint64)[..., None] * DRAWS + \
      tf.constant(np.arange(1, DRAWS + 1), tf.uint64)
  bits = _mix64(state + counters * tf.constant(_GOLDEN, tf.uint64))
  # 23 bits: (k + 0.5) / 2^23 is exact in float32 and never 0 or 1.
  return (tf.cast(tf.bitwise.right_shift(bits, tf.constant(41, tf.uint64)), tf.float32) + 0.5) \
      / 2.0**23


def crop_offset(draws: tf.Tensor | None, *, image_size: int, crop_size: int,
                random_crop: bool) -> tf.Tensor:
  """[..., 2] [top, left] of crops of the image_size square: uniform at random (from
  `example_draws`), or the centre."""
  if random_crop:
    positions = image_size - crop_size + 1
    return tf.minimum(tf.cast(draws[..., :2] * positions, tf.int32), positions - 1)
  return tf.fill([2], (image_size - crop_size) // 2) if draws is None else \
      tf.fill(tf.shape(draws[..., :2]), (image_size - crop_size) // 2)


def crop(image: tf.Tensor, offset: tf.Tensor, crop_size: int) -> tf.Tensor:
  return tf.slice(image, tf.concat([offset, [0]], 0), [crop_size, crop_size, 3])


def window_in_image(height_width: tf.Tensor, offset: tf.Tensor, *, image_size: int,
                    crop_size: int) -> tuple[tf.Tensor, tf.Tensor]:
  """The pixels of images of [..., 2] `height_width` that crops at `offset` of their central
  `image_size` square cover: [..., 2] [top, left] and [...] side of each window, rounded to whole
  pixels."""
  side = tf.reduce_min(height_width, axis=-1, keepdims=True)
  scale = tf.cast(side, tf.float32) / image_size
  window = tf.maximum(1, tf.cast(tf.round(crop_size * scale), tf.int32))
  top_left = tf.cast(tf.round(tf.cast(offset, tf.float32) * scale), tf.int32) + \
      (height_width - side) // 2
  return tf.minimum(top_left, height_width - window), window[..., 0]


def _jpeg_window(encoded: tf.Tensor, offset: tf.Tensor, *, image_size: int,
                 crop_size: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """`window_in_image` of a JPEG, and its [height, width]."""
  height_width = tf.image.extract_jpeg_shape(encoded)[:2]
  return (*window_in_image(height_width, offset, image_size=image_size, crop_size=crop_size),
          height_width)


def decode_and_crop(encoded: tf.Tensor, offset: tf.Tensor, *, image_size: int, crop_size: int,
                    antialias: bool = False) -> tf.Tensor:
  """The crop at `offset` of the image's central `image_size` square (`decode_and_resize`).

  A JPEG is decoded only inside the window that becomes the crop, which is then resized to
  `crop_size`: the same pixels up to rounding the window to whole source pixels, at a fraction
  of the cost of decoding and resizing the whole image. Other formats take the long way.
  """

  def from_jpeg():
    top_left, window, _ = _jpeg_window(encoded, offset, image_size=image_size,
                                       crop_size=crop_size)
    image = tf.image.decode_and_crop_jpeg(
        encoded, tf.concat([top_left, [window, window]], 0), channels=3)
    return resize(image, [crop_size, crop_size], antialias=antialias)

  def other():
    return crop(decode_and_resize(encoded, image_size, decoded=False), offset, crop_size)

  image = tf.cond(tf.io.is_jpeg(encoded), from_jpeg, other)
  return tf.ensure_shape(image, [crop_size, crop_size, 3])


def decode_window(encoded: tf.Tensor, offset: tf.Tensor, *, image_size: int, crop_size: int,
                  canvas: int, antialias: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """What `decode_and_crop` resizes, left for the step to resize (`crops.resize_windows`):
  decoded pixels, uint8 [height, width, 3], each at most `canvas`, and the crop's window in
  them, [top, left, height, width], float32.

  A JPEG is decoded scaled down by the largest of the decoder's DCT ratios that keeps the window
  at least `crop_size` (a fraction of the work of decoding it whole): whole when it fits the
  canvas (the fastest), else only the scaled pixels the window touches; the window keeps its
  exact place among them. A window that does not fit the canvas either is resized here. Other
  formats come cropped to `crop_size`, as `decode_and_crop` makes them.
  """

  def whole(image):
    return image, tf.cast(tf.concat([[0, 0], tf.shape(image)[:2]], 0), tf.float32)

  def from_jpeg():
    top_left, window, height_width = _jpeg_window(encoded, offset, image_size=image_size,
                                                  crop_size=crop_size)
    ratio_index = tf.add_n([tf.cast(window >= ratio * crop_size, tf.int32)
                            for ratio in crops.DCT_RATIOS[1:]])
    ratio = tf.gather(crops.DCT_RATIOS, ratio_index)
    # In scaled pixels (at a ratio the decoder crops in those; libjpeg rounds their count up):
    scaled_size = (height_width + ratio - 1) // ratio
    start = tf.cast(top_left, tf.float32) / tf.cast(ratio, tf.float32)
    extent = tf.cast(window, tf.float32) / tf.cast(ratio, tf.float32)
    first = tf.cast(tf.floor(start), tf.int32)
    last = tf.minimum(tf.cast(tf.math.ceil(start + extent), tf.int32), scaled_size)
    mode = tf.where(tf.reduce_max(scaled_size) <= canvas, 0,
                    tf.where(tf.reduce_max(last - first) <= canvas, 1, 2))

    def decoded(static_ratio, static_mode):
      def decode():
        if static_mode == 0:  # The whole image: the window where it lies.
          image = tf.io.decode_jpeg(encoded, channels=3, ratio=static_ratio)
          return image, tf.concat([start, [extent, extent]], 0)
        image = tf.image.decode_and_crop_jpeg(
            encoded, tf.concat([first, last - first], 0), channels=3, ratio=static_ratio)
        if static_mode == 1:  # The pixels the window touches.
          return image, tf.concat([start - tf.cast(first, tf.float32), [extent, extent]], 0)
        return whole(resize(image, [crop_size, crop_size], antialias=antialias))
      return decode

    branches = [decoded(r, m) for r in crops.DCT_RATIOS for m in range(3)]
    return tf.switch_case(ratio_index * 3 + mode, branches)

  def other():  # Not a JPEG: decode_and_crop's long way.
    return whole(decode_and_crop(encoded, offset, image_size=image_size, crop_size=crop_size))

  image, where = tf.cond(tf.io.is_jpeg(encoded), from_jpeg, other)
  return tf.ensure_shape(image, [None, None, 3]), tf.ensure_shape(where, [4])


def lighting_noise(uniforms: tf.Tensor, *, std: float, eigenvalues: tf.Tensor,
                   eigenvectors: tf.Tensor) -> tf.Tensor:
  """PCA lighting (Sec. 4.1): [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T with a_i ~ N(0, std), one RGB
  offset on the 0-255 scale per [..., 3] `uniforms` in (0, 1) (the a_i's quantiles).
  `eigenvectors` holds p_i as columns; `eigenvalues` are those of the covariance of RGB values
  scaled to [0, 1]."""
  weights = std * tf.math.ndtri(uniforms) * eigenvalues
  # Summed term by term: elementwise, so the same bits for an example alone or in a batch.
  return 255.0 * sum(weights[..., i, None] * eigenvectors[:, i] for i in range(3))


@dataclasses.dataclass(frozen=True)
class Normalization:
  """What preprocessing subtracts (Sec. 2) and adds (Sec. 4.1), as tensors."""
  mean: tf.Tensor  # [3] (mean RGB) or [image_size, image_size, 3] (mean image), 0-255 scale.
  lighting: dict[str, Any] | None  # lighting_noise's arguments; None: no PCA lighting.

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'Normalization':
    stats = image_stats.for_config(config)
    mean = stats.mean_image if stats.mean_image is not None else stats.mean_rgb
    lighting = None if not config.pca_lighting else {
        'std': config.pca_std,
        'eigenvalues': tf.constant(stats.eigenvalues, tf.float32),
        'eigenvectors': tf.constant(stats.eigenvectors, tf.float32)}
    return cls(tf.constant(mean, tf.float32), lighting)

  def shift(self, draws: tf.Tensor, offset: tf.Tensor, crop_size: int) -> tf.Tensor:
    """Minus the mean under crops at [..., 2] `offset` of the image_size square, plus their
    lighting noise (from `example_draws`): [..., 3], or with a mean image [..., crop, crop, 3]."""
    noise = tf.zeros_like(draws[..., 3:]) if self.lighting is None else \
        lighting_noise(draws[..., 3:], **self.lighting)
    if self.mean.shape.rank == 1:
      return noise - self.mean
    rows = offset[..., :1] + tf.range(crop_size)  # [..., crop] each.
    columns = offset[..., 1:] + tf.range(crop_size)
    batch_rank = offset.shape.rank - 1
    mean = tf.gather(tf.gather(self.mean, rows), columns, axis=batch_rank + 1,
                     batch_dims=batch_rank)
    return noise[..., None, None, :] - mean


def augment(image: tf.Tensor, draws: tf.Tensor, *, how: str, image_size: int, crop_size: int,
            random_crop: bool, random_flip: bool, normalization: Normalization,
            antialias: bool = False, canvas: int | None = None) -> dict[str, tf.Tensor]:
  """A training example (Sec. 4.1) as tensors which `steps.training_images` combines on the
  device, where it fuses into the first layer instead of taking passes over the pixels here:
  'image', a random (or the central) crop of the image_size square, uint8; 'shift', minus the
  mean plus the PCA lighting noise, [3] ([crop, crop, 3] with a mean image); 'flip', whether the
  result is reflected; all three from the example's `draws` (`example_draws`). With a `canvas`
  (`crops.window_canvas`), 'image' is the crop's window as `decode_window` leaves it, for the
  device to resize, and 'window' where the crop lies in it.

  `how` says what `image` is: 'encoded' (a file's bytes), 'decoded' (uint8 of any size) or
  'square' (the uint8 image_size square, as `decode_and_resize` makes it).
  """
  offset = crop_offset(draws, image_size=image_size, crop_size=crop_size,
                       random_crop=random_crop)
  window = tf.constant([0, 0, crop_size, crop_size], tf.float32)  # The crop itself.
  if how == 'encoded' and canvas is not None:
    image, window = decode_window(image, offset, image_size=image_size, crop_size=crop_size,
                                  canvas=canvas, antialias=antialias)
  elif how == 'encoded':
    image = decode_and_crop(image, offset, image_size=image_size, crop_size=crop_size,
                            antialias=antialias)
  else:
    if how == 'decoded':
      image = decode_and_resize(image, image_size, decoded=True)
    image = crop(image, offset, crop_size)
  example = {'image': image, **shift_and_flip(draws, offset, crop_size=crop_size,
                                               random_flip=random_flip,
                                               normalization=normalization)}
  return example if canvas is None else {**example, 'window': window}


def shift_and_flip(draws: tf.Tensor, offset: tf.Tensor, *, crop_size: int, random_flip: bool,
                   normalization: Normalization) -> dict[str, tf.Tensor]:
  """'shift' and 'flip' (`augment`) of examples with [..., DRAWS] `draws` cropped at
  [..., 2] `offset`."""
  return {'shift': normalization.shift(draws, offset, crop_size),
          'flip': tf.constant(random_flip) & (draws[..., 2] < 0.5)}


def whole_at_full_scale(jpeg_sizes: np.ndarray | None, *, image_size: int, crop_size: int,
                        canvas: int) -> bool:
  """Whether `decode_window` would decode every one of these JPEGs ([N, 2] sizes, 0 for other
  files) whole at full scale: each fits the canvas and its window is under twice the crop
  (`window_in_image`; no DCT downscaling). Then `train_epoch` decodes them without its
  per-example choices, whose control flow costs more of the host's time than the decoding."""
  if jpeg_sizes is None or not len(jpeg_sizes) or (jpeg_sizes <= 0).any():
    return False
  _, windows = window_in_image(tf.constant(jpeg_sizes, tf.int32), tf.zeros([2], tf.int32),
                               image_size=image_size, crop_size=crop_size)
  return bool(jpeg_sizes.max() <= canvas and (windows.numpy() < 2 * crop_size).all())


def ten_crops(image: tf.Tensor, crop_size: int) -> tf.Tensor:
  """The four corner crops, the centre crop and their reflections (Sec. 4.1), in that order:
  [10, crop_size, crop_size, channels]; index 4 is the centre crop."""
  last = image.shape[0] - crop_size
  middle = last // 2
  offsets = ((0, 0), (0, last), (last, 0), (last, last), (middle, middle))
  crops = tf.stack([image[y:y + crop_size, x:x + crop_size] for y, x in offsets])
  return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


# --------------------------------------------------------------------------------- pipelines


def _without_undecodable(examples: tf.data.Dataset,
                         config: ml_collections.ConfigDict) -> tf.data.Dataset:
  """Drops the examples whose image failed to decode when `config.bad_images == 'skip'`.

  TensorFlow logs each one; with 'fail' the error reaches the training loop.
  """
  return examples.ignore_errors(log_warning=True) if config.bad_images == 'skip' else examples


def encoded(image: tf.Tensor, split: Split) -> tf.Tensor:
  """An example's 'image' as its file's bytes when it is a path, else as it is: read inside the
  map that decodes it (a map of its own cost ~0.1 of the host's rate, docs/performance.md)."""
  return tf.io.read_file(image) if split.holds == 'path' else image


def _decoded(split: Split, config: ml_collections.ConfigDict) -> tf.data.Dataset:
  return _without_undecodable(split.examples.map(
      lambda x: {'image': decode_and_resize(encoded(x['image'], split), config.image_size,
                                            split.holds == 'decoded'),
                 'label': x['label']},
      num_parallel_calls=tf.data.AUTOTUNE), config)


def steps_per_epoch(source: Source, global_batch_size: int, process_count: int) -> int:
  """Training steps in an epoch: as many on every process, each batch whole."""
  if source.train.process_sharded:  # Every process has at least floor(N / processes) examples.
    return source.train.num_global // process_count // (global_batch_size // process_count)
  return source.train.num_global // global_batch_size


POSITION = 'position'  # A training batch's key: this process's place in the epoch's stream.


def train_epoch(source: Source, config: ml_collections.ConfigDict, *, global_batch_size: int,
                seed: int, epoch: int, num_batches: int, skip_batches: int = 0,
                skip_examples: int | None = None, process_index: int = 0, process_count: int = 1,
                cached: tf.data.Dataset | None = None,
                normalization: 'Normalization | None' = None) -> Iterator[dict[str, np.ndarray]]:
  """This process's rows of batches `skip_batches` to `num_batches` of one epoch: 'image',
  'shift', 'flip' and, resized on the device, 'window' (`augment`, which
  `steps.training_images` combines), 'label', and POSITION: how many examples of this
  process's stream (the epoch's, repeated) precede the next batch, dropped ones included.

  The order and the crops depend only on (seed, epoch), so a run resumes mid-epoch exactly:
  `skip_examples`, the POSITION after the last batch trained, skips what came before it even
  when undecodable images were dropped; without it (an older checkpoint), `skip_batches` whole
  batches' worth of examples are skipped, which is exact when none was dropped.
  `cached` is the decoded training set kept in memory across epochs (`training_cache`);
  `normalization`, made once per run (it reads the stats file), or else from `config`.
  """
  local_batch_size = global_batch_size // process_count
  epoch_seed = seed * 1_000_003 + epoch
  if cached is None and source.train.holds == 'path':
    # An image folder's paths all shuffled in NumPy: a source of (index, example) as the
    # shuffle buffer's below, at a fraction of its per-example cost (docs/performance.md).
    order = np.random.default_rng(epoch_seed).permutation(source.train.num_local)
    examples = tf.data.Dataset.from_tensor_slices((
        np.arange(len(order), dtype=np.int64),
        {'image': np.asarray(source.train.image_files)[order],
         'label': source.train.labels[order]}))
  else:  # TFDS records (not decoded yet) or the cache's decoded images.
    examples = (cached if cached is not None else source.train.examples).shuffle(
        config.shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False).enumerate()
  if source.train.process_sharded or process_count == 1:
    # Refilled from the epoch's start when undecodable images were dropped, so that every
    # process delivers its batches to the end of the epoch; numbered, for POSITION.
    examples = examples.repeat().enumerate()
    examples = examples.skip(skip_batches * local_batch_size if skip_examples is None
                             else skip_examples)
  else:  # This process's rows of each global batch, before decoding.
    first = process_index * local_batch_size
    examples = examples.skip(skip_batches * global_batch_size) \
        .batch(global_batch_size, drop_remainder=True) \
        .map(lambda index, x: rows((index, x), first, local_batch_size)) \
        .unbatch().repeat().enumerate()
  normalization = normalization or Normalization.from_config(config)
  how = 'square' if cached is not None else \
      'decoded' if source.train.holds == 'decoded' else 'encoded'
  canvas = crops.window_canvas(config)
  sizes = dict(image_size=config.image_size, crop_size=config.crop_size)
  # JPEGs that `decode_window` would all decode whole at full scale are decoded so here, with
  # no per-example choice, and their crops, windows and shifts made a batch at a time.
  whole_jpegs = how == 'encoded' and canvas is not None and whole_at_full_scale(
      source.train.jpeg_sizes, canvas=canvas, **sizes)

  def preprocess(ordinal, indexed):
    index, x = indexed
    image = x['image'] if cached is not None else encoded(x['image'], source.train)
    example = {'label': x['label'], POSITION: ordinal + 1}
    if whole_jpegs:
      image = tf.io.decode_jpeg(image, channels=3)
      return {**example, 'image': image, 'size': tf.shape(image)[:2], 'index': index}
    return {**example, **augment(image, example_draws(epoch_seed, index), how=how,
                                 random_crop=config.random_crop,
                                 random_flip=config.random_flip, normalization=normalization,
                                 antialias=config.antialias_training_crops, canvas=canvas,
                                 **sizes)}

  def windows(batch):  # `augment`'s, for whole JPEGs.
    batch = dict(batch)
    draws = example_draws(epoch_seed, batch.pop('index'))
    offset = crop_offset(draws, random_crop=config.random_crop, **sizes)
    top_left, side = window_in_image(batch.pop('size'), offset, **sizes)
    window = tf.cast(tf.concat([top_left, tf.stack([side, side], -1)], -1), tf.float32)
    return {**batch, 'window': window, **shift_and_flip(
        draws, offset, crop_size=config.crop_size, random_flip=config.random_flip,
        normalization=normalization)}

  examples = _without_undecodable(examples.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE),
                                  config)
  if canvas is None:
    batches = examples.batch(local_batch_size, drop_remainder=True)
  else:  # Each window into the top-left of its canvas, zeros around it.
    shapes = {key: spec.shape for key, spec in examples.element_spec.items()}
    batches = examples.padded_batch(local_batch_size, {**shapes, 'image': [canvas, canvas, 3]},
                                    drop_remainder=True)
  batches = batches.map(lambda batch: {
      **(windows(batch) if whole_jpegs else batch), POSITION: tf.reduce_max(batch[POSITION])})
  return batches.take(num_batches - skip_batches).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def rows(tree: Any, start: int, size: int) -> Any:
  """Rows [start, start + size) of every tensor in a nest."""
  return tf.nest.map_structure(lambda t: t[start:start + size], tree)


def training_cache(source: Source, config: ml_collections.ConfigDict) -> tf.data.Dataset | None:
  """The decoded training set, kept in memory after its first pass, when `config.cache`."""
  return _decoded(source.train, config).cache() if config.cache else None


def num_eval_batches(num_global: int, process_count: int, batch_size: int) -> int:
  """The same on every process: enough for the largest process share."""
  return math.ceil(math.ceil(num_global / process_count) / batch_size)


def eval_batches(source: Source, config: ml_collections.ConfigDict, *, batch_size: int,
                 process_count: int = 1,
                 normalization: Normalization | None = None) -> tf.data.Dataset:
  """Every evaluation example once, padded with mask=0 to whole batches: its centre crop
  [crop, crop, 3], or with `config.ten_crop_eval` its ten crops [10, crop, crop, 3] (`ten_crops`),
  minus the mean."""
  normalization = normalization or Normalization.from_config(config)
  examples = _decoded(source.eval, config)
  if config.cache:
    examples = examples.cache()
  centre = crop_offset(None, image_size=config.image_size, crop_size=config.crop_size,
                       random_crop=False)

  def crops(x):
    image = tf.cast(x['image'], tf.float32) - normalization.mean
    image = ten_crops(image, config.crop_size) if config.ten_crop_eval else \
        crop(image, centre, config.crop_size)
    return {'image': image, 'label': x['label'], 'mask': tf.constant(1.0)}

  examples = examples.map(crops, num_parallel_calls=tf.data.AUTOTUNE)
  num_batches = num_eval_batches(source.eval.num_global, process_count, batch_size)
  padding = tf.data.Dataset.from_tensors(
      {'image': tf.zeros(examples.element_spec['image'].shape),
       'label': tf.constant(0, tf.int32), 'mask': tf.constant(0.0)}).repeat()
  # As many batches on every process, however many images failed to decode.
  examples = examples.concatenate(padding).take(num_batches * batch_size)
  return examples.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def decoded_batches(split: Split, config: ml_collections.ConfigDict,
                    batch_size: int) -> Iterator[np.ndarray]:
  """The split's images once, as `decode_and_resize` makes them: uint8 [batch, size, size, 3]."""
  images = _decoded(split, config).map(lambda x: x['image'])
  return images.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def hide_accelerators_from_tensorflow() -> None:
  """tf.data runs on the host; keep TensorFlow off the GPUs and TPUs that JAX uses."""
  tf.config.set_visible_devices([], 'GPU')
  try:
    tf.config.set_visible_devices([], 'TPU')
  except (RuntimeError, ValueError):
    pass
