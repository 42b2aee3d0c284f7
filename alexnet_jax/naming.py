"""How runs are named: a run folder is named after the config overrides that define its
experiment, by `main` (without --workdir) and by the launchers alike. No JAX here: the launchers
and `main`'s flag checks import it."""

import importlib.util
import inspect
import os
import re
import sys
from typing import Any

# Where `main` puts a run given no --workdir: DEFAULT_ROOT/<config>[/<variant>]/<overrides>.
DEFAULT_ROOT = 'runs'
# Config keys a resumed run may change: how long it goes on, how often it logs and
# checkpoints, where its data lies, its devices and how its operations are differentiated
# (the same functions). Every other key defines the experiment.
RESUMABLE_KEYS = ('num_epochs', 'stop_at_train_error', 'log_every_steps',
                  'checkpoint_every_steps', 'checkpoint_every_minutes', 'eval_batch_size',
                  'dataset.data_dir', 'model.ops', 'model.cpu_micro_batch', 'mesh.', 'distributed.',
                  'profile_steps')


def is_resumable(key: str) -> bool:
  """Whether a resumed run may change the dotted config key `key`."""
  return any(key == k or (k.endswith('.') and key.startswith(k)) for k in RESUMABLE_KEYS)


def flag_value(value: Any) -> str:
  """A config value as ml_collections parses it back from the command line."""
  if isinstance(value, (tuple, list)):
    return '(' + ','.join(flag_value(v) for v in value) + (',)' if len(value) == 1 else ')')
  return str(value)


def run_name(overrides: dict[str, Any]) -> str:
  """'activation=tanh,learning_rate=0.001,seed=0': each key's last part, in the given order."""
  parts = [f'{key.rsplit(".", 1)[-1]}={flag_value(value)}' for key, value in overrides.items()]
  return re.sub(r'[^A-Za-z0-9_.,=()+-]', '_', ','.join(parts)) or 'default'


def load_config_module(path: str) -> Any:
  """The config file at `path` as a module (the configs import each other as `configs.*`, from
  the repository's root)."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if repo not in sys.path:
    sys.path.insert(0, repo)
  spec = importlib.util.spec_from_file_location(f'config_{os.getpid()}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def default_workdir(config: str, overrides: dict[str, Any]) -> str:
  """DEFAULT_ROOT/<config file's name>/<variant>/<the overrides that define the experiment>, e.g.
  'runs/relu_vs_tanh/18pct/name=synthetic' for `--config=configs/relu_vs_tanh.py
  --config.dataset.name=synthetic`: the variant the config file takes by default is named, so
  that both spellings of a run share its folder, and keys a resumed run may change (epochs,
  data_dir, devices) are left out, so that the same command with more epochs resumes it."""
  path, _, variant = config.partition(':')
  if not variant:
    get_config = getattr(load_config_module(path), 'get_config', None)
    parameters = inspect.signature(get_config).parameters if get_config else {}
    defaults = [p.default for p in parameters.values() if p.default is not inspect.Parameter.empty]
    variant = str(defaults[0]) if defaults else ''
  name = run_name({k: v for k, v in overrides.items() if not is_resumable(k)})
  return os.path.join(DEFAULT_ROOT, os.path.splitext(os.path.basename(path))[0], variant, name)
