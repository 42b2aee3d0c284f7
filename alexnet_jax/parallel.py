"""The ('data', 'model') device mesh, the parallelism schemes, partition specs, and the
shard_map wrapper.

A scheme (config.mesh.scheme) says where a network's work lies on the mesh (`Axes`):
- 'towers' (the paper's two GPUs): every layer's output channels (the last axis of its kernel,
  and its bias) are split over 'model', except the classifier's, which every model shard
  computes whole so that the loss needs no further communication; the batch is split over
  'data'.
- 'data': every parameter on every device, the batch split over all of them.
- 'hybrid' (Krizhevsky 2014, "One weird trick"): the convolutional layers data parallel over
  every device; before the first fully-connected layer the conv features of the whole batch are
  gathered to every device, and each computes its slice of each fc layer's outputs for all of
  them; the classifier takes this device's examples again, whole.
The same code runs every scheme and mesh shape, the single device included.
"""

import os
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'
MODEL_AXIS = 'model'
ALL_AXES = (DATA_AXIS, MODEL_AXIS)  # Every device of the mesh, as one axis.
REPLICATED = P()


class Axes(NamedTuple):
  """The mesh axis (a name, a tuple of names, or None: not split) over which a network splits the
  examples of its convolutional layers (`batch`), their output channels (`conv`), the examples
  of its hidden fully-connected layers (`fc_batch`) and their outputs (`fc`)."""
  batch: Any = None
  conv: Any = None
  fc_batch: Any = None
  fc: Any = None

  def gathers_batch(self) -> bool:
    """Whether the fc layers see the whole batch (hybrid)."""
    return self.fc_batch != self.batch


SCHEMES: dict[str, Axes] = {
    'towers': Axes(batch=DATA_AXIS, conv=MODEL_AXIS, fc_batch=DATA_AXIS, fc=MODEL_AXIS),
    'data': Axes(batch=ALL_AXES, fc_batch=ALL_AXES),
    'hybrid': Axes(batch=ALL_AXES, fc_batch=None, fc=ALL_AXES),
}


def batch_spec(axes: Axes) -> P:
  """How a batch's arrays (examples first) are laid out on the mesh."""
  return P(axes.batch)


def sum_over_batch(x: jax.Array, axes: Axes) -> jax.Array:
  """Inside shard_map: the sum over every device's examples of a per-device value, the same on
  every device (copies on the axes that do not split the batch are averaged)."""
  batch_axes = axes.batch if isinstance(axes.batch, tuple) else (axes.batch,)
  others = tuple(axis for axis in ALL_AXES if axis not in batch_axes)
  x = lax.psum(x, axes.batch)
  return lax.pmean(x, others) if others else x


def mesh_shape(num_data: int, num_model: int, num_devices: int) -> tuple[int, int]:
  """Resolves -1 (all remaining devices); an explicit shape may use fewer than all devices."""
  asked_shape = (num_data, num_model)
  asked = f'config.mesh.data={num_data} x config.mesh.model={num_model}'
  if num_data == -1 and num_model == -1:
    raise ValueError('config.mesh.data and config.mesh.model cannot both be -1.')
  if (num_data < 1 and num_data != -1) or (num_model < 1 and num_model != -1):
    raise ValueError(f'{asked}: each must be a positive number of devices, or -1 for all the '
                     'remaining ones.')
  if num_data == -1:
    num_data = num_devices // num_model
  if num_model == -1:
    num_model = num_devices // num_data
  if num_data < 1 or num_model < 1 or num_data * num_model > num_devices:
    resolved = f' ({num_data} x {num_model})' if (num_data, num_model) != asked_shape else ''
    raise ValueError(f'{asked}{resolved} does not fit the {num_devices} devices.')
  return num_data, num_model


def cpu_device_count(requested: int, num_cores: int, batch_sizes: tuple[int, ...]) -> int:
  """`requested` CPU devices, or for -1 the most, up to one per core, that divide every batch
  size (config.mesh.cpu_devices)."""
  if requested > 0:
    return requested
  return max(n for n in range(1, max(num_cores, 1) + 1)
             if all(size % n == 0 for size in batch_sizes))


def set_cpu_devices(config: Any, environ: Mapping[str, str] = os.environ) -> int | None:
  """Splits the CPU into config.mesh.cpu_devices devices unless XLA_FLAGS already does; the
  count set, or None. Must run before anything touches the devices."""
  if 'xla_force_host_platform_device_count' in environ.get('XLA_FLAGS', ''):
    return None
  count = cpu_device_count(config.mesh.cpu_devices, os.cpu_count() or 1,
                           (config.batch_size, config.eval_batch_size))
  jax.config.update('jax_num_cpu_devices', count)
  return count


def create_mesh(num_data: int, num_model: int, devices: Sequence[Any] | None = None) -> Mesh:
  """A ('data', 'model') mesh over the first data x model of `devices` (default: this job's;
  compile_check passes a TPU topology's)."""
  devices = jax.devices() if devices is None else list(devices)
  shape = mesh_shape(num_data, num_model, len(devices))
  return jax.make_mesh(shape, (DATA_AXIS, MODEL_AXIS),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2,
                       devices=devices[:shape[0] * shape[1]])


def param_specs(params: Any, replicated_layers: tuple[str, ...], axes: Axes) -> Any:
  """Each leaf's output channels (its last axis) over `axes.fc` for a fully-connected layer (a
  matrix kernel), over `axes.conv` for any other; replicated where that is None, and for the
  layers computed whole."""

  def spec(path, leaf):
    layer = path[0].key
    axis = axes.fc if params[layer]['kernel'].ndim == 2 else axes.conv
    if layer in replicated_layers or axis is None:
      return REPLICATED
    return P(*([None] * (leaf.ndim - 1)), axis)

  return jax.tree_util.tree_map_with_path(spec, params)


def shardings(mesh: Mesh, specs: Any) -> Any:
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                      is_leaf=lambda x: isinstance(x, P))


def sharded_step(fn: Callable, mesh: Mesh, in_specs: tuple, out_specs: Any,
                 donate_argnums: tuple[int, ...] = ()) -> Callable:
  """`fn` under jax.shard_map over `mesh`, jitted."""
  return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs),
                 donate_argnums=donate_argnums)


def sync_processes(name: str) -> None:
  """Waits until every process of a multi-process run gets here (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def gather_from_processes(value: int) -> list[int]:
  """Every process's `value`, in process order (a collective: every process must call it)."""
  if jax.process_count() == 1:
    return [value]
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return [int(v) for v in multihost_utils.process_allgather(np.int64(value))]


def _multiprocess_environment(environ: Mapping[str, str]) -> str | None:
  """The cluster this process was started in, when it launched several processes."""
  if int(environ.get('SLURM_NTASKS', '1')) > 1 and 'SLURM_PROCID' in environ:
    return 'SLURM'
  if len(environ.get('TPU_WORKER_HOSTNAMES', '').split(',')) > 1:
    return 'Cloud TPU'
  return None


def initialize_distributed(config: Any, environ: Mapping[str, str] = os.environ) -> str | None:
  """Starts jax.distributed when `config` (a `config.distributed` block) or the cluster asks.

  Returns how it was started, or None for a single process. Must run before anything touches
  the devices.
  """
  if config.initialize == 'off':
    return None
  jax.config.update('jax_cpu_collectives_implementation', config.cpu_collectives)
  if config.coordinator_address:
    jax.distributed.initialize(config.coordinator_address, config.num_processes,
                               config.process_id)
    return f'coordinator {config.coordinator_address}'
  cluster = _multiprocess_environment(environ)
  if cluster is not None or config.initialize == 'on':
    jax.distributed.initialize()  # Auto-detects the coordinator, process count and id.
    return cluster or 'auto-detected'
  return None
