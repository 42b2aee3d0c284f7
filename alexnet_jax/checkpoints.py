"""Orbax checkpoints of a run: the train state and that step's metrics, the latest two and the
best kept; a latest checkpoint that cannot be read is set aside and the one before it is used.

Each checkpoint's metrics (`checkpoint_metrics.CheckpointMetrics`) also hold a digest of the
state it saved, checked on restore: bytes damaged inside the array files, which orbax itself
reads without complaint, then count as unreadable too.
"""

import dataclasses
import errno
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers

from alexnet_jax import parallel
from alexnet_jax import paths
from alexnet_jax.checkpoint_metrics import BEST_METRIC, CHECKPOINTS_DIR, CheckpointMetrics
from alexnet_jax.checkpoint_metrics import read_stored
from alexnet_jax.errors import DiskFullError, UserInputError

# Two, so that a latest checkpoint damaged on disk has a predecessor to fall back to.
KEEP_LATEST = 2
UNREADABLE_DIR = 'unreadable_checkpoints'  # In the workdir, beside checkpoints/.


def _leaf_digest(x: jax.Array) -> jax.Array:
  """Two checksums of a leaf's bits, wrapping uint32 sums: of its words, and of each word times
  its position (so that swapped or shifted bytes show too)."""
  words = jnp.ravel(x)
  if words.dtype == jnp.bool_:
    words = words.astype(jnp.uint8)
  unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[words.dtype.itemsize]
  words = jax.lax.bitcast_convert_type(words, unsigned).astype(jnp.uint32)
  positions = jnp.arange(1, words.size + 1, dtype=jnp.uint32)
  return jnp.stack([jnp.sum(words, dtype=jnp.uint32),
                    jnp.sum(words * positions, dtype=jnp.uint32)])


@jax.jit
def _digests(state: Any) -> list[jax.Array]:
  return [_leaf_digest(leaf) for leaf in jax.tree.leaves(state)]


def state_digest(state: Any) -> list[int]:
  """A digest of every bit of `state` (sharded or not): a list of ints, JSON-ready."""
  return [int(v) for d in jax.device_get(_digests(state)) for v in np.asarray(d)]


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
  return ocp.CheckpointManager(paths.join(paths.absolute(workdir), CHECKPOINTS_DIR),
                               options=options, item_handlers=ocp.StandardCheckpointHandler())


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metrics: CheckpointMetrics) -> None:
  """Writes `state` and `metrics` (with the state's digest) at `step`, asynchronously
  (`manager.wait_until_finished`)."""
  metrics = dataclasses.replace(metrics, state_digest=state_digest(state))
  manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics.to_json(), force=True)


# Room a checkpoint needs beside its arrays' bytes, for orbax's metadata, the metrics and the
# run's logs: a fraction of those bytes and a fixed amount.
SPACE_MARGIN = 0.05
SPACE_MARGIN_BYTES = 64 << 10


def check_space(workdir: str, state: Any, latest_good: int | None) -> None:
  """Raises DiskFullError, before orbax starts writing, when the workdir's disk has less room
  than a checkpoint of `state` needs (its bytes on this process, and the margins). An object
  store (gs://) has no such limit to ask for."""
  if paths.is_uri(workdir):
    return
  nbytes = sum(shard.data.nbytes for leaf in jax.tree.leaves(state)  # Each array once.
               for shard in getattr(leaf, 'addressable_shards', ()) if shard.replica_id == 0)
  needed = int(nbytes * (1 + SPACE_MARGIN)) + SPACE_MARGIN_BYTES
  stats = os.statvfs(workdir)
  free = stats.f_bavail * stats.f_frsize
  if free < needed:
    raise DiskFullError(disk_full_message(workdir, latest_good,
                                          f'{free / 2**20:.1f} MB free, a checkpoint needs '
                                          f'{needed / 2**20:.1f} MB'))


def disk_full_message(workdir: str, latest_good: int | None, detail: str) -> str:
  latest = (f'the latest good checkpoint is step {latest_good}' if latest_good is not None
            else 'no checkpoint was written yet')
  return (f'the disk of workdir {workdir!r} is full ({detail}); {latest}. Free some space and run '
          'the same command to resume.')


def is_disk_full(error: BaseException) -> bool:
  """Whether `error`, or an error it came from, is 'No space left on device' (orbax and
  TensorFlow wrap the OSError in errors of their own)."""
  while error is not None:
    if getattr(error, 'errno', None) == errno.ENOSPC or 'No space left on device' in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def set_aside_unreadable_metrics(workdir: str) -> list[int]:
  """Moves checkpoints whose metrics file is not JSON (cut short, overwritten) to
  WORKDIR/unreadable_checkpoints before a manager reads them all; the steps moved."""
  directory = paths.Path(workdir) / CHECKPOINTS_DIR
  moved = []
  for name in sorted(e.name for e in directory.iterdir()) if directory.is_dir() else []:
    if not name.isdigit():
      continue
    try:
      read_stored(workdir, int(name))
    except FileNotFoundError:
      continue  # No metrics written (yet): orbax decides what that checkpoint is.
    except (OSError, ValueError) as e:
      logging.warning('The metrics of the checkpoint at step %s cannot be read (%s): moving it '
                      'to %s.', name, str(e)[:200], UNREADABLE_DIR)
      _set_aside(directory, int(name))
      moved.append(int(name))
  return moved


def _set_aside(directory: str | os.PathLike, step: int) -> None:
  set_aside = paths.Path(directory).parent / UNREADABLE_DIR
  set_aside.mkdir(parents=True, exist_ok=True)
  paths.move(paths.Path(directory) / str(step), set_aside / f'step_{step}')


def _shapes(tree: Any) -> list[tuple[str, tuple[int, ...]]]:
  return [(jax.tree_util.keystr(path), tuple(leaf.shape))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def check_same_network(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> None:
  """Raises UserInputError when the checkpoint at `step` holds parameters of other shapes than
  `abstract_state`'s (another network); unreadable metadata passes, for the restore to name."""
  try:
    stored = manager.item_metadata(step)
    stored_shapes = None if stored is None else _shapes(stored['params'])
  except Exception:  # pylint: disable=broad-except
    return
  if stored_shapes is not None and stored_shapes != _shapes(abstract_state.params):
    raise UserInputError(
        f'the checkpoint at step {step} in {manager.directory} holds a different network than '
        'this config builds; use a new workdir, or the config that wrote it.')


def restore_step(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
  """The state saved at `step`, laid out as `abstract_state`, its digest checked (ValueError
  when its arrays differ from it: damaged on disk)."""
  state = manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  saved_digest = CheckpointMetrics.from_json(manager.metrics(step) or {}).state_digest
  if saved_digest is not None and saved_digest != state_digest(state):
    raise ValueError('its arrays differ from the digest saved with them (damaged on disk)')
  return state


def restore_latest(manager: ocp.CheckpointManager, abstract_state: Any,
                   is_chief: bool = True) -> tuple[Any, int] | None:
  """(state, step) of the newest readable checkpoint, laid out as `abstract_state`, or None.

  A checkpoint whose files are damaged (truncated, corrupt) is reported and moved to
  WORKDIR/unreadable_checkpoints, and the one before it is tried. A checkpoint of a different
  network is not damaged: that stops the run with an error and touches nothing.
  """
  for step in sorted(manager.all_steps(), reverse=True):
    check_same_network(manager, step, abstract_state)
    try:
      return restore_step(manager, step, abstract_state), step
    except Exception as e:  # pylint: disable=broad-except
      reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
      logging.warning('The checkpoint at step %d cannot be read (%s): moving it to %s and '
                      'trying the one before it.', step, reason, UNREADABLE_DIR)
      if is_chief:
        _set_aside(str(manager.directory), step)
      parallel.sync_processes(f'checkpoint {step} set aside')
      manager.reload()
  return None


def restore_on_host(manager: ocp.CheckpointManager, step: int) -> Any:
  """The checkpoint at `step` as written, on this process's first device (any mesh wrote it)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        manager.item_metadata(step))
  return jax.device_get(manager.restore(step, args=ocp.args.StandardRestore(target)))
