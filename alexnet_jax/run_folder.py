"""Reading a run back, from its folder (its config and the metrics kept in its checkpoints) or
from its record (`records.write_record`: the same, as text, plus its conv1 kernels), as plain
JSON: no JAX, Flax or orbax is imported here, so that a launcher's status check stays light. Also
what guards a run folder: its lock and the check that a resume is of the same experiment."""

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import socket
import subprocess
import tempfile
from typing import Any, Iterator

import ml_collections
from absl import logging

from alexnet_jax import checkpoint_metrics
from alexnet_jax import naming
from alexnet_jax import paths
from alexnet_jax.errors import UserInputError

CONFIG_FILE = 'config.json'
# A run's record (results/<sweep>/<run>/): what report, the claims and the plots read of a
# finished run, as text (and its conv1 kernels: records.KERNELS_FILE).
RECORD_FILE = 'record.json'
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
  latest: checkpoint_metrics.CheckpointMetrics | None  # The latest checkpoint's.
  # The checkpoint's of lowest validation top-1 error (checkpoint_metrics.best_of).
  best: checkpoint_metrics.CheckpointMetrics | None
  stopped: str | None = None  # Why it stopped before its end, if it did (STOPPED_FILE).

  @property
  def finished(self) -> bool:
    return bool(self.latest and self.latest.finished)

  @property
  def history(self) -> dict[str, list[Any]]:
    """Per-epoch curves: {'epoch': [...], 'train_epoch_error': [...], ...}."""
    return self.latest.history if self.latest else {}


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


def prepare_workdir(workdir: str) -> None:
  """Creates the workdir, or says in one line why it cannot be written."""
  try:
    paths.Path(workdir).mkdir(parents=True, exist_ok=True)
    if not paths.is_uri(workdir):
      with tempfile.TemporaryFile(dir=workdir):  # Unique: processes of one run may share it.
        pass
  except OSError as e:
    raise UserInputError(f'workdir {workdir!r} cannot be written: {e.strerror}.') from e


def check_same_experiment(config: ml_collections.ConfigDict, workdir: str,
                          saved: checkpoint_metrics.CheckpointMetrics | None) -> None:
  """Refuses a workdir whose checkpoints (`saved`: the latest's metrics) were written under a
  config that differs from `config` in a key that defines the experiment, naming each such key
  and both values. The checkpoints' own config decides; config.json only for checkpoints that
  hold none."""
  if not checkpoint_metrics.committed_steps(workdir):
    return
  saved_config = saved.config if saved else None
  path = paths.Path(workdir) / CONFIG_FILE
  if saved_config is None and path.exists():  # Checkpoints from before they held their config.
    saved_config = json.loads(path.read_text())  # Written whole (paths.write_text is atomic).
  if not isinstance(saved_config, dict):
    return
  changes = experiment_changes(saved_config, json.loads(config.to_json_best_effort()))
  if changes:
    listed = ', '.join(f'{key} {old!r} -> {new!r}' for key, (old, new) in changes.items())
    raise UserInputError(f'workdir {workdir!r} holds a run of another experiment ({listed}); '
                         'use a new workdir, or --allow_changed_config to resume it with the '
                         'new values.')


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
  saved = checkpoint_metrics.read_all(workdir)
  latest_step, latest = saved[-1] if saved else (None, None)
  _, best = checkpoint_metrics.best_of(saved) or (None, None)
  stopped_file = paths.Path(workdir) / STOPPED_FILE
  stopped = stopped_file.read_text().strip() if stopped_file.exists() else None
  return Run(workdir, config, latest_step, latest, best, stopped)


def _read_record(folder: str) -> Run:
  record = json.loads((paths.Path(folder) / RECORD_FILE).read_text())
  if not isinstance(record, dict) or record.get('format') != RECORD_FORMAT:
    raise ValueError(f'its {RECORD_FILE} is not a run record of format {RECORD_FORMAT}')
  metrics = lambda stored: None if stored is None else \
      checkpoint_metrics.CheckpointMetrics.from_json(stored)
  return Run(folder, record['config'], record['latest_step'], metrics(record['latest']),
             metrics(record['best']))


def find_runs(root: str) -> list[str]:
  """Every run folder at or under `root`, sorted; a run folder's own folders (its checkpoints)
  are not searched, which keeps a walk of a bucket short."""
  if is_run_folder(root):
    return [root]
  return sorted(run for entry in paths.Path(root).iterdir() if entry.is_dir()
                for run in find_runs(os.fspath(entry)))
