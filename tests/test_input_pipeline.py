"""Sources, preprocessing, deterministic resumable order, and evaluation padding."""

import os

import numpy as np
import pytest
import tensorflow as tf

from alexnet_jax import input_pipeline
from alexnet_jax.errors import UserInputError
from configs import default


def write_image_folder(root, splits=('train', 'test'), classes=('cat', 'dog', 'ship'),
                       per_class=5, size=(12, 10)):
  """A tiny split/label/image.jpg tree; images of class i are bright in channel i."""
  rng = np.random.default_rng(0)
  for split in splits:
    for i, name in enumerate(classes):
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      for j in range(per_class):
        image = rng.integers(0, 60, (*size, 3)).astype(np.uint8)
        image[..., i % 3] += 180
        tf.io.write_file(os.path.join(root, split, name, f'{j:04d}.jpg'),
                         tf.io.encode_jpeg(image))
  return root


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


@pytest.mark.parametrize('make_bad,message', [
    (lambda root: os.path.join(root, 'missing'), 'does not exist'),
    (lambda root: write_image_folder(root, per_class=0), 'has no images'),
    (lambda root: root, "no 'train' split folder"),
    (_empty_class_folder, r'class folder .*/bird has no images'),
    (_classes_differ, r"different classes: only in 'train': \['dog'\], only in 'test': "
                      r"\['horse'\]"),
])
def test_image_folder_errors(tmp_path, make_bad, message):
  with pytest.raises(UserInputError, match=message):
    input_pipeline.create_source(_dataset_config(data_dir=make_bad(str(tmp_path))))


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


def test_training_order_is_seeded_and_resumable():
  config = _dataset_config(name='synthetic', image_size=10, crop_size=8,
                           synthetic_train_examples=40)
  source = input_pipeline.create_source(config)
  epoch = lambda **kw: list(input_pipeline.train_epoch(source, config, global_batch_size=8,
                                                       seed=3, epoch=1, num_batches=5, **kw))
  full, again, resumed = epoch(), epoch(), epoch(skip_batches=2)
  assert len(full) == 5
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a['image'], b['image'])
  for a, b in zip(full[2:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  other = list(input_pipeline.train_epoch(source, config, global_batch_size=8, seed=3, epoch=2,
                                     num_batches=5))
  assert not np.array_equal(full[0]['label'], other[0]['label'])
  # The cached path gives the same batches as the uncached one.
  cache = input_pipeline.training_cache(source, config)
  cached = list(input_pipeline.train_epoch(source, config, global_batch_size=8, seed=3, epoch=1,
                                           num_batches=5, cached=cache))
  for a, b in zip(full, cached):
    np.testing.assert_array_equal(a['image'], b['image'])
  # Two processes read the two halves of the same global batches.
  halves = [list(input_pipeline.train_epoch(source, config, global_batch_size=8, seed=3, epoch=1,
                                            num_batches=5, process_index=i, process_count=2))
            for i in (0, 1)]
  for whole, first, second in zip(full, *halves):
    np.testing.assert_array_equal(whole['image'],
                                  np.concatenate([first['image'], second['image']]))


def test_eval_batches_pad_and_mask_every_example_once():
  config = _dataset_config(name='synthetic', image_size=8, crop_size=8,
                           synthetic_eval_examples=21)
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
  noise = np.stack([input_pipeline.lighting_noise(
      tf.constant([7, i], tf.int64), std=config.pca_std, eigenvalues=eigenvalues,
      eigenvectors=eigenvectors).numpy() for i in range(2000)])
  # Coordinates in the eigenvector basis are a_i * l_i * 255, with a_i ~ N(0, pca_std).
  alphas = np.linalg.solve(eigenvectors, noise.T / 255.0).T / eigenvalues
  np.testing.assert_allclose(alphas.std(axis=0), config.pca_std, rtol=0.1)
  np.testing.assert_allclose(alphas.mean(axis=0), 0.0, atol=0.01)
  np.testing.assert_allclose(eigenvectors @ (alphas * eigenvalues).T * 255, noise.T, atol=1e-3)
