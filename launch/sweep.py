"""A config's sweep: its runs, each named after its overrides, and their command lines."""

import dataclasses
import os
import sys
from typing import Any, Sequence

from alexnet_jax import naming
from alexnet_jax import paths
from alexnet_jax.naming import flag_value, run_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Run:
  name: str
  overrides: dict[str, Any]
  workdir: str
  command: list[str]  # Run from the repository root.


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
           python: str = sys.executable, only: Sequence[str] = ()) -> list[Run]:
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
    runs.append(Run(name, overrides, workdir, command))
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
