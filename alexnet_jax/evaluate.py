r"""Evaluates a saved run on a split, without training: the centre crop and, with the run's
`dataset.ten_crop_eval`, the ten crops, top-1 and top-5 error over every example exactly once.

  python -m alexnet_jax.evaluate --workdir=DIR [--checkpoint=latest|best|STEP] \
      [--config.dataset.KEY=VALUE ...] [--record=results/NAME/RUN]

The network and preprocessing are the run's own (its config.json); only where the data lies and
how it is read may change: `dataset.*` keys that leave the network as it is (data_dir,
eval_split, ten_crop_eval, cache, ...), `eval_batch_size` and `mesh.*`. Prints one row; with
--record, adds it to that run record's evaluations.
"""

import ast
import json
import sys
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging
import ml_collections

from alexnet_jax import checkpoint_metrics, errors, paths, quiet, records, run_folder
from alexnet_jax.errors import UserInputError

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'The run folder to evaluate.')
flags.DEFINE_string('checkpoint', 'latest', "'latest', 'best' or a step number.")
flags.DEFINE_string('record', None, "A run record's folder (results/NAME/RUN) to add the row to.")
flags.mark_flags_as_required(['workdir'])

# The keys an evaluation may change; any other would change the network or its inputs.
CHANGEABLE = ('dataset.', 'eval_batch_size', 'mesh.')
# Of those, the ones that shape the network's input: they must stay as the run had them.
INPUT_SHAPING = ('dataset.crop_size', 'dataset.image_size', 'dataset.mean')
COLUMNS = ('checkpoint step', 'split', 'examples', 'top-1 %', 'top-5 %', '10-crop top-1 %',
           '10-crop top-5 %')


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
  """`--config.KEY=VALUE` flags onto `config`, each value read as the type of the one it
  replaces; a key outside CHANGEABLE, or one of INPUT_SHAPING, is refused."""
  for flag in overrides:
    key, equals, text = flag[len('--config.'):].partition('=')
    if not flag.startswith('--config.') or not equals:
      raise UserInputError(f'{flag}: give --config.KEY=VALUE.')
    if not key.startswith(CHANGEABLE) or key in INPUT_SHAPING:
      raise UserInputError(f'--config.{key}: an evaluation may change where the data lies and '
                           'how it is read (dataset keys other than '
                           f'{", ".join(INPUT_SHAPING)}; eval_batch_size; mesh.*), not the run '
                           'it evaluates.')
    *parents, leaf = key.split('.')
    node = config
    for part in parents:
      node = node[part]
    if leaf not in node:
      raise UserInputError(f'--config.{key}: the run\'s config has no such key.')
    old = node[leaf]
    try:
      value = text if isinstance(old, str) or old is None else ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
      raise UserInputError(f'--config.{key}={text}: not a value of the type of {old!r}.') from e
    node[leaf] = value


def evaluate_run(config: ml_collections.ConfigDict, workdir: str,
                 checkpoint: str = 'latest') -> tuple[int, dict[str, Any]]:
  """(step, metrics) of the run in `workdir` at `checkpoint` on `config`'s evaluation split."""
  import jax  # pylint: disable=g-import-not-at-top
  from alexnet_jax import (checkpoints, input_pipeline, models, parallel,  # pylint: disable=g-import-not-at-top
                           steps, validation)

  validation.validate_config(config)
  parallel.set_cpu_devices(config)
  if not (paths.Path(workdir) / checkpoint_metrics.CHECKPOINTS_DIR).is_dir():
    raise UserInputError(f'workdir {workdir!r} has no checkpoints.')
  with checkpoints.create_manager(workdir, read_only=True) as manager:
    named = {'latest': manager.latest_step(), 'best': manager.best_step()}
    step = named.get(checkpoint) if checkpoint in named else (
        int(checkpoint) if checkpoint.isdigit() else None)
    if step is None or step not in manager.all_steps():
      raise UserInputError(f'--checkpoint={checkpoint}: {workdir!r} has no such checkpoint; '
                           f'its steps: {sorted(manager.all_steps())}.')
    input_pipeline.hide_accelerators_from_tensorflow()
    source = input_pipeline.create_source(config.dataset, jax.process_index(),
                                          jax.process_count())
    mesh = parallel.create_mesh(config.mesh.data, config.mesh.model)
    image_shape = (config.dataset.crop_size, config.dataset.crop_size, 3)
    model = models.create_model(config.model, source.num_classes, scheme=config.mesh.scheme)
    fresh, specs = steps.create_train_state(config, model, image_shape, mesh)
    checkpoints.check_same_network(manager, step, fresh)
    state = checkpoints.restore_step(manager, step, fresh)
  _, eval_fn = steps.make_steps(config, model, mesh, specs, steps_per_epoch=1)
  batches = input_pipeline.eval_batches(
      source, config.dataset, batch_size=config.eval_batch_size // jax.process_count(),
      normalization=input_pipeline.Normalization.from_config(config.dataset),
      process_count=jax.process_count())
  return step, steps.evaluate(eval_fn, state.params, batches.as_numpy_iterator(), mesh,
                              model.axes)


def row(step: int, split: str, metrics: dict[str, Any]) -> dict[str, str]:
  def percent(key):
    return f'{100 * metrics[key]:.2f}' if metrics.get(key) is not None else 'n/a'
  return dict(zip(COLUMNS, (str(step), split, str(metrics['eval_examples']),
                            percent('eval_top1_error'), percent('eval_top5_error'),
                            percent('eval_10crop_top1_error'), percent('eval_10crop_top5_error'))))


def main(argv: list[str]) -> None:
  quiet.import_tensorflow()
  absl_logging.set_verbosity(absl_logging.ERROR)  # Orbax narrates every checkpoint it reads.
  try:
    if not run_folder.is_run_folder(FLAGS.workdir) or run_folder.is_record(FLAGS.workdir):
      raise UserInputError(f'--workdir={FLAGS.workdir}: not a run folder (no '
                           f'{run_folder.CONFIG_FILE}).')
    saved = json.loads((paths.Path(FLAGS.workdir) / run_folder.CONFIG_FILE).read_text())
    config = ml_collections.ConfigDict(saved)
    apply_overrides(config, argv[1:])
    step, metrics = evaluate_run(config, FLAGS.workdir, FLAGS.checkpoint)
  except UserInputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(errors.EXIT_BAD_INPUT)
  result = row(step, config.dataset.eval_split, metrics)
  print('| ' + ' | '.join(COLUMNS) + ' |\n|' + '---|' * len(COLUMNS))
  print('| ' + ' | '.join(result.values()) + ' |')
  if FLAGS.record:
    records.add_evaluation(FLAGS.record, {**result, 'data_dir': config.dataset.data_dir})
    print(f'added to {FLAGS.record}', file=sys.stderr)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flags, and the --config.KEY=VALUE ones left for apply_overrides."""
  try:
    return FLAGS(argv, known_only=True)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(errors.EXIT_BAD_INPUT)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
