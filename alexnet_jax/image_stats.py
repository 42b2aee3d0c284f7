"""The training set's statistics that preprocessing uses (Sec. 2 and 4.1): its mean image, its
mean RGB and the eigen-decomposition of its RGB covariance for PCA lighting; computed by the
command `python -m alexnet_jax.write_image_stats`, read back by the input pipeline.

The stats file is a small JSON file: `mean_rgb` on the 0-255 scale, `pca_eigenvalues`
(descending) and `pca_eigenvectors` (3x3, the eigenvectors are its columns, rows are R, G, B) of
the covariance of RGB values on the 0-1 scale, and `mean_image`, the name of the .npy file beside
it that holds the mean image (float32, 0-255).
"""

import dataclasses
import io
import json
import os
from typing import Any, Callable, Iterable, Mapping

import ml_collections
import numpy as np

from alexnet_jax import paths
from alexnet_jax.errors import UserInputError

MEANS = ('rgb', 'image')  # What preprocessing subtracts: the mean RGB or the mean image.


@dataclasses.dataclass(frozen=True)
class Stats:
  mean_rgb: np.ndarray  # [3], 0-255 scale.
  eigenvalues: np.ndarray  # [3], descending, of the covariance of RGB values on the 0-1 scale.
  eigenvectors: np.ndarray  # [3, 3], eigenvector i is column i.
  mean_image: np.ndarray | None = None  # [size, size, 3], 0-255 scale.


def compute(batches: Iterable[np.ndarray]) -> Stats:
  """The statistics of every pixel of batches of uint8 images [batch, size, size, 3]."""
  num_images, image_sum, second_moment = 0, None, np.zeros((3, 3))
  for batch in batches:
    batch = np.asarray(batch, np.float64)
    image_sum = batch.sum(0) if image_sum is None else image_sum + batch.sum(0)
    pixels = batch.reshape(-1, 3) / 255.0
    second_moment += pixels.T @ pixels
    num_images += len(batch)
  if not num_images:
    raise UserInputError('the training split has no images to compute statistics of.')
  mean_image = image_sum / num_images
  mean_rgb = mean_image.mean((0, 1))
  num_pixels = num_images * mean_image.shape[0] * mean_image.shape[1]
  covariance = second_moment / num_pixels - np.outer(mean_rgb, mean_rgb) / 255.0**2
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)
  eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
  # An eigenvector's sign is arbitrary: fix it (largest component positive) so runs agree.
  signs = np.sign(eigenvectors[np.abs(eigenvectors).argmax(0), range(3)])
  return Stats(mean_rgb, eigenvalues, eigenvectors * signs, mean_image.astype(np.float32))


def mean_image_path(path: str) -> str:
  return os.path.splitext(path)[0] + '.mean_image.npy'


def write(stats: Stats, path: str) -> None:
  """The stats as JSON at `path` and the mean image beside it (.npy); a local path or a URI."""
  mean_image = io.BytesIO()
  np.save(mean_image, stats.mean_image)
  paths.write_bytes(mean_image_path(path), mean_image.getvalue())
  paths.write_text(path, json.dumps({'mean_rgb': stats.mean_rgb.tolist(),
                                     'pca_eigenvalues': stats.eigenvalues.tolist(),
                                     'pca_eigenvectors': stats.eigenvectors.tolist(),
                                     'mean_image': os.path.basename(mean_image_path(path)),
                                     'image_size': int(stats.mean_image.shape[0])}, indent=1))


# The shape of each value the pipeline takes, by its key in the config and the stats file.
SHAPES = {'mean_rgb': (3,), 'pca_eigenvalues': (3,), 'pca_eigenvectors': (3, 3)}


def checked(values: Mapping[str, Any], where: Callable[[str], str],
            mean_image: np.ndarray | None = None) -> Stats:
  """`values` (SHAPES' keys) as Stats once each is numbers of its shape, finite, and the
  eigenvalues not negative; else one error naming the value by `where(key)`."""
  arrays = {}
  for key, shape in SHAPES.items():
    try:
      array = np.asarray(values[key])
    except ValueError:  # Ragged.
      array = np.asarray(())
    if array.shape != shape or array.dtype.kind not in 'iuf' or not np.isfinite(array).all():
      raise UserInputError(f'{where(key)}={values[key]!r} must be {" x ".join(map(str, shape))} '
                           'finite numbers.')
    arrays[key] = array.astype(np.float64)
  if (arrays['pca_eigenvalues'] < 0).any():
    raise UserInputError(f'{where("pca_eigenvalues")}={values["pca_eigenvalues"]!r}: the '
                         'variances along the eigenvectors cannot be negative.')
  if mean_image is not None and (mean_image.ndim != 3 or mean_image.shape[2] != 3
                                 or not np.isfinite(mean_image).all()):
    raise UserInputError(f'{where("mean_image")} must be an image of finite RGB values; its '
                         f'shape is {mean_image.shape}.')
  return Stats(arrays['mean_rgb'], arrays['pca_eigenvalues'], arrays['pca_eigenvectors'],
               mean_image)


def read(path: str, with_mean_image: bool = False) -> Stats:
  where = lambda key: f'dataset.stats_file={path!r}: {key}'
  try:
    record = json.loads(paths.Path(path).read_text())
    if not isinstance(record, dict):
      raise ValueError(f'a JSON {type(record).__name__}, not an object')
    missing = [key for key in (*SHAPES, *(['mean_image'] if with_mean_image else []))
               if key not in record]
    if missing:
      raise ValueError(f'no {", ".join(missing)}')
    mean_image = None
    if with_mean_image:
      mean_image = np.load(io.BytesIO(
          (paths.Path(path).parent / str(record['mean_image'])).read_bytes()))
  except (OSError, ValueError) as e:
    raise UserInputError(f'dataset.stats_file={path!r} cannot be read as the output of '
                         f'python -m alexnet_jax.write_image_stats ({e}).') from e
  return checked(record, where, mean_image)


def for_config(config: ml_collections.ConfigDict) -> Stats:
  """What a `config.dataset` subtracts and adds: its stats file's statistics, or its own values.

  The mean image is kept only when `config.mean == 'image'`, and must be `image_size` square.
  """
  if config.mean not in MEANS:
    raise UserInputError(f'config.dataset.mean={config.mean!r} is not allowed; use one of '
                         f'{list(MEANS)}.')
  if not config.stats_file:
    if config.mean == 'image':
      raise UserInputError('config.dataset.mean=image needs the mean image: set '
                           'config.dataset.stats_file to the output of python -m '
                           'alexnet_jax.write_image_stats.')
    return checked({key: config[key] for key in SHAPES}, lambda key: f'config.dataset.{key}')
  stats = read(config.stats_file, with_mean_image=config.mean == 'image')
  if stats.mean_image is not None and stats.mean_image.shape != (config.image_size,) * 2 + (3,):
    raise UserInputError(f'the mean image of dataset.stats_file={config.stats_file!r} is '
                         f'{stats.mean_image.shape[0]} pixels square, but config.dataset.'
                         f'image_size={config.image_size}; recompute it at that size.')
  return stats
