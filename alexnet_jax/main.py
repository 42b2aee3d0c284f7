r"""Trains a config into a workdir, resuming from the workdir's latest checkpoint.

  python -m alexnet_jax.main --config=configs/relu_vs_tanh.py [--workdir=DIR] \
      [--config.KEY=VALUE ...]

Without --workdir the run goes to runs/<config>/<variant>/<its overrides> under the current
folder (alexnet_jax.naming.default_workdir), named in the first line of the log, so that the
same command resumes it.
"""

import logging
import os
import sys

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from alexnet_jax import errors, naming, quiet
from alexnet_jax.errors import DiskFullError, Interrupted, NonFiniteError, UserInputError

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = errors.EXIT_BAD_INPUT
EXIT_NOT_FINITE = 3
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs; default: '
                    'runs/<config>/<variant>/<overrides> under the current folder.')
flags.DEFINE_bool('allow_changed_config', False,
                  'Resume a workdir although the config differs from the one that wrote it in '
                  'keys that define the experiment (model, data, optimizer, schedule).')
config_flags.DEFINE_config_file('config', None, 'An ml_collections config file.',
                                lock_config=True)
flags.mark_flags_as_required(['config'])


def _quiet_orbax(record: logging.LogRecord) -> bool:
  return record.levelno >= logging.WARNING or f'{os.sep}orbax{os.sep}' not in record.pathname


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = FLAGS.workdir
  if workdir is None:  # Named first, since the user did not name it (a given one is not echoed).
    workdir = naming.default_workdir(config_flags.get_config_filename(FLAGS['config']),
                                     config_flags.get_override_values(FLAGS['config']))
    absl_logging.info('Run folder: %s', workdir)
  elif not workdir.strip():  # --workdir=$UNSET: not the current folder.
    print("error: --workdir='' is empty; give a folder, or leave the flag out for "
          f'{naming.DEFAULT_ROOT}/<config>/<variant>/<overrides>.', file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
  try:
    # Answered in seconds: --help, flag errors and these refusals wait for neither TensorFlow nor
    # JAX's devices, imported after them.
    from alexnet_jax import validation  # pylint: disable=g-import-not-at-top
    validation.validate_run(FLAGS.config, workdir, FLAGS.allow_changed_config)
    quiet.import_tensorflow()
    import jax  # pylint: disable=g-import-not-at-top
    from alexnet_jax import parallel, train  # pylint: disable=g-import-not-at-top

    quiet.jax_platform_search()
    # Orbax reports each step of each save at INFO level: keep the log to the run's own progress.
    absl_logging.get_absl_handler().addFilter(_quiet_orbax)
    parallel.set_cpu_devices(FLAGS.config)
    started = parallel.initialize_distributed(FLAGS.config.distributed)
    if started:
      absl_logging.info('jax.distributed: process %d of %d (%s).', jax.process_index(),
                        jax.process_count(), started)
    if jax.process_index() != 0:  # Process 0 speaks for the run.
      absl_logging.set_verbosity(absl_logging.WARNING)
    train.train_and_evaluate(FLAGS.config, workdir,
                             allow_changed_config=FLAGS.allow_changed_config)
  except (UserInputError, NonFiniteError, DiskFullError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(EXIT_NOT_FINITE if isinstance(e, NonFiniteError) else EXIT_BAD_INPUT)
  except Interrupted as e:
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signal_number)  # The shell's code for a process ended by that signal.


if __name__ == '__main__':
  app.run(main, flags_parser=errors.config_flags_parser(FLAGS))
