r"""Images/s of the training input pipeline against a PIL + NumPy baseline doing the same work,
and against the host's limit: reading and decoding the same JPEGs whole, nothing else.

  python benchmarks/input_pipeline.py [--images=DIR] [--num_images=1024] [--quality=90] \
      [--workers=N]

Both turn ImageNet-sized JPEGs into batches of 128 float32 224x224 crops: decode, rescale the
shorter side to 256 and keep the central square, a random crop, a random reflection, minus the
mean RGB, plus PCA lighting noise. Ours is `input_pipeline.train_epoch` on an image folder, as
training runs it, timed alone (the host's part: decoding each crop's window, which the step
resizes, `dataset.resize_on_device`; and, for comparison, with the host resizing it) and with
`training_images` (jitted), the part the step does on the device, run here on the same CPU.
The last column is each rate over the whole-decode one. The baseline is PIL in a process pool
of `--workers` processes (the number of CPU cores by default, tf.data's parallelism), batching in
the main process as a PyTorch DataLoader does. A textbook tf.data decode-resize-crop-flip
pipeline is timed too, as a yardstick of the machine's speed at the time. Without --images,
500x375 JPEGs made from a real photo (`jpegs_from_a_photo`) are written to a temporary folder
first. Each side makes a few batches untimed, then --batches timed ones (going round the folder
again as needed); the table shows the median of --repeats.
"""

import argparse
import glob
import multiprocessing
import os
import sys
import tempfile
import time
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH = 128
WARMUP = 3  # Batches before the clock starts: pools and threads started, files cached.


def jpegs_from_a_photo(folder: str, num_images: int, quality: int, size=(500, 375)) -> None:
  """ImageNet-like test images: random 4:3 views of a real photo (matplotlib's sample
  grace_hopper.jpg), each mirrored or not and colour-shifted, at `size` and JPEG `quality`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  photo = Image.open(os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'))
  photo = np.asarray(photo.convert('RGB'), np.float32)
  rng = np.random.default_rng(0)
  # Two class folders: an image folder of one class is refused (a classifier needs two).
  class_dirs = [os.path.join(folder, 'train', name) for name in ('photo_a', 'photo_b')]
  for class_dir in class_dirs:
    os.makedirs(class_dir, exist_ok=True)
  for i in range(num_images):
    width = int(rng.integers(photo.shape[1] * 3 // 4, photo.shape[1] + 1))
    height = width * 3 // 4
    top = rng.integers(0, photo.shape[0] - height + 1)
    left = rng.integers(0, photo.shape[1] - width + 1)
    view = photo[top:top + height, left:left + width] * rng.uniform(0.7, 1.3, 3)
    view = view[:, ::-1] if rng.random() < 0.5 else view
    image = Image.fromarray(np.clip(view, 0, 255).astype(np.uint8)).resize(size, Image.BICUBIC)
    image.save(os.path.join(class_dirs[i % 2], f'{i:05d}.jpg'), quality=quality)


def dataset_config(folder: str):
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config().dataset
  # Only training batches are timed: the training split stands in for the evaluation one, so
  # that any folder with a train/ split will do.
  config.update(dict(name='image_folder', data_dir=folder, image_size=256, crop_size=224,
                     random_crop=True, random_flip=True, pca_lighting=True, cache=False,
                     eval_split='train'))
  return config


def median_rate(make_batch: Callable[[int], Callable[[], np.ndarray]], num_batches: int,
                repeats: int) -> float:
  """Images/s, median over `repeats`: make_batch(repeat) gives a function returning the next
  batch of images; WARMUP batches go untimed, then num_batches are timed."""
  rates = []
  for repeat in range(repeats):
    next_batch = make_batch(repeat)
    for _ in range(WARMUP):
      next_batch()
    start = time.perf_counter()
    for _ in range(num_batches):
      assert len(next_batch()) == BATCH
    rates.append(num_batches * BATCH / (time.perf_counter() - start))
  return float(np.median(rates))


def time_ours(folder: str, num_batches: int, repeats: int, with_step_part: bool,
              resize_on_device: bool = True, window_canvas: int = 0) -> float:
  """tf.data's batches; `with_step_part`, also the step's `training_images` (resizing each
  window, adding the mean and the noise, reflecting), which runs on the accelerator in training
  but here on the same CPU."""
  import functools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from alexnet_jax import input_pipeline, steps  # pylint: disable=g-import-not-at-top
  config = dataset_config(folder)
  config.resize_on_device = resize_on_device
  config.window_canvas = window_canvas if resize_on_device else 0
  source = input_pipeline.create_source(config)
  training_images = jax.jit(functools.partial(steps.dataset_training_images, dataset=config))

  def make_batch(repeat):
    # Past the end of the folder it starts again (train_epoch repeats).
    batches = input_pipeline.train_epoch(source, config, global_batch_size=BATCH, seed=0,
                                         epoch=repeat, num_batches=num_batches + WARMUP)
    if with_step_part:
      return lambda: training_images(next(batches)).block_until_ready()
    return lambda: next(batches)['image']

  return median_rate(make_batch, num_batches, repeats)


def time_whole_decode(folder: str, num_batches: int, repeats: int) -> float:
  """The host's limit: read and decode each JPEG whole (`tf.io.decode_jpeg`), nothing else."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  paths = tf.io.gfile.glob(os.path.join(folder, 'train', '*', '*'))
  decoded = tf.data.Dataset.from_tensor_slices(paths).repeat().map(
      lambda path: tf.shape(tf.io.decode_jpeg(tf.io.read_file(path), channels=3)),
      num_parallel_calls=tf.data.AUTOTUNE)
  batches = iter(decoded.batch(BATCH).prefetch(tf.data.AUTOTUNE))
  return median_rate(lambda _: lambda: next(batches), num_batches, repeats)


def time_plain_tf_data(folder: str, num_batches: int, repeats: int) -> float:
  """The textbook tf.data pipeline, as a yardstick of this machine's speed: decode the whole
  JPEG, resize the shorter side to 256, random 224 crop, random reflection, batch."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def example(path):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    image = tf.image.resize(image, tf.cast(size * 256 / tf.reduce_min(size), tf.int32))
    return tf.image.random_flip_left_right(tf.image.random_crop(image, [224, 224, 3]))

  paths = tf.io.gfile.glob(os.path.join(folder, 'train', '*', '*'))
  batches = iter(tf.data.Dataset.from_tensor_slices(paths).repeat().map(
      example, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(tf.data.AUTOTUNE))
  return median_rate(lambda _: lambda: next(batches), num_batches, repeats)


def pil_example(args) -> np.ndarray:
  """What the training pipeline does to one image, with PIL and NumPy."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path, seed, mean_rgb, pca_std, eigenvalues, eigenvectors = args
  rng = np.random.default_rng(seed)
  with Image.open(path) as image:
    image = image.convert('RGB')
    scale = 256 / min(image.size)
    new_size = [max(256, int(np.ceil(s * scale))) for s in image.size]
    image = image.resize(new_size, Image.BILINEAR)  # PIL antialiases when shrinking.
    left, top = (new_size[0] - 256) // 2, (new_size[1] - 256) // 2
    square = np.asarray(image, np.uint8)[top:top + 256, left:left + 256]
  y, x = rng.integers(0, 256 - 224 + 1, 2)
  crop = square[y:y + 224, x:x + 224]
  if rng.random() < 0.5:
    crop = crop[:, ::-1]
  noise = 255.0 * eigenvectors @ (rng.normal(0, pca_std, 3) * eigenvalues)
  return crop.astype(np.float32) - mean_rgb + noise.astype(np.float32)


def time_pil(folder: str, num_batches: int, repeats: int, workers: int) -> float:
  config = dataset_config(folder)
  paths = sorted(glob.glob(os.path.join(folder, 'train', '*', '*')))
  constants = (np.asarray(config.mean_rgb, np.float32), config.pca_std,
               np.asarray(config.pca_eigenvalues), np.asarray(config.pca_eigenvectors))
  with multiprocessing.get_context('fork').Pool(workers) as pool:

    def make_batch(repeat):
      order = np.random.default_rng(repeat).permutation(len(paths))
      tasks = [(paths[order[i % len(paths)]], repeat * 10**6 + i, *constants)
               for i in range((num_batches + WARMUP) * BATCH)]
      examples = pool.imap(pil_example, tasks, chunksize=8)
      return lambda: np.stack([next(examples) for _ in range(BATCH)])

    return median_rate(make_batch, num_batches, repeats)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--images', help='An image folder (DIR/train/CLASS/*.jpg) to read instead.')
  parser.add_argument('--num_images', type=int, default=1024, help='JPEGs to write.')
  parser.add_argument('--quality', type=int, default=90, help='Their JPEG quality.')
  parser.add_argument('--workers', type=int, default=os.cpu_count())
  parser.add_argument('--batches', type=int, default=40, help='Timed batches of 128.')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--window_canvas', type=int, default=0,
                      help='config.dataset.window_canvas (0: 2 x 224 - 1).')
  args = parser.parse_args()
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  with tempfile.TemporaryDirectory() as tmp:
    folder = args.images
    if folder is None:
      folder = tmp
      jpegs_from_a_photo(folder, args.num_images, args.quality)
    pil = time_pil(folder, args.batches, args.repeats, args.workers)
    whole = time_whole_decode(folder, args.batches, args.repeats)
    ours = time_ours(folder, args.batches, args.repeats, with_step_part=False,
                     window_canvas=args.window_canvas)
    host_resizing = time_ours(folder, args.batches, args.repeats, with_step_part=False,
                              resize_on_device=False)
    ours_and_step = time_ours(folder, args.batches, args.repeats, with_step_part=True,
                              window_canvas=args.window_canvas)
    plain = time_plain_tf_data(folder, args.batches, args.repeats)
  source = args.images or f'{args.num_images:,} 500x375 JPEGs at quality {args.quality}'
  canvas = args.window_canvas or 2 * 224 - 1
  print(f'| 224x224 crops of {source}, lighting on, {os.cpu_count()} cores, window canvas '
        f'{canvas} | images/s | / PIL | / whole decode |')
  print('|---|---|---|---|')
  rows = (
      ('limit: read + decode whole JPEGs (`tf.io.decode_jpeg`), nothing else', whole),
      ('alexnet_jax: tf.data, the host\'s part (decoding; the step resizes)', ours),
      ('alexnet_jax: tf.data, the host\'s part resizing too (`resize_on_device=False`)',
       host_resizing),
      ('alexnet_jax: tf.data + the step\'s part (`training_images`) on this CPU too',
       ours_and_step),
      (f'PIL + NumPy, {args.workers} processes', pil),
      ('yardstick: plain tf.data decode-resize-crop-flip, no lighting or mean', plain))
  for name, rate in rows:
    print(f'| {name} | {rate:.0f} | {rate / pil:.2f} | {rate / whole:.2f} |')


if __name__ == '__main__':
  main()
