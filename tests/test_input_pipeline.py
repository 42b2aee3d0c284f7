"""Sources, preprocessing, deterministic resumable order, and evaluation padding."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf

from alexnet_jax import crops, image_stats, input_pipeline, steps
from alexnet_jax.errors import UserInputError
from configs import default
from tests.helpers import write_image_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dataset_config(**overrides):
  config = default.get_config().dataset
  config.update(dict(name='image_folder', eval_split='test', image_size=8, crop_size=6))
  config.update(overrides)
  return config


def test_image_folder_source(tmp_path):
  root = write_image_folder(str(tmp_path))
  source = input_pipeline.create_source(_dataset_config(data_dir=root))
  assert source.num_classes == 3
  assert (source.train.num_global, source.eval.num_global) == (15, 15)
  # Two processes split the evaluation files between them, every file once; both list all
  # training files, to read their rows of each global batch.
  halves = [input_pipeline.create_source(_dataset_config(data_dir=root), i, 2) for i in (0, 1)]
  assert [h.eval.num_local for h in halves] == [8, 7]
  assert [h.train.num_local for h in halves] == [15, 15]


def _empty_class_folder(root):
  write_image_folder(root)
  os.makedirs(os.path.join(root, 'test', 'bird'))
  os.makedirs(os.path.join(root, 'train', 'bird'))
  return root


def _classes_differ(root):
  write_image_folder(root)
  os.rename(os.path.join(root, 'test', 'dog'), os.path.join(root, 'test', 'horse'))
  return root


def _a_file(root):
  path = os.path.join(root, 'cifar10.tar.gz')
  open(path, 'w').close()
  return path


@pytest.mark.parametrize('make_bad,message', [
    (lambda root: os.path.join(root, 'missing'), 'does not exist'),
    (_a_file, r"cifar10.tar.gz' is a file, not a folder"),  # Not "does not exist".
    (lambda root: write_image_folder(root, classes=('cat',)),  # Trained to loss 0 silently.
     r"train has 1 class folder \['cat'\]; a classifier needs two or more"),
    (lambda root: write_image_folder(root, per_class=0), 'has no images'),
    (lambda root: root, "no 'train' split folder"),
    (_empty_class_folder, r'class folder .*/bird has no images'),
    (_classes_differ, r"different classes: only in 'train': \['dog'\], only in 'test': "
                      r"\['horse'\]"),
])
def test_image_folder_errors(tmp_path, make_bad, message):
  with pytest.raises(UserInputError, match=message):
    input_pipeline.create_source(_dataset_config(data_dir=make_bad(str(tmp_path))))


def test_a_hidden_folder_in_a_split_is_no_class(tmp_path):
  root = write_image_folder(str(tmp_path))
  os.makedirs(os.path.join(root, 'train', '.ipynb_checkpoints'))  # Jupyter leaves these.
  source = input_pipeline.create_source(_dataset_config(data_dir=root))
  assert source.class_names == ('cat', 'dog', 'ship') and source.num_classes == 3


def test_decode_and_resize_keeps_the_central_square():
  image = np.zeros((300, 400, 3), np.uint8)
  image[:, 200:] = 255  # Right half white.
  out = input_pipeline.decode_and_resize(tf.io.encode_png(image), 256, decoded=False).numpy()
  assert out.shape == (256, 256, 3)
  # Shorter side 300 -> 256, width 400 -> 342: the centre square keeps 128 dark columns.
  assert out[:, :120].max() == 0 and out[:, 136:].min() == 255
  # An image already at the size passes through unchanged.
  small = np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype(np.uint8)
  np.testing.assert_array_equal(input_pipeline.decode_and_resize(small, 32, True), small)


def images_of(batch):
  return steps.training_images(batch)


def test_training_order_is_seeded_and_resumable():
  config = _dataset_config(name='synthetic', image_size=10, crop_size=8,
                           synthetic_train_examples=40)
  source = input_pipeline.create_source(config)
  epoch = lambda **kw: list(input_pipeline.train_epoch(source, config, global_batch_size=8,
                                                       seed=3, epoch=1, num_batches=5, **kw))
  full, again, resumed = epoch(), epoch(), epoch(skip_batches=2)
  assert len(full) == 5
  for a, b in zip(full, again):
    np.testing.assert_array_equal(images_of(a), images_of(b))
  for a, b in zip(full[2:], resumed):
    np.testing.assert_array_equal(images_of(a), images_of(b))
    np.testing.assert_array_equal(a['label'], b['label'])
  other = list(input_pipeline.train_epoch(source, config, global_batch_size=8, seed=3, epoch=2,
                                     num_batches=5))
  assert not np.array_equal(full[0]['label'], other[0]['label'])
  # The cached path gives the same batches as the uncached one.
  cache = input_pipeline.training_cache(source, config)
  cached = list(input_pipeline.train_epoch(source, config, global_batch_size=8, seed=3, epoch=1,
                                           num_batches=5, cached=cache))
  for a, b in zip(full, cached):
    np.testing.assert_array_equal(images_of(a), images_of(b))
  # Two processes read the two halves of the same global batches.
  halves = [list(input_pipeline.train_epoch(source, config, global_batch_size=8, seed=3, epoch=1,
                                            num_batches=5, process_index=i, process_count=2))
            for i in (0, 1)]
  for whole, first, second in zip(full, *halves):
    np.testing.assert_array_equal(images_of(whole),
                                  np.concatenate([images_of(first), images_of(second)]))


def test_eval_batches_pad_and_mask_every_example_once():
  config = _dataset_config(name='synthetic', image_size=8, crop_size=8,
                           synthetic_eval_examples=21, ten_crop_eval=False)
  source = input_pipeline.create_source(config)
  batches = list(input_pipeline.eval_batches(source, config, batch_size=8).as_numpy_iterator())
  assert [len(b['label']) for b in batches] == [8, 8, 8]
  assert sum(b['mask'].sum() for b in batches) == 21
  images, labels = input_pipeline.synthetic_images(21, 10, 8, seed=1)
  got = np.concatenate([b['image'] for b in batches])[:21]
  np.testing.assert_allclose(got, images.astype(np.float32) - np.asarray(config.mean_rgb),
                             atol=1e-4)
  # Over three processes each process runs the same number of batches.
  shares = [input_pipeline.create_source(config, i, 3) for i in range(3)]
  counts = [len(list(input_pipeline.eval_batches(s, config, batch_size=4, process_count=3)))
            for s in shares]
  assert counts == [2, 2, 2]


def _plant_bad_files(root):
  """A text file and an empty file named like images, and a JPEG cut short."""
  with open(os.path.join(root, 'train', 'cat', 'notes.jpg'), 'w') as f:
    f.write('not an image')
  open(os.path.join(root, 'train', 'dog', 'empty.png'), 'w').close()
  whole = open(os.path.join(root, 'train', 'ship', '0000.jpg'), 'rb').read()
  with open(os.path.join(root, 'train', 'ship', 'cut.jpg'), 'wb') as f:
    f.write(whole[:40])


def test_files_that_are_not_images_are_skipped_or_refused(tmp_path, caplog):
  root = write_image_folder(str(tmp_path))
  _plant_bad_files(root)
  with pytest.raises(UserInputError, match=r'train/cat/notes.jpg is not an image .* nor are 1 '
                                           r'other files'):
    input_pipeline.create_source(_dataset_config(data_dir=root, bad_images='fail'))
  config = _dataset_config(data_dir=root, bad_images='skip')
  with caplog.at_level('WARNING'):
    source = input_pipeline.create_source(config)
  assert 'Skipping 2 files' in caplog.text
  assert source.train.num_global == 16  # 15 images and the JPEG cut short, which passes the check.
  # The cut JPEG fails to decode and is dropped; the epoch is refilled to whole batches.
  batches = list(input_pipeline.train_epoch(source, config, global_batch_size=4, seed=0, epoch=0,
                                            num_batches=4))
  assert [len(b['label']) for b in batches] == [4, 4, 4, 4]
  cached = list(input_pipeline.train_epoch(
      source, config, global_batch_size=4, seed=0, epoch=0, num_batches=4,
      cached=input_pipeline.training_cache(source, config)))
  assert [len(b['label']) for b in cached] == [4, 4, 4, 4]


def test_lighting_noise_follows_the_eigenvectors_with_the_configured_spread():
  config = default.get_config().dataset
  eigenvalues = np.asarray(config.pca_eigenvalues, np.float32)
  eigenvectors = np.asarray(config.pca_eigenvectors, np.float32)
  lighting = dict(std=config.pca_std, eigenvalues=eigenvalues, eigenvectors=eigenvectors)
  draws = input_pipeline.example_draws(7, tf.range(2000, dtype=tf.int64))
  noise = input_pipeline.lighting_noise(draws[:, 3:], **lighting).numpy()
  # Coordinates in the eigenvector basis are a_i * l_i * 255, with a_i ~ N(0, pca_std).
  alphas = np.linalg.solve(eigenvectors, noise.T / 255.0).T / eigenvalues
  np.testing.assert_allclose(alphas.std(axis=0), config.pca_std, rtol=0.1)
  np.testing.assert_allclose(alphas.mean(axis=0), 0.0, atol=0.01)
  # The RGB covariance of the noise: 255^2 P diag((std l_i)^2) P^T, P's columns the
  # eigenvectors; not the matrix that taking its rows as the eigenvectors would give.
  variances = np.diag((config.pca_std * eigenvalues) ** 2)
  want = 255.0**2 * eigenvectors @ variances @ eigenvectors.T
  rows_taken = 255.0**2 * eigenvectors.T @ variances @ eigenvectors
  tolerance = dict(rtol=0.15, atol=0.05 * np.abs(want).max())
  np.testing.assert_allclose(np.cov(noise.T), want, **tolerance)
  assert not np.allclose(np.cov(noise.T), rows_taken, **tolerance)
  # Drawn once per image and presentation, alone or with its batch: the same epoch seed and
  # example give the same noise, another seed not.
  noise_of = lambda epoch_seed: input_pipeline.lighting_noise(input_pipeline.example_draws(
      epoch_seed, tf.constant(3, tf.int64))[3:], **lighting).numpy()
  np.testing.assert_array_equal(noise_of(7), noise[3])
  assert not np.allclose(noise_of(8), noise[3])


def test_ten_crops_are_the_corners_the_centre_and_their_mirrors():
  image = np.arange(6 * 6 * 3, dtype=np.float32).reshape(6, 6, 3)
  crops = input_pipeline.ten_crops(tf.constant(image), 4).numpy()
  corners = [image[:4, :4], image[:4, 2:], image[2:, :4], image[2:, 2:], image[1:5, 1:5]]
  np.testing.assert_array_equal(crops, np.stack(corners + [c[:, ::-1] for c in corners]))


def _batch(config, **kw):
  source = input_pipeline.create_source(config, with_eval=False)  # Training batches only.
  return next(input_pipeline.train_epoch(source, config, global_batch_size=16, seed=0, epoch=0,
                                         num_batches=1, **kw))


def test_a_reflected_example_is_the_mirror_image():
  config = _dataset_config(name='synthetic', image_size=10, crop_size=8, pca_lighting=True)
  batch = _batch(config)
  assert 0 < batch['flip'].sum() < 16  # Each example is reflected with probability 1/2.
  unflipped = steps.training_images({**batch, 'flip': np.zeros(16, bool)})
  flipped = steps.training_images({**batch, 'flip': np.ones(16, bool)})
  np.testing.assert_array_equal(flipped, unflipped[:, :, ::-1])
  np.testing.assert_array_equal(steps.training_images(batch),
                                np.where(batch['flip'][:, None, None, None], flipped, unflipped))
  # The 2012 code's scaling after the noise multiplies the whole image.
  np.testing.assert_allclose(steps.training_images(batch, 1 / 1.1),
                             steps.training_images(batch) / 1.1, rtol=1e-6)
  # Without random_flip nothing is reflected.
  assert not _batch(_dataset_config(name='synthetic', image_size=10, crop_size=8,
                                    random_flip=False))['flip'].any()


def test_lighting_noise_lies_in_the_span_of_the_eigenvectors():
  eigenvectors = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
  noise = input_pipeline.lighting_noise(
      input_pipeline.example_draws(7, tf.range(200, dtype=tf.int64))[:, 3:], std=0.1,
      eigenvalues=np.float32([0.2, 0.05, 0.0]), eigenvectors=eigenvectors.astype(np.float32))
  noise = noise.numpy()
  # The third eigenvalue is 0: the noise has no component along the third eigenvector.
  np.testing.assert_allclose(noise @ eigenvectors[:, 2], 0, atol=1e-4)
  assert np.abs(noise @ eigenvectors[:, 1]).max() > 0.1


def test_a_jpeg_training_crop_equals_rescaling_then_cropping(tmp_path):
  rng = np.random.default_rng(0)
  smooth = np.kron(rng.integers(0, 255, (8, 10, 3)), np.ones((20, 20, 1))).astype(np.uint8)
  for encode in (tf.io.encode_jpeg, tf.io.encode_png):
    encoded = encode(smooth)  # 160x200, rescaled to 64 then cropped to 48.
    for offset in ([0, 0], [5, 16], [16, 16]):
      offset = tf.constant(offset)
      want = input_pipeline.crop(input_pipeline.decode_and_resize(encoded, 64, decoded=False),
                                 offset, 48).numpy().astype(float)
      got = input_pipeline.decode_and_crop(encoded, offset, image_size=64, crop_size=48,
                                           antialias=True).numpy().astype(float)
      if encode is tf.io.encode_png:  # Decoded whole, the same way.
        np.testing.assert_array_equal(got, want)
      else:  # Only the window is decoded; it differs by rounding to whole source pixels.
        difference = np.abs(got - want)
        assert np.median(difference) == 0 and difference.mean() < 3, difference.mean()


def _photo_jpeg(width, height):
  """A real photo (matplotlib's grace_hopper.jpg) at width x height, as a JPEG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  photo = tf.io.decode_jpeg(tf.io.read_file(os.path.join(
      matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')), channels=3)
  return tf.io.encode_jpeg(input_pipeline.resize(photo, [height, width]), quality=90)


def _device_crop(encoded, offset, *, image_size, crop_size, canvas, antialias):
  """The crop as the step makes it from what `decode_window` sends."""
  pixels, window = input_pipeline.decode_window(encoded, tf.constant(offset),
                                                image_size=image_size, crop_size=crop_size,
                                                canvas=canvas, antialias=antialias)
  board = np.zeros((1, canvas, canvas, 3), np.uint8)
  board[0, :pixels.shape[0], :pixels.shape[1]] = pixels.numpy()
  return crops.resize_windows(board, window.numpy()[None], crop_size, antialias)[0]


@pytest.mark.parametrize('antialias', [False, True])
def test_resizing_windows_on_the_device_is_tensorflows_resize(antialias):
  """Against `tf.image.resize` of each window (rounding aside, the host's resize), shrinking
  and enlarging; a window of the crop's size comes back bit for bit; NumPy and JAX agree."""
  rng = np.random.default_rng(0)
  canvas = rng.integers(0, 256, (4, 47, 47, 3)).astype(np.uint8)
  sides = [(47, 40), (24, 24), (13, 30), (36, 24)]  # Shrink, keep, enlarge, mixed.
  window = np.array([[0, 0, h, w] for h, w in sides], np.float32)
  got = crops.resize_windows(canvas, window, 24, antialias)
  for b, (h, w) in enumerate(sides):
    want = tf.image.resize(canvas[b, :h, :w], [24, 24], antialias=antialias).numpy()
    np.testing.assert_allclose(got[b], want, atol=2e-3)
  np.testing.assert_array_equal(got[1], canvas[1, :24, :24])
  on_device = jax.jit(crops.resize_windows, static_argnums=(2, 3))(canvas, window, 24, antialias)
  np.testing.assert_allclose(on_device, got, atol=2e-2)  # Float rounding, in 0-255 units.


def test_device_resized_crops_equal_the_hosts():
  """A window decoded at full scale, whole or cropped, gives the host's crop (`decode_and_crop`)
  to its uint8 rounding (0.5) away from the window's edges, where decoding a cropped JPEG
  upsamples the chroma without its neighbours (up to a few levels). A window DCT-downscaled 2x
  differs from the host's antialiased resize by the filter (the DCT's against a triangle): on
  average under 1.5 levels, where a crop one pixel off differs by several times that."""
  for width, height, canvas in ((224, 224, 224), (500, 375, 447)):  # Whole; cropped.
    encoded = _photo_jpeg(width, height)
    for offset in ([0, 0], [13, 30], [32, 32]):
      host = input_pipeline.decode_and_crop(encoded, tf.constant(offset), image_size=256,
                                            crop_size=224).numpy()
      device = _device_crop(encoded, offset, image_size=256, crop_size=224, canvas=canvas,
                            antialias=False)
      np.testing.assert_allclose(device[3:-3, 3:-3], host[3:-3, 3:-3], atol=0.5 + 2e-3)
      assert np.abs(device - host).mean() < 0.5
  encoded = _photo_jpeg(1200, 900)  # Windows of 788 pixels: decoded at 1/2 (394).
  for offset in ([0, 0], [13, 30], [5, 26]):
    host = input_pipeline.decode_and_crop(encoded, tf.constant(offset), image_size=256,
                                          crop_size=224, antialias=True).numpy().astype(float)
    device = _device_crop(encoded, offset, image_size=256, crop_size=224, canvas=447,
                          antialias=True)
    difference = np.abs(device - host)[8:-8, 8:-8].mean()
    shifted = np.abs(device[9:-7, 8:-8] - host[8:-8, 8:-8]).mean()
    assert difference < 1.5 and shifted > 3 * difference, (difference, shifted)


def test_training_batches_with_and_without_the_device_resize(tmp_path):
  """The same epoch either way: windows on a canvas whose resize gives the host's crops."""
  root = write_image_folder(str(tmp_path), size=(40, 30))
  config = _dataset_config(data_dir=root, image_size=32, crop_size=24, pca_lighting=False,
                           resize_on_device=True)
  source = input_pipeline.create_source(config)
  epoch = lambda config: next(input_pipeline.train_epoch(
      source, config, global_batch_size=8, seed=0, epoch=0, num_batches=1))
  windows = epoch(config)
  assert windows['image'].shape == (8, 47, 47, 3) and windows['window'].shape == (8, 4)
  config.resize_on_device = False
  host = epoch(config)
  assert host['image'].shape == (8, 24, 24, 3) and 'window' not in host
  np.testing.assert_array_equal(windows['flip'], host['flip'])
  device_images = steps.dataset_training_images(windows, config)
  host_images = steps.training_images(host)
  assert np.abs(device_images - host_images)[:, 3:-3, 3:-3].max() <= 0.5 + 2e-3
  assert np.abs(device_images - host_images).mean() < 0.5


def test_jpeg_sizes_are_read_from_the_headers(tmp_path):
  """probe_image_file reads a JPEG's size as the decoder does, past extra segments (XMP) and in
  a progressive file; other formats and non-images have none."""
  image = np.random.default_rng(0).integers(0, 255, (37, 53, 3)).astype(np.uint8)
  files = {'plain.jpg': tf.io.encode_jpeg(image),
           'progressive.jpg': tf.io.encode_jpeg(image, progressive=True, xmp_metadata='<x/>' * 99),
           'image.png': tf.io.encode_png(image), 'text.jpg': b'not an image'}
  for name, contents in files.items():
    tf.io.write_file(str(tmp_path / name), contents)
  probe = lambda name: input_pipeline.probe_image_file(str(tmp_path / name))
  assert probe('plain.jpg') == probe('progressive.jpg') == (True, (37, 53))
  assert tuple(tf.image.extract_jpeg_shape(files['progressive.jpg'])[:2].numpy()) == (37, 53)
  assert probe('image.png') == (True, (0, 0)) and probe('text.jpg') == (False, (0, 0))
  whole = lambda sizes, canvas=47: input_pipeline.whole_at_full_scale(
      np.asarray(sizes), image_size=32, crop_size=24, canvas=canvas)
  assert whole([[40, 30], [47, 20]]) and not whole([[40, 30], [0, 0]])  # A PNG among them.
  assert not whole([[48, 30]]) and whole([[48, 30]], canvas=48)  # Larger than the canvas.
  assert not whole([[64, 64]], canvas=99)  # Its window (48) is twice the crop: DCT-scaled.


def test_whole_jpegs_give_the_batches_of_the_per_example_path(tmp_path, monkeypatch):
  """When every JPEG fits the canvas whole, train_epoch decodes them with no per-example choice
  and makes their windows, shifts and flips a batch at a time: the batches `decode_window` and
  `augment` make one example at a time, bit for bit but the mean image's shifts (to a float32
  rounding: TensorFlow's graph rewrites differ between the two maps)."""
  root = write_image_folder(str(tmp_path), size=(40, 30))
  config = _dataset_config(data_dir=root, image_size=32, crop_size=24, pca_lighting=True,
                           resize_on_device=True)
  source = input_pipeline.create_source(config)
  stats = image_stats.compute(input_pipeline.decoded_batches(source.train, config, 8))
  normalization = lambda mean_image: input_pipeline.Normalization(
      tf.constant(stats.mean_image if mean_image else stats.mean_rgb, tf.float32),
      {'std': 0.1, 'eigenvalues': tf.constant(stats.eigenvalues, tf.float32),
       'eigenvectors': tf.constant(stats.eigenvectors, tf.float32)})
  epoch = lambda mean_image: list(input_pipeline.train_epoch(
      source, config, global_batch_size=8, seed=3, epoch=1, num_batches=2,
      normalization=normalization(mean_image)))
  for mean_image in (False, True):
    batch_at_a_time = epoch(mean_image)
    with monkeypatch.context() as patch:
      patch.setattr(input_pipeline, 'whole_at_full_scale', lambda *a, **k: False)
      one_at_a_time = epoch(mean_image)
    for got, want in zip(batch_at_a_time, one_at_a_time):
      assert got.keys() == want.keys()
      for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6 if key == 'shift' else 0,
                                   err_msg=key)
      if not mean_image:
        np.testing.assert_array_equal(got['shift'], want['shift'])
    assert batch_at_a_time[0]['shift'].shape == ((8, 24, 24, 3) if mean_image else (8, 3))
    assert 0 < batch_at_a_time[0]['flip'].sum() + batch_at_a_time[1]['flip'].sum() < 16


def test_dataset_stats_command_and_the_mean_image(tmp_path):
  # A training split only: the statistics read nothing else (no evaluation split is needed).
  root = write_image_folder(str(tmp_path / 'data'), splits=('train',), size=(12, 10))
  output = str(tmp_path / 'stats.json')
  result = subprocess.run(
      [sys.executable, '-m', 'alexnet_jax.write_image_stats', '--config=configs/default.py',
       '--config.dataset.name=image_folder', f'--config.dataset.data_dir={root}',
       '--config.dataset.image_size=8', f'--output={output}'], cwd=REPO, capture_output=True,
      text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  config = _dataset_config(data_dir=root, stats_file=output, mean='image', random_crop=False,
                           random_flip=False, pca_lighting=False)
  squares = np.concatenate(list(input_pipeline.decoded_batches(
      input_pipeline.create_source(config, with_eval=False).train, config, batch_size=4)))
  assert squares.shape == (15, 8, 8, 3)
  pixels = squares.reshape(-1, 3).astype(np.float64) / 255
  eigenvalues, eigenvectors = np.linalg.eigh(np.cov(pixels, rowvar=False, bias=True))
  stats = image_stats.read(output, with_mean_image=True)
  np.testing.assert_allclose(stats.mean_image, squares.mean(0), rtol=1e-5)
  np.testing.assert_allclose(stats.mean_rgb, squares.reshape(-1, 3).mean(0), rtol=1e-6)
  np.testing.assert_allclose(stats.eigenvalues, eigenvalues[::-1], rtol=1e-6)
  for i in range(3):  # Each eigenvector up to its sign.
    assert abs(abs(stats.eigenvectors[:, i] @ eigenvectors[:, 2 - i]) - 1) < 1e-6
  # Training subtracts the mean image under the (central) crop.
  batch = _batch(config)
  np.testing.assert_allclose(batch['shift'], -np.broadcast_to(stats.mean_image[1:7, 1:7],
                                                              (16, 6, 6, 3)), rtol=1e-6)
  with pytest.raises(UserInputError, match='image_size=16'):
    image_stats.for_config(_dataset_config(stats_file=output, mean='image', image_size=16))
  with pytest.raises(UserInputError, match='needs the mean image'):
    image_stats.for_config(_dataset_config(mean='image'))
