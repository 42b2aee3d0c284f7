"""What each checkpoint's metrics hold, defined once (`CheckpointMetrics`), and a run folder's
checkpoints read as the JSON they are: without JAX, Flax or orbax, so that a launcher's status
check and a report of records stay light.

Orbax writes a checkpoint's metrics as one flat JSON object (WORKDIR/checkpoints/STEP/
metrics/metrics); the latest step's metrics sit at its top level, which is where orbax's best_fn
looks for BEST_METRIC, and the fields below beside them.
"""

import dataclasses
import json
import os
from typing import Any

from alexnet_jax import paths

CHECKPOINTS_DIR = 'checkpoints'  # WORKDIR/checkpoints/STEP/..., orbax's layout.
METRICS_FILE = 'metrics/metrics'  # Orbax's, inside each step's folder.
# Orbax's mark of a checkpoint written whole in an object store (gs://), where no folder is
# renamed into place.
COMMIT_FILE = 'commit_success.txt'
BEST_METRIC = 'eval_top1_error'  # Lower is better.
# The per-epoch curves a checkpoint carries (`CheckpointMetrics.history`), one value per epoch.
HISTORY_KEYS = ('epoch', 'train_epoch_loss', 'train_epoch_error', 'eval_loss', 'eval_top1_error',
                'eval_top5_error', 'eval_10crop_top1_error', 'eval_10crop_top5_error', 'commit')


@dataclasses.dataclass(frozen=True)
class CheckpointMetrics:
  """The metrics saved with a checkpoint. Each field but `metrics` is stored under its own name."""
  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # The latest log's and eval's.
  history: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # {HISTORY_KEYS: [...]}
  finished: bool = False  # The run has nothing left to do.
  # Read only by a resume (a run's record leaves them out):
  # the run's config: each checkpoint names its own experiment, even when config.json is lost;
  config: dict[str, Any] | None = None
  data: dict[str, Any] | None = None  # The training data's identity (input_pipeline.Source).
  # mid-epoch, every process's place in its input stream (input_pipeline.POSITION);
  input_positions: list[int] | None = None
  eval_pending: bool = False  # A signal stopped the epoch's evaluation, which resumes first.
  state_digest: list[int] | None = None  # Of the saved state (checkpoints.state_digest).

  RESUME_ONLY = ('config', 'data', 'input_positions', 'eval_pending', 'state_digest')

  def to_json(self) -> dict[str, Any]:
    """The flat object orbax stores; fields left at None are left out."""
    fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
              if f.name != 'metrics' and getattr(self, f.name) is not None}
    return {**self.metrics, **fields}

  @classmethod
  def from_json(cls, stored: dict[str, Any]) -> 'CheckpointMetrics':
    names = {f.name for f in dataclasses.fields(cls)} - {'metrics'}
    return cls(metrics={k: v for k, v in stored.items() if k not in names},
               **{k: v for k, v in stored.items() if k in names})

  def result(self) -> dict[str, Any]:
    """What a run's record keeps: everything but the fields only a resume reads."""
    return {k: v for k, v in self.to_json().items() if k not in self.RESUME_ONLY}


def committed_steps(workdir: str | os.PathLike) -> list[int]:
  """The steps of the checkpoints written whole, oldest first, whatever is being written."""
  directory = paths.Path(workdir) / CHECKPOINTS_DIR
  if not directory.is_dir():
    return []
  steps = [int(e.name) for e in directory.iterdir() if e.name.isdigit()]
  if paths.is_uri(workdir):
    steps = [step for step in steps if (directory / str(step) / COMMIT_FILE).exists()]
  return sorted(steps)


def read_stored(workdir: str | os.PathLike, step: int) -> dict[str, Any]:
  """The JSON object of the checkpoint at `step`; OSError or ValueError when it cannot be read
  (missing, cut short, not an object)."""
  stored = json.loads((paths.Path(workdir) / CHECKPOINTS_DIR / str(step) / METRICS_FILE)
                      .read_text())
  if not isinstance(stored, dict):
    raise ValueError(f'not a JSON object but {type(stored).__name__}')
  return stored


def read_all(workdir: str | os.PathLike) -> list[tuple[int, CheckpointMetrics]]:
  """(step, metrics) of every committed checkpoint whose metrics can be read, oldest first."""
  found = []
  for step in committed_steps(workdir):
    try:
      found.append((step, CheckpointMetrics.from_json(read_stored(workdir, step))))
    except (OSError, ValueError, TypeError):
      continue
  return found


def latest(workdir: str | os.PathLike) -> tuple[int, CheckpointMetrics] | None:
  """The newest checkpoint whose metrics can be read, or None."""
  found = read_all(workdir)
  return found[-1] if found else None


def latest_metrics(workdir: str | os.PathLike) -> CheckpointMetrics | None:
  """The metrics of the newest checkpoint whose metrics can be read, or None."""
  found = latest(workdir)
  return found[1] if found else None


def best_of(found: list[tuple[int, CheckpointMetrics]]) -> tuple[int, CheckpointMetrics] | None:
  """The checkpoint of lowest BEST_METRIC (the latest among equals, and the latest when none has
  it), as orbax's best_step chooses."""
  if not found:
    return None
  return min(reversed(found), key=lambda entry: entry[1].metrics.get(BEST_METRIC, float('inf')))
