"""Reading a run's folder back: its config, and the metrics kept in its checkpoints."""

import dataclasses
import json
import os
from typing import Any

from alexnet_jax import checkpoints

CONFIG_FILE = 'config.json'
FINISHED = 'finished'  # In a checkpoint's metrics: True once the run has nothing left to do.


@dataclasses.dataclass(frozen=True)
class Run:
  """What a run folder holds; `latest` and `best` are None before its first checkpoint."""
  workdir: str
  config: dict[str, Any]
  latest_step: int | None
  latest: dict[str, Any] | None  # The latest checkpoint's metrics.
  best: dict[str, Any] | None  # The metrics of the checkpoint of lowest validation top-1 error.

  @property
  def finished(self) -> bool:
    return bool(self.latest and self.latest.get(FINISHED))

  @property
  def history(self) -> dict[str, list[Any]]:
    """Per-epoch curves: {'epoch': [...], 'train_epoch_error': [...], ...}."""
    return (self.latest or {}).get(checkpoints.HISTORY, {})


def is_run_folder(path: str) -> bool:
  return os.path.isfile(os.path.join(path, CONFIG_FILE))


def read_run(workdir: str) -> Run:
  """The run in `workdir`; a folder without checkpoints gives a Run with no metrics."""
  with open(os.path.join(workdir, CONFIG_FILE)) as f:
    config = json.load(f)
  latest_step = latest = best = None
  if os.path.isdir(os.path.join(workdir, 'checkpoints')):
    manager = checkpoints.create_manager(workdir, read_only=True)
    latest_step = manager.latest_step()
    if latest_step is not None:
      latest = manager.metrics(latest_step) or {}
      best_step = manager.best_step()
      best = manager.metrics(best_step) if best_step is not None else None
    manager.close()
  return Run(workdir, config, latest_step, latest, best)


def find_runs(root: str) -> list[str]:
  """Every run folder at or under `root`, sorted."""
  if is_run_folder(root):
    return [root]
  return sorted(dirpath for dirpath, _, _ in os.walk(root) if is_run_folder(dirpath))
