"""Orbax checkpoints of a run: the train state and that step's metrics, the latest two and the
best kept; a latest checkpoint that cannot be read is set aside and the one before it is used."""

import math
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers

from alexnet_jax.errors import UserInputError

BEST_METRIC = 'eval_top1_error'  # Lower is better.
# The key, in each checkpoint's metrics, of the run's per-evaluation curves: {name: [values]}.
HISTORY = 'history'
# Two, so that a latest checkpoint damaged on disk has a predecessor to fall back to.
KEEP_LATEST = 2
UNREADABLE_DIR = 'unreadable_checkpoints'  # In the workdir, beside checkpoints/.


def _negated_best_metric(metrics: dict[str, Any]) -> float:
  return -metrics.get(BEST_METRIC, math.inf)


def create_manager(workdir: str, read_only: bool = False) -> ocp.CheckpointManager:
  """A manager for WORKDIR/checkpoints that keeps the latest two and the best checkpoint.

  Policies, not `best_fn` with `max_to_keep`: in orbax 0.12 that deletes the latest checkpoint
  whenever it is not among the best, and a resumed run would lose its steps.
  """
  policy = checkpoint_managers.AnyPreservationPolicy([
      checkpoint_managers.LatestN(n=KEEP_LATEST),
      checkpoint_managers.BestN(get_metric_fn=_negated_best_metric, n=1,
                                keep_checkpoints_without_metrics=False),
  ])
  # best_fn only makes orbax write each step's metrics into the checkpoint (and read them back
  # on restart, so the best survives a resume); the policy decides what is kept.
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=not read_only,
                                         read_only=read_only, best_fn=_negated_best_metric,
                                         best_mode='max')
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options, item_handlers=ocp.StandardCheckpointHandler())


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metrics: dict[str, float]) -> None:
  """Writes `state` and `metrics` at `step` (asynchronously; `manager.wait_until_finished`)."""
  manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)


def _shapes(tree: Any) -> list[tuple[str, tuple[int, ...]]]:
  return [(jax.tree_util.keystr(path), tuple(leaf.shape))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any,
                   is_chief: bool = True) -> tuple[Any, int] | None:
  """(state, step) of the newest readable checkpoint, laid out as `abstract_state`, or None.

  A checkpoint whose files are damaged (truncated, corrupt) is reported and moved to
  WORKDIR/unreadable_checkpoints, and the one before it is tried. A checkpoint of a different
  network is not damaged: that stops the run with an error and touches nothing.
  """
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      stored = manager.item_metadata(step)
      stored_shapes = None if stored is None else _shapes(stored['params'])
    except Exception:  # pylint: disable=broad-except
      stored_shapes = None  # Unreadable metadata: the restore below says what is wrong.
    if stored_shapes is not None and stored_shapes != _shapes(abstract_state.params):
      raise UserInputError(
          f'the checkpoint at step {step} in {manager.directory} holds a different network than '
          'this config builds; use a new workdir, or the config that wrote it.')
    try:
      return manager.restore(step, args=ocp.args.StandardRestore(abstract_state)), step
    except Exception as e:  # pylint: disable=broad-except
      reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
      logging.warning('The checkpoint at step %d cannot be read (%s): moving it to %s and '
                      'trying the one before it.', step, reason, UNREADABLE_DIR)
      if is_chief:
        set_aside = os.path.join(os.path.dirname(str(manager.directory)), UNREADABLE_DIR)
        os.makedirs(set_aside, exist_ok=True)
        shutil.move(os.path.join(str(manager.directory), str(step)),
                    os.path.join(set_aside, f'step_{step}'))
      if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
        multihost_utils.sync_global_devices(f'checkpoint {step} set aside')
      manager.reload()
  return None


def restore_on_host(manager: ocp.CheckpointManager, step: int) -> Any:
  """The checkpoint at `step` as written, on this process's first device (any mesh wrote it)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        manager.item_metadata(step))
  return jax.device_get(manager.restore(step, args=ocp.args.StandardRestore(target)))
