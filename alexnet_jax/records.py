"""A finished run's record (results/<sweep>/<run>/): writing it from the run's folder, adding an
evaluation to it, and the conv1 kernels (Figure 3, C8) of a run's folder or record. Reading the
rest of a record back is `run_folder.read_run`'s."""

import functools
import io
import json
from typing import Any

import jax
import ml_collections
import numpy as np

from alexnet_jax import checkpoints
from alexnet_jax import models
from alexnet_jax import paths
from alexnet_jax import run_folder
from alexnet_jax.errors import UserInputError

KERNELS_FILE = 'conv1_kernels.npz'  # Beside run_folder.RECORD_FILE: trained and initial.


def conv1_kernel(run: run_folder.Run) -> Any:
  """conv1's kernel (k, k, 3, C) from the run's best checkpoint (else its latest), as NumPy; None
  before its first checkpoint. What Figure 3 draws and claim C8 measures."""
  if run.latest_step is None:
    return None
  if run_folder.is_record(run.workdir):
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


def initial_conv1_kernel(run: run_folder.Run) -> Any:
  """conv1's kernel as the run started: its seed's initialization, computed again from its
  config (bit for bit what training started from); None before its first checkpoint. A short run
  keeps much of this random start, which `conv1_kernel(run) - initial_conv1_kernel(run)` leaves
  out."""
  if run.latest_step is None:
    return None
  if run_folder.is_record(run.workdir):
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


def write_record(run: run_folder.Run, destination: str) -> None:
  """Writes the record of `run` (read from its folder) into the folder `destination`: its
  config, latest step, latest and best metrics (with the per-epoch history and the commit each
  epoch ran; the keys only a resume reads left out) in run_folder.RECORD_FILE, and its conv1
  kernels, trained and initial, in KERNELS_FILE. Only a finished run has a record."""
  if not run.finished:
    raise UserInputError(f'{run.workdir}: the run is not finished (latest step '
                         f'{run.latest_step}); only a finished run is recorded.')

  record = {'format': run_folder.RECORD_FORMAT, 'config': run.config,
            'latest_step': run.latest_step, 'latest': run.latest.result(),
            'best': run.best.result() if run.best else None}
  kernels = io.BytesIO()
  np.savez(kernels, trained=conv1_kernel(run), initial=initial_conv1_kernel(run))
  paths.Path(destination).mkdir(parents=True, exist_ok=True)
  paths.write_bytes(paths.join(destination, KERNELS_FILE), kernels.getvalue())
  _write_record_file(destination, record)  # Last: a folder with a record file is whole.


def add_evaluation(folder: str, evaluation: dict[str, Any]) -> None:
  """Adds `evaluation` (one row of alexnet_jax.evaluate) to the record in `folder`."""
  if not run_folder.is_record(folder):
    raise UserInputError(f'{folder}: not a run record (no {run_folder.RECORD_FILE}).')
  record = json.loads((paths.Path(folder) / run_folder.RECORD_FILE).read_text())
  record.setdefault('evaluations', []).append(evaluation)
  _write_record_file(folder, record)


def _write_record_file(folder: str, record: dict[str, Any]) -> None:
  paths.write_text(paths.join(folder, run_folder.RECORD_FILE),
                   json.dumps(record, indent=1, sort_keys=True) + '\n')


@functools.lru_cache(maxsize=None)
def _recorded_kernels(folder: str) -> dict[str, np.ndarray]:
  with (paths.Path(folder) / KERNELS_FILE).open('rb') as f:
    return dict(np.load(io.BytesIO(f.read())))
