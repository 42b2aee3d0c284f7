r"""The training set's statistics that preprocessing uses (Sec. 2 and 4.1): its mean image, its
mean RGB and the eigen-decomposition of its RGB covariance for PCA lighting.

  python -m alexnet_jax.write_image_stats --config=configs/relu_vs_tanh.py \
      --config.dataset.name=image_folder --config.dataset.data_dir=$HOME/data/cifar10 \
      --output=$HOME/data/cifar10_stats.json

streams the training split once, each image as preprocessing sees it (shorter side rescaled to
dataset.image_size, the central square), and writes OUTPUT, a small JSON file: `mean_rgb` on the
0-255 scale, `pca_eigenvalues` (descending) and `pca_eigenvectors` (3x3, the eigenvectors are its
columns, rows are R, G, B) of the covariance of RGB values on the 0-1 scale, and `mean_image`, the
name of the .npy file beside it that holds the mean image (float32, 0-255). A config uses them
with `dataset.stats_file=OUTPUT` (and `dataset.mean=image` for the paper's mean image).
"""

import os
import sys

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from alexnet_jax import errors, image_stats, paths, quiet
from alexnet_jax.errors import UserInputError

FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  quiet.import_tensorflow()
  from alexnet_jax import input_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  input_pipeline.hide_accelerators_from_tensorflow()
  try:
    folder = os.path.dirname(FLAGS.output) or '.'
    why = paths.unwritable_folder(folder)
    if why:  # Said now, not after the minutes the statistics take.
      raise UserInputError(f'--output={FLAGS.output}: its folder cannot be written ({why}).')
    config = FLAGS.config.dataset
    source = input_pipeline.create_source(config, with_eval=False)  # Only what it reads.
    stats = image_stats.compute(input_pipeline.decoded_batches(source.train, config,
                                                               batch_size=256))
  except UserInputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  image_stats.write(stats, FLAGS.output)
  print(f'{source.train.num_global} images of {config.name} {config.train_split!r} at '
        f'{config.image_size}x{config.image_size}: mean RGB '
        f'{np.round(stats.mean_rgb, 2).tolist()}, '
        f'eigenvalues {np.round(stats.eigenvalues, 5).tolist()}; wrote {FLAGS.output} and '
        f'{image_stats.mean_image_path(FLAGS.output)}.')


if __name__ == '__main__':
  flags.DEFINE_string('output', None, 'The JSON file to write (the mean image goes beside it).')
  config_flags.DEFINE_config_file('config', None, 'An ml_collections config file.')
  flags.mark_flags_as_required(['config', 'output'])
  app.run(main, flags_parser=errors.config_flags_parser(FLAGS))
