"""Reading a run back, from its folder (its config and the metrics kept in its checkpoints) or
from its record (`write_record`: the same, as text, plus its conv1 kernels), and writing a
finished run's record."""

import contextlib
import dataclasses
import datetime
import fcntl
import functools
import io
import json
import os
import socket
import subprocess
from typing import Any, Iterator

from absl import logging
import jax
import ml_collections
import numpy as np

from alexnet_jax import checkpoints
from alexnet_jax import models
from alexnet_jax import naming
from alexnet_jax import paths
from alexnet_jax.errors import UserInputError

CONFIG_FILE = 'config.json'
# A run's record (results/<sweep>/<run>/): what report, the claims and the plots read of a
# finished run, as text, and its conv1 kernels (Figure 3, C8), trained and initial.
RECORD_FILE = 'record.json'
KERNELS_FILE = 'conv1_kernels.npz'
RECORD_FORMAT = 1
# Why the run stopped before its end (a NaN), written as it stops, removed when it runs again.
STOPPED_FILE = 'stopped.txt'
LOCK_FILE = '.lock'  # Held by the process that owns the run folder; it names that process.
# Keys added after runs were already written, with the value those runs ran with: a saved
# config without one reads as having that value.
KEYS_ADDED_LATER = {'compute_dtype': 'float32', 'lr_warmup_epochs': 0.0}


@dataclasses.dataclass(frozen=True)
class Run:
  """What a run folder holds; `latest` and `best` are None before its first checkpoint."""
  workdir: str
  config: dict[str, Any]
  latest_step: int | None
  latest: dict[str, Any] | None  # The latest checkpoint's metrics.
  best: dict[str, Any] | None  # The metrics of the checkpoint of lowest validation top-1 error.
  stopped: str | None = None  # Why it stopped before its end, if it did (STOPPED_FILE).

  @property
  def finished(self) -> bool:
    return bool(self.latest and self.latest.get(checkpoints.FINISHED))

  @property
  def history(self) -> dict[str, list[Any]]:
    """Per-epoch curves: {'epoch': [...], 'train_epoch_error': [...], ...}."""
    return (self.latest or {}).get(checkpoints.HISTORY, {})


def code_version(directory: str = os.path.dirname(os.path.abspath(__file__))) -> str:
  """The git commit of the code in `directory` ('+changes' when tracked files differ from it),
  or 'unknown' outside a git checkout: each run records what it ran."""
  def git(*args):
    return subprocess.run(['git', '-C', directory, *args], capture_output=True, text=True,
                          timeout=30)
  try:
    head = git('rev-parse', '--short=10', 'HEAD')
    if head.returncode != 0:
      return 'unknown'
    changed = git('status', '--porcelain', '--untracked-files=no').stdout.strip()
  except (OSError, subprocess.TimeoutExpired):
    return 'unknown'
  return head.stdout.strip() + ('+changes' if changed else '')


def commits(run: Run) -> list[str]:
  """The code versions a run's epochs ran, in order, each once."""
  return list(dict.fromkeys(c for c in run.history.get('commit', []) if c))


@contextlib.contextmanager
def workdir_lock(workdir: str, enabled: bool = True) -> Iterator[None]:
  """Owns `workdir` for the block: a second run on it stops with UserInputError naming the
  owner. An flock, which the system releases when its process dies, even by kill -9. Only one
  process of a multi-process run takes it (enabled=False on the others). An object store
  (gs://) has no locks: there the workdir is not guarded, and the log says so."""
  if not enabled:
    yield
    return
  if paths.is_uri(workdir):
    logging.warning('workdir %s is in an object store, where no lock can keep a second run off '
                    'it: start one run per workdir.', workdir)
    yield
    return
  with open(os.path.join(workdir, LOCK_FILE), 'a+') as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      f.seek(0)
      owner = f.read().strip() or 'another process'
      raise UserInputError(f'workdir {workdir!r} is in use by {owner}; wait for that run to '
                           'end, or use another workdir.') from e
    f.seek(0)
    f.truncate()
    f.write(f'process {os.getpid()} on {socket.gethostname()}, since '
            f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n')
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}; lists become tuples."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = tuple(value) if isinstance(value, list) else value
  return flat


def experiment_changes(saved: dict[str, Any], config: dict[str, Any]) -> dict[str, tuple]:
  """The keys that define the experiment (all but naming.RESUMABLE_KEYS) whose values differ
  between a run folder's saved config and `config`: {key: (saved value, new value)}."""
  old = {**KEYS_ADDED_LATER, **flatten(saved)}
  new = flatten(json.loads(json.dumps(config)))
  missing = '(absent)'
  return {key: (old.get(key, missing), new.get(key, missing))
          for key in sorted(set(old) | set(new))
          if old.get(key, missing) != new.get(key, missing)
          and not naming.is_resumable(key)}


def is_run_folder(path: str | os.PathLike) -> bool:
  """A run's folder or a run's record."""
  return (paths.Path(path) / CONFIG_FILE).is_file() or is_record(path)


def is_record(path: str | os.PathLike) -> bool:
  return (paths.Path(path) / RECORD_FILE).is_file()


def read_run(workdir: str) -> Run:
  """The run in `workdir`, a run folder or a record; a folder without checkpoints gives a Run
  with no metrics."""
  if is_record(workdir):
    return _read_record(workdir)
  config = json.loads((paths.Path(workdir) / CONFIG_FILE).read_text())
  if not (isinstance(config, dict) and isinstance(config.get('dataset'), dict)
          and isinstance(config.get('model'), dict)):
    raise ValueError(f'its {CONFIG_FILE} is not the config of a run (a JSON object with '
                     "'dataset' and 'model')")
  latest_step = latest = best = None
  if (paths.Path(workdir) / checkpoints.CHECKPOINTS_DIR).is_dir():
    manager = checkpoints.create_manager(workdir, read_only=True)
    latest_step = manager.latest_step()
    if latest_step is not None:
      latest = manager.metrics(latest_step) or {}
      best_step = manager.best_step()
      best = manager.metrics(best_step) if best_step is not None else None
    manager.close()
  stopped_file = paths.Path(workdir) / STOPPED_FILE
  stopped = stopped_file.read_text().strip() if stopped_file.exists() else None
  return Run(workdir, config, latest_step, latest, best, stopped)


def conv1_kernel(run: Run) -> Any:
  """conv1's kernel (k, k, 3, C) from the run's best checkpoint (else its latest), as NumPy; None
  before its first checkpoint. What Figure 3 draws and claim C8 measures."""
  if run.latest_step is None:
    return None
  if is_record(run.workdir):
    return _recorded_kernels(run.workdir)['trained']
  return _conv1_kernel(run.workdir, run.latest_step)


@functools.lru_cache(maxsize=None)
def _conv1_kernel(workdir: str, latest_step: int) -> np.ndarray:
  """Read once per run and latest step: the report's C8 verdict and its plots both need it, and
  each read restores a whole checkpoint."""
  del latest_step  # Part of the key only: a run that went on is read again.
  manager = checkpoints.create_manager(workdir, read_only=True)
  step = manager.best_step() or manager.latest_step()
  kernel = checkpoints.restore_on_host(manager, step)['params']['conv1']['kernel']
  manager.close()
  return np.asarray(kernel)


def initial_conv1_kernel(run: Run) -> Any:
  """conv1's kernel as the run started: its seed's initialization, computed again from its
  config (bit for bit what training started from); None before its first checkpoint. A short run
  keeps much of this random start, which `conv1_kernel(run) - initial_conv1_kernel(run)` leaves
  out."""
  if run.latest_step is None:
    return None
  if is_record(run.workdir):
    return _recorded_kernels(run.workdir)['initial']
  return _initial_conv1_kernel(run.workdir, run.latest_step,
                               json.dumps(run.config, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _initial_conv1_kernel(workdir: str, latest_step: int, config_json: str) -> np.ndarray:
  """Computed once per run and config: the report's C8 verdict and its plots both need it."""
  manager = checkpoints.create_manager(workdir, read_only=True)
  params = manager.item_metadata(latest_step)['params']
  manager.close()
  config = json.loads(config_json)
  model_config = ml_collections.ConfigDict(config['model'])
  # The classifier's biases give the number of classes, which the config does not hold.
  num_classes = params[models.layer_names(model_config)[-1]]['bias'].shape[0]
  model = models.create_model(model_config, num_classes)
  image_shape = (config['dataset']['crop_size'],) * 2 + (3,)
  params_key, _ = models.seed_keys(config['seed'])
  init = jax.jit(lambda: models.init_params(model, image_shape, params_key)['conv1']['kernel'])
  return np.asarray(init())


def write_record(run: Run, destination: str) -> None:
  """Writes the record of `run` (read from its folder) into the folder `destination`: its
  config, latest step, latest and best metrics (with the per-epoch history and the commit each
  epoch ran; the keys only a resume reads left out) in RECORD_FILE, and its conv1 kernels,
  trained and initial, in KERNELS_FILE. Only a finished run has a record."""
  if not run.finished:
    raise UserInputError(f'{run.workdir}: the run is not finished (latest step '
                         f'{run.latest_step}); only a finished run is recorded.')

  def result(metrics):
    return None if metrics is None else {
        k: v for k, v in metrics.items() if k not in checkpoints.RESUME_ONLY_KEYS}

  record = {'format': RECORD_FORMAT, 'config': run.config, 'latest_step': run.latest_step,
            'latest': result(run.latest), 'best': result(run.best)}
  kernels = io.BytesIO()
  np.savez(kernels, trained=conv1_kernel(run), initial=initial_conv1_kernel(run))
  paths.Path(destination).mkdir(parents=True, exist_ok=True)
  paths.write_bytes(paths.join(destination, KERNELS_FILE), kernels.getvalue())
  _write_record_file(destination, record)  # Last: a folder with a record file is whole.


def add_evaluation(folder: str, evaluation: dict[str, Any]) -> None:
  """Adds `evaluation` (one row of alexnet_jax.evaluate) to the record in `folder`."""
  if not is_record(folder):
    raise UserInputError(f'{folder}: not a run record (no {RECORD_FILE}).')
  record = json.loads((paths.Path(folder) / RECORD_FILE).read_text())
  record.setdefault('evaluations', []).append(evaluation)
  _write_record_file(folder, record)


def _write_record_file(folder: str, record: dict[str, Any]) -> None:
  paths.write_text(paths.join(folder, RECORD_FILE),
                   json.dumps(record, indent=1, sort_keys=True) + '\n')


def _read_record(folder: str) -> Run:
  record = json.loads((paths.Path(folder) / RECORD_FILE).read_text())
  if not isinstance(record, dict) or record.get('format') != RECORD_FORMAT:
    raise ValueError(f'its {RECORD_FILE} is not a run record of format {RECORD_FORMAT}')
  return Run(folder, record['config'], record['latest_step'], record['latest'], record['best'])


@functools.lru_cache(maxsize=None)
def _recorded_kernels(folder: str) -> dict[str, np.ndarray]:
  with (paths.Path(folder) / KERNELS_FILE).open('rb') as f:
    return dict(np.load(io.BytesIO(f.read())))


def find_runs(root: str) -> list[str]:
  """Every run folder at or under `root`, sorted; a run folder's own folders (its checkpoints)
  are not searched, which keeps a walk of a bucket short."""
  if is_run_folder(root):
    return [root]
  return sorted(run for entry in paths.Path(root).iterdir() if entry.is_dir()
                for run in find_runs(os.fspath(entry)))
