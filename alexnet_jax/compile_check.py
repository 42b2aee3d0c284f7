r"""Compiles a config's train and eval steps for a TPU slice (or H100 GPUs) on a host that has none.

  python -m alexnet_jax.compile_check --config=configs/default.py --topology=v5e:2x4 \
      --config.mesh.data=4 --config.mesh.model=2 [--config.compute_dtype=bfloat16]

The steps are the ones training runs on the target (`steps.make_steps`, with the op set
`models.choose_ops` picks for its platform: XLA's own gradients unless model.ops says otherwise),
lowered from abstract inputs with the run's shardings and compiled by libtpu for the topology's
devices, as MaxText's `train_compile.py` does. Per step it prints each device's memory
(arguments, outputs, temporaries) against the chip's HBM, FLOPs and bytes accessed per device,
the collectives of the compiled program by kind and mesh axis, and a lower bound on the step
time from the chip's peak FLOP/s and HBM bandwidth. A config that does not fit says so in one line, and the command exits with 2.
Needs `pip install -r requirements-tpu.txt` (libtpu); no TPU, no data. `--topology=h100:8`
compiles for eight H100s of one host through JAX's CUDA plugin instead (jax-cuda12-plugin and
jax-cuda12-pjrt of the pinned jax; no CUDA libraries, no driver), whose compiler counts no FLOPs.
"""

import collections
import dataclasses
import importlib.util
import os
import re
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

# libtpu is only a compiler here: no TPU to find, no metadata server to ask, and the CPU runs
# everything else (set before JAX or libtpu is loaded).
os.environ.setdefault('TPU_SKIP_MDS_QUERY', '1')
os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TPU_WORKER_HOSTNAMES', 'localhost')  # Else libtpu warns it found none.
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '-1')  # A GPU here would not be the target.

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from alexnet_jax import errors  # pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax.chips import CHIPS, GIB, Chip  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file('config', None, 'configs/NAME.py[:VARIANT].',
                                          lock_config=True)
_TOPOLOGY = flags.DEFINE_string('topology', 'v5e:2x2',
                                'CHIP:SHAPE, e.g. v5e:2x2, v5e:2x4, v4:2x2x1, v5p:2x2x1, v6e:2x2, '
                                'h100:8 (GPUs of one host), h100:2x8.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 0, 'Classes of the dataset; 0: from the '
                                    'config (synthetic, or the TFDS or image-folder metadata).')
_MARKDOWN = flags.DEFINE_bool('markdown', False, 'Also print one table row per step.')
_STEPS = flags.DEFINE_list('steps', ['train', 'eval'], 'Which steps to compile.')

COLLECTIVES = ('all-gather', 'all-reduce', 'reduce-scatter', 'all-to-all', 'collective-permute')


class DoesNotFit(Exception):
  """The compiled step needs more memory per device than the chip has."""


def parse_topology(topology: str) -> tuple[Chip, tuple[int, ...]]:
  """'v5e:2x4' -> (the v5e chip, (2, 4)); 'h100:2x8' -> (the H100, (2 hosts, 8 GPUs each));
  a bad string names what is allowed."""
  chip_name, _, shape = topology.partition(':')
  pattern = r'(\d+x)?\d+' if CHIPS.get(chip_name, CHIPS['v4']).platform == 'cuda' \
      else r'\d+(x\d+){1,2}'
  if chip_name not in CHIPS or not re.fullmatch(pattern, shape):
    raise errors.UserInputError(f'--topology={topology!r} is not CHIP:SHAPE with CHIP one of '
                                f'{list(CHIPS)} and SHAPE like 2x2 or 2x2x1 (TPU), 8 or 2x8 '
                                '(GPUs per host, or hosts x GPUs per host).')
  return CHIPS[chip_name], tuple(int(n) for n in shape.split('x'))


def topology_devices(chip: Chip, shape: tuple[int, ...]) -> list[Any]:
  """The devices of a TPU slice of `shape` chips (from libtpu), or of `shape` GPUs (from JAX's
  CUDA plugin), with no accelerator attached."""
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  if chip.platform == 'cuda':
    if importlib.util.find_spec('jax_plugins.xla_cuda12') is None:
      raise errors.UserInputError('the CUDA plugin of jax is not installed: pip install '
                                  'jax-cuda12-plugin==0.10.2 jax-cuda12-pjrt==0.10.2 (no CUDA '
                                  'libraries or driver needed).')
    hosts, per_host = (1, *shape) if len(shape) == 1 else shape
    return list(topologies.get_topology_desc(
        platform='cuda', target_config=chip.target_config,
        topology=f'1x{hosts}x{per_host}').devices)
  if importlib.util.find_spec('libtpu') is None:
    raise errors.UserInputError('libtpu is not installed: pip install -r requirements-tpu.txt '
                                '(the jax[tpu] extra of the pinned jax).')
  bounds = tuple(min(n, 2) for n in shape) + (1,) * (3 - len(shape))  # 2x2 chips per host.
  chips = int(np.prod(shape))
  # Else libtpu warns that it cannot tell what slice it is on.
  os.environ.setdefault('TPU_ACCELERATOR_TYPE',
                        chip.accelerator_type.format(chips=chips, cores=2 * chips))
  topology = topologies.get_topology_desc(
      platform='tpu', topology_name=f'{chip.topology_prefix}:{"x".join(map(str, shape))}',
      chip_config_name=chip.chip_config, chips_per_host_bounds=bounds, num_slices=1)
  return list(topology.devices)


def replica_groups(line: str) -> list[list[int]]:
  """The device groups of one collective in HLO text: explicit ({{0,1},{2,3}}) or iota
  ([2,2]<=[4], [2,2]<=[2,2]T(1,0)) form; [] when it has none (all devices)."""
  explicit = re.search(r'replica_groups=\{(\{[\d,]*\}(?:,\{[\d,]*\})*)\}', line)
  if explicit:
    return [[int(i) for i in g.split(',') if i] for g in re.findall(r'\{([\d,]*)\}',
                                                                      explicit.group(1))]
  iota = re.search(r'replica_groups=\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?', line)
  if iota:
    groups_shape = [int(n) for n in iota.group(1).split(',')]
    ids = np.arange(np.prod([int(n) for n in iota.group(2).split(',')])).reshape(
        [int(n) for n in iota.group(2).split(',')])
    if iota.group(3):
      ids = ids.transpose([int(n) for n in iota.group(3).split(',')])
    return ids.reshape(groups_shape).tolist()
  pairs = re.search(r'source_target_pairs=\{([^}]*(?:\},\{[^}]*)*)\}', line)
  if pairs:
    return [[int(i) for i in p.split(',')] for p in re.findall(r'\{?(\d+,\d+)\}?', pairs.group(1))]
  return []


def mesh_axis(groups: list[list[int]], mesh_shape: tuple[int, int]) -> str:
  """Which mesh axis a collective's device groups span: 'data', 'model', 'data+model', or
  'other'. Device ids count the mesh row-major (data outer, model inner)."""
  num_data, num_model = mesh_shape
  ids = np.arange(num_data * num_model).reshape(num_data, num_model)
  as_sets = lambda rows: sorted(map(sorted, rows))
  if not groups or as_sets(groups) == as_sets([ids.ravel()]):
    return 'data+model' if num_data > 1 and num_model > 1 else ('data' if num_data > 1
                                                                else 'model')
  if as_sets(groups) == as_sets(ids):
    return 'model'
  if as_sets(groups) == as_sets(ids.T):
    return 'data'
  return 'other'


# A layer's Flax module, or the hybrid scheme's gather of the conv features (blocks.whole_batch).
_LAYER = re.compile(r'op_name="[^"]*?/(conv\d+|fc\d+|local\d+|[a-z]+\d+|whole_batch)/')


_DTYPE_BYTES = {'f64': 8, 's64': 8, 'u64': 8, 'f32': 4, 's32': 4, 'u32': 4, 'bf16': 2,
                'f16': 2, 's16': 2, 'u16': 2, 's8': 1, 'u8': 1, 'pred': 1}
_ARRAY = re.compile(r'\b(' + '|'.join(_DTYPE_BYTES) + r')\[([\d,]*)\]')
# An instruction: its name, its shape (an array or a tuple of arrays) and its opcode.
_INSTRUCTION = re.compile(r'\s*(?:ROOT )?%?([\w.\-]+) = (\([^=]*?\)|\S+) ([a-z][\w\-]*)\(')


def _collective_lines(hlo_text: str):
  """(kind, its operands' names, their bytes, the line) of each collective of a compiled HLO
  module.
  Compiled HLO names its operands without their shapes: each is looked up by name."""
  lines = hlo_text.splitlines()
  shapes = {m.group(1): m.group(2) for m in map(_INSTRUCTION.match, lines) if m}
  for line in lines:
    match = re.match(r'\s*(?:ROOT )?%?\S+ = .*?\b(' + '|'.join(COLLECTIVES) + r')(-start)?\(',
                     line)
    if match:
      operands = re.findall(r'%([\w.\-]+)', line[match.end():].split(')', 1)[0])
      yield (match.group(1), operands, sum(shape_bytes(shapes.get(name, '')) for name in operands),
             line)


def shape_bytes(shape: str) -> int:
  """The bytes of the arrays an HLO shape names (an array, or a tuple of them)."""
  return sum(_DTYPE_BYTES[dtype] * int(np.prod([int(d) for d in dims.split(',') if d]))
             for dtype, dims in _ARRAY.findall(shape))


def collectives(hlo_text: str, mesh_shape: tuple[int, int]
                ) -> tuple[collections.Counter, collections.Counter]:
  """Two Counters over the collectives of a compiled HLO module, of the same keys (kind, axis,
  what): how many there are, and their operand bytes per device. `what` is the layer (Flax
  module) an all-gather or reduce-scatter came from, or how many arrays an all-reduce reduces."""
  counts, sizes = collections.Counter(), collections.Counter()
  for kind, operands, num_bytes, line in _collective_lines(hlo_text):
    if kind == 'all-reduce':  # XLA combines the gradients' reductions: say how many arrays.
      count = len(operands)
      what = f'{count} arrays' if count > 1 else '1 array'
    else:
      layer = _LAYER.search(line)
      what = layer.group(1) if layer else 'loss/update'
    key = (kind, mesh_axis(replica_groups(line), mesh_shape), what)
    counts[key] += 1
    sizes[key] += num_bytes
  return counts, sizes


@dataclasses.dataclass(frozen=True)
class StepReport:
  name: str
  compile_seconds: float
  argument_bytes: int
  output_bytes: int
  alias_bytes: int
  temp_bytes: int
  flops: float | None  # None where the compiler gives no count (the GPU compiler).
  bytes_accessed: float | None
  collectives: collections.Counter
  collective_bytes: collections.Counter  # The same keys: operand bytes per device.
  batch_size: int

  @property
  def total_bytes(self) -> int:
    """What a device holds at the step's peak: its inputs, its outputs (less those written in
    place of donated inputs) and its temporaries."""
    return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes

  def compute_seconds(self, chip: Chip) -> float:
    return (self.flops or 0.0) / chip.peak_flops

  def memory_seconds(self, chip: Chip) -> float:
    return (self.bytes_accessed or 0.0) / chip.hbm_bytes_per_s

  def bound_seconds(self, chip: Chip) -> float:
    """The step's floor from its counts; 0 when the compiler gave none."""
    return max(self.compute_seconds(chip), self.memory_seconds(chip))


def _known(value: float | None, scale: float, digits: int) -> str:
  """`value / scale` to `digits` decimals, or 'n/a' where the compiler gave no count."""
  return 'n/a' if value is None else f'{value / scale:.{digits}f}'


def _size(num_bytes: float) -> str:
  return f'{num_bytes / GIB:.2f} GiB' if num_bytes >= GIB / 10 else f'{num_bytes / 2**20:.1f} MiB'


def _count(cost: dict[str, Any], key: str) -> float | None:
  """A count of XLA's cost analysis; None where it has none (not 0: unknown is not zero)."""
  return float(cost[key]) if cost.get(key) is not None else None


def analyse(name: str, lowered: Any, compiled: Any, compile_seconds: float,
            mesh_shape: tuple[int, int], batch_size: int) -> StepReport:
  memory = compiled.memory_analysis()
  hlo = compiled.as_text()
  # The compiled program's counts; the GPU compiler gives none, then the lowered program's.
  from alexnet_jax import steps  # pylint: disable=g-import-not-at-top
  cost = steps.cost_analysis(compiled, lowered)
  return StepReport(name, compile_seconds, memory.argument_size_in_bytes,
                    memory.output_size_in_bytes, memory.alias_size_in_bytes,
                    memory.temp_size_in_bytes, _count(cost, 'flops'),
                    _count(cost, 'bytes accessed'),
                    *collectives(hlo, mesh_shape), batch_size)


def describe(step: StepReport, chip: Chip) -> str:
  """The lines compile_check prints for one step."""
  bound = step.bound_seconds(chip)
  limit = 'compute' if step.compute_seconds(chip) >= step.memory_seconds(chip) else 'HBM bandwidth'
  by_kind = collections.defaultdict(list)
  for (kind, axis, layer), count in sorted(step.collectives.items()):
    size = _size(step.collective_bytes[(kind, axis, layer)])
    by_kind[(kind, axis)].append(f'{layer} x{count} {size}' if count > 1 else f'{layer} {size}')
  totals = _collective_totals(step)
  lines = [f'{step.name} step (compiled in {step.compile_seconds:.1f} s), per device:',
           f'  memory: arguments {_size(step.argument_bytes)}, outputs {_size(step.output_bytes)} '
           f'({_size(step.alias_bytes)} of them in donated inputs), temporaries '
           f'{_size(step.temp_bytes)}; {_size(step.total_bytes)} of '
           f'{_size(chip.hbm_bytes)} HBM ({step.total_bytes / chip.hbm_bytes:.1%})',
           f'  work: {_known(step.flops, 1e9, 2)} GFLOP, {_known(step.bytes_accessed, 1e9, 3)} GB '
           'accessed',
           '  collectives: ' + ('; '.join(
               f'{kind} on {axis!r} x{totals[(kind, axis)]} ({", ".join(names)})'
               for (kind, axis), names in by_kind.items()) or 'none'),
           f'  bound: step >= {bound * 1e3:.3f} ms ({limit}), <= {step.batch_size / bound:,.0f} '
           'images/s' if bound else '  bound: none (this compiler gives no FLOP or byte counts)']
  return '\n'.join(lines)


def _collective_totals(step: StepReport, measure: str = 'count') -> collections.Counter:
  """How many collectives of each (kind, axis) the step runs (or their operand bytes), over all
  layers."""
  totals = collections.Counter()
  counts = step.collectives if measure == 'count' else step.collective_bytes
  for (kind, axis, _), count in counts.items():
    totals[(kind, axis)] += count
  return totals


MARKDOWN_HEADER = ('| config | topology | mesh | scheme | batch | dtype | step | arguments | '
                   'temporaries | per device (of HBM) | GFLOP | GB accessed | collectives: '
                   'count, kind, axis (operand bytes per device) | bound |\n'
                   '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')


def markdown_row(config_name: str, topology: str, mesh_shape: tuple[int, int], scheme: str,
                 dtype: str, step: StepReport, chip: Chip) -> str:
  """One row of the MARKDOWN_HEADER table for `step`."""
  bound = step.bound_seconds(chip)
  sizes = _collective_totals(step, 'bytes')
  return (f'| {config_name} | {topology} | ({mesh_shape[0]}, {mesh_shape[1]}) | {scheme} | '
          f'{step.batch_size} | {dtype} | {step.name} | {_size(step.argument_bytes)} | '
          f'{_size(step.temp_bytes)} | '
          f'{_size(step.total_bytes)} ({step.total_bytes / chip.hbm_bytes:.0%}) | '
          f'{_known(step.flops, 1e9, 1)} | {_known(step.bytes_accessed, 1e9, 2)} | '
          + (', '.join(f'{n} {kind} {axis} ({_size(sizes[(kind, axis)])})'
                       for (kind, axis), n in sorted(_collective_totals(step).items())) or 'none')
          + (f' | {bound * 1e3:.2f} ms, {step.batch_size / bound:,.0f} img/s |' if bound
             else ' | n/a |'))


def num_classes_of(dataset_config: Any) -> int:
  """The class count a run of this dataset config would see, without reading its images."""
  if dataset_config.name == 'synthetic':
    return dataset_config.synthetic_num_classes
  if dataset_config.name == 'image_folder':
    from alexnet_jax import paths  # pylint: disable=g-import-not-at-top
    split = paths.Path(dataset_config.data_dir or '.') / dataset_config.train_split
    if not split.is_dir():
      raise errors.UserInputError(f'{split} is not an image folder: give --num_classes.')
    return sum(1 for entry in split.iterdir() if entry.is_dir())
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.builder(dataset_config.name).info.features['label'].num_classes


def compile_steps(config: Any, devices: Sequence[Any], num_classes: int,
                  step_names: Sequence[str] = ('train', 'eval')
                  ) -> tuple[list[StepReport], tuple[int, int]]:
  """`config`'s train and (or) eval steps, compiled for `devices`, and the mesh shape."""
  from alexnet_jax import models, parallel, steps, validation  # pylint: disable=g-import-not-at-top
  validation.validate_config(config)
  try:
    mesh = parallel.create_mesh(config.mesh.data, config.mesh.model, devices)
  except ValueError as e:
    raise errors.UserInputError(str(e)) from e
  mesh_shape = (mesh.shape[parallel.DATA_AXIS], mesh.shape[parallel.MODEL_AXIS])
  validation.validate_for_mesh(config, *mesh_shape, process_count=1)
  image_shape = (config.dataset.crop_size, config.dataset.crop_size, 3)
  backend = devices[0].platform  # The target's, not this host's: models.choose_ops.
  model = models.create_model(config.model, num_classes, scheme=config.mesh.scheme,
                              backend=backend)
  _, abstract, specs = steps.train_state_shapes(config, model, image_shape)
  train_fn, eval_fn = steps.make_steps(config, model, mesh, specs, steps_per_epoch=1000)
  batch = lambda size, is_train: steps.abstract_batch(config.dataset, size, mesh, is_train,
                                                      model.axes)
  state = steps.with_shardings(abstract, specs, mesh)
  reports = []
  for name, fn, args, size in (('train', train_fn, (state, batch(config.batch_size, True)),
                                config.batch_size),
                               ('eval', eval_fn, (state.params, batch(config.eval_batch_size,
                                                                      False)),
                                config.eval_batch_size)):
    if name not in step_names:
      continue
    start = time.perf_counter()
    try:
      lowered = fn.lower(*args)
      compiled = lowered.compile()
    except Exception as e:  # pylint: disable=broad-except
      if 'RESOURCE_EXHAUSTED' in str(e) or 'Ran out of memory' in str(e):
        raise DoesNotFit(f'{name} step: {_first_line_about_memory(str(e))}') from e
      raise
    reports.append(analyse(name, lowered, compiled, time.perf_counter() - start, mesh_shape,
                           size))
  return reports, mesh_shape


def _first_line_about_memory(message: str) -> str:
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  return next((line for line in lines if 'memory' in line.lower() or 'hbm' in line.lower()),
              lines[0] if lines else message)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    sys.exit(check(_CONFIG.value, _TOPOLOGY.value, _STEPS.value, _NUM_CLASSES.value,
                   _MARKDOWN.value))
  except errors.UserInputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(errors.EXIT_BAD_INPUT)


def check(config: Any, topology: str, step_names: Sequence[str] = ('train', 'eval'),
          num_classes: int = 0, markdown: bool = False) -> int:
  """Compiles and describes `config`'s steps for `topology`; the exit code (2: does not fit)."""
  chip, shape = parse_topology(topology)
  devices = topology_devices(chip, shape)
  print(f'{topology}: {len(devices)} x {devices[0].device_kind}; {chip.name}: '
        f'{_size(chip.hbm_bytes)} HBM, {chip.peak_flops / 1e12:.0f} TFLOP/s (bfloat16), '
        f'{chip.hbm_bytes_per_s / 1e9:.0f} GB/s ({chip.source})')
  unknown = set(step_names) - {'train', 'eval'}
  if unknown:
    raise errors.UserInputError(f'--steps={",".join(step_names)}: {sorted(unknown)} are not steps; '
                                "use 'train' and/or 'eval'.")
  num_classes = num_classes or num_classes_of(config.dataset)
  try:
    reports, mesh_shape = compile_steps(config, devices, num_classes, step_names)
  except DoesNotFit as e:
    print(f'error: does not fit {topology}: {e}', file=sys.stderr)
    return errors.EXIT_BAD_INPUT
  print(f'{config.model.name}, {num_classes} classes, crops {config.dataset.crop_size}, mesh '
        f'data={mesh_shape[0]} x model={mesh_shape[1]}, scheme {config.mesh.scheme}, '
        f'{config.compute_dtype}')
  for step in reports:
    print(describe(step, chip))
  if markdown:
    for step in reports:
      print(markdown_row(config.experiment, topology, mesh_shape, config.mesh.scheme,
                         config.compute_dtype, step, chip))
  too_big = [step for step in reports if step.total_bytes > chip.hbm_bytes]
  if too_big:
    step = too_big[0]
    print(f'error: does not fit {topology}: the {step.name} step needs '
          f'{_size(step.total_bytes)} per device (arguments {_size(step.argument_bytes)}, '
          f'temporaries {_size(step.temp_bytes)}) of the {_size(chip.hbm_bytes)} of a '
          f'{chip.name}.', file=sys.stderr)
    return errors.EXIT_BAD_INPUT
  return 0


if __name__ == '__main__':
  app.run(main, flags_parser=errors.config_flags_parser(flags.FLAGS))
