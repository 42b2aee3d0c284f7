"""A config's sweep: its runs, each named after its overrides, and their command lines."""

import ast
import dataclasses
import os
import sys
from typing import Any, Sequence

from alexnet_jax import naming
from alexnet_jax import paths
from alexnet_jax import run_folder
from alexnet_jax.naming import flag_value, run_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class PlannedRun:
  """A run of a sweep as the launchers start it (run_folder.Run is what its folder holds)."""
  name: str
  overrides: dict[str, Any]
  workdir: str
  command: list[str]  # Run from the repository root.


# The keys that say how long a run goes on: a run finished under other values of them is not
# finished under these (main continues it).
LENGTH_KEYS = ('num_epochs', 'stop_at_train_error')
# A sweep entry's key that names the variant of its config file the run takes (e.g. C2's 13%
# and 11% nets); every other key is a config override.
VARIANT = 'variant'


def load_sweep(config: str) -> list[dict[str, Any]]:
  """The overrides of each run of `config` ('configs/NAME.py' or 'configs/NAME.py:VARIANT')."""
  path, _, variant = config.partition(':')
  if not os.path.isfile(path):
    raise SystemExit(f'error: --config={config}: no such file {path!r}.')
  module = naming.load_config_module(path)
  if not hasattr(module, 'get_sweep'):
    raise SystemExit(f'error: {path} defines no get_sweep().')
  return module.get_sweep(variant) if variant else module.get_sweep()


def expand(config: str, root: str, extra_flags: list[str],
           python: str = sys.executable, only: Sequence[str] = ()) -> list[PlannedRun]:
  """The runs of `config`'s sweep under ROOT/<run name>, with `extra_flags` added to each; with
  `only`, just the runs of those names, in the sweep's order."""
  runs = []
  path = config.partition(':')[0]
  for overrides in load_sweep(config):
    name = run_name(overrides)
    workdir = paths.join(paths.absolute(root), name)
    overrides = dict(overrides)
    variant = overrides.pop(VARIANT, None)
    run_config = f'{path}:{variant}' if variant else config
    command = [python, '-m', 'alexnet_jax.main', f'--config={run_config}', f'--workdir={workdir}',
               *[f'--config.{key}={flag_value(value)}' for key, value in overrides.items()],
               *extra_flags]
    runs.append(PlannedRun(name, overrides, workdir, command))
  swept = {f'--config.{key}' for run in runs for key in run.overrides}
  for flag in extra_flags:
    if flag.split('=', 1)[0] in swept:
      raise SystemExit(f'error: {flag}: the sweep sets {flag.split("=", 1)[0][2:]} itself (its '
                       'runs are named after it); leave it out of the flags after --.')
  names = [run.name for run in runs]
  if len(set(names)) != len(names):
    raise SystemExit(f'error: the sweep of {config} names two runs alike: {names}.')
  unknown = [name for name in only if name not in names]
  if unknown:
    raise SystemExit(f'error: --run={unknown[0]}: the sweep of {config} has no such run; its '
                     f'runs: {", ".join(names)}.')
  return [run for run in runs if not only or run.name in only]


def requested_length(run: PlannedRun) -> dict[str, Any]:
  """The LENGTH_KEYS of the config that `run.command` gives main: its config file's, unless a
  flag of the command sets them (the sweep's or one after --; the last one counts, as in main)."""
  config_file = next(a for a in run.command if a.startswith('--config=')).split('=', 1)[1]
  path, _, variant = config_file.partition(':')
  get_config = naming.load_config_module(path).get_config
  config = get_config(variant) if variant else get_config()
  length = {key: config[key] for key in LENGTH_KEYS}
  for arg in run.command:
    key, _, value = arg.removeprefix('--config.').partition('=')
    if arg.startswith('--config.') and key in LENGTH_KEYS:
      length[key] = type(length[key])(ast.literal_eval(value))
  return length


def status(run: PlannedRun, record: str = '') -> str:
  """'recorded' (its record is in the folder `record`), 'finished', 'resumes at step N' or
  'new'; recorded or finished only under the length the run is asked for now."""
  length = requested_length(run)
  def other_length(config: dict[str, Any]) -> str:
    changed = [f'{k} {config.get(k)!r} -> {v!r}' for k, v in length.items() if config.get(k) != v]
    return f' ({", ".join(changed)})' if changed else ''

  if record and run_folder.is_record(record):
    recorded = run_folder.read_run(record)
    if not other_length(recorded.config):
      return 'recorded'
  if not run_folder.is_run_folder(run.workdir):
    return 'new'
  found = run_folder.read_run(run.workdir)
  if found.finished and not other_length(found.config):
    return 'finished'
  if found.latest_step is None:
    return 'new'
  return f'resumes at step {found.latest_step}' + other_length(found.config)


def add_common_flags(parser) -> None:
  parser.add_argument('--config', required=True,
                      help='configs/NAME.py or configs/NAME.py:VARIANT; its get_sweep() lists '
                      'the runs.')
  parser.add_argument('--root', required=True, help='Each run goes to ROOT/<run name>.')
  parser.add_argument('--dry_run', action='store_true', help='Print what would run; run nothing.')
  parser.add_argument('--run', action='append', default=[], metavar='NAME',
                      help="Only this run of the sweep (its folder's name under ROOT, e.g. "
                      "'lrn=False,seed=0'); repeat for several. Default: every run.")
  parser.add_argument('extra_flags', nargs='*',
                      help='After --: flags added to every run, e.g. --config.dataset.data_dir=.')
