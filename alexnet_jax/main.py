r"""Trains a config into a workdir, resuming from the workdir's latest checkpoint.

  python -m alexnet_jax.main --config=configs/relu_vs_tanh.py --workdir=/tmp/c1 \
      [--config.KEY=VALUE ...]
"""

import logging
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from alexnet_jax.errors import NonFiniteError, UserInputError

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs.')
config_flags.DEFINE_config_file('config', None, 'An ml_collections config file.',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Imported here so that --help and flag errors do not wait for JAX and TensorFlow.
  from alexnet_jax import train  # pylint: disable=g-import-not-at-top

  # JAX reports each platform it looks for and does not find (TPU, GPU) at INFO level.
  logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)

  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except UserInputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except NonFiniteError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(3)


if __name__ == '__main__':
  app.run(main)
