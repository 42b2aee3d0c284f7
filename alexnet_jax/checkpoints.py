"""Orbax checkpoints of a run: the train state and that step's metrics, latest and best kept."""

import math
import os
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

BEST_METRIC = 'eval_top1_error'  # Lower is better.


def _negated_best_metric(metrics: dict[str, Any]) -> float:
  return -metrics.get(BEST_METRIC, math.inf)


def create_manager(workdir: str) -> ocp.CheckpointManager:
  """A manager for WORKDIR/checkpoints that keeps the latest and the best checkpoint.

  Two policies, not `best_fn` with `max_to_keep=1`: in orbax 0.12 that deletes the latest
  checkpoint whenever it is not the best, and a resumed run would lose its steps.
  """
  policy = checkpoint_managers.AnyPreservationPolicy([
      checkpoint_managers.LatestN(n=1),
      checkpoint_managers.BestN(get_metric_fn=_negated_best_metric, n=1,
                                keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metrics: dict[str, float]) -> None:
  """Writes `state` and `metrics` at `step` (asynchronously; `manager.wait_until_finished`)."""
  manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any) -> tuple[Any, int] | None:
  """(state, step) of the latest checkpoint, laid out as `abstract_state`, or None."""
  step = manager.latest_step()
  if step is None:
    return None
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state)), step
