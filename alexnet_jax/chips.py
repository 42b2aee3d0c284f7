"""The accelerators this project knows the figures of: what compile_check compiles for and
measures against, and what a training run's MFU is counted against."""

import dataclasses

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
  """An accelerator's figures, as its maker's documentation gives them: peak FLOP/s of dense
  bfloat16 matmuls (on a TPU float32 runs no faster: XLA's default precision multiplies in
  bfloat16 passes), HBM and its bandwidth."""
  name: str
  hbm_bytes: int
  peak_flops: float
  hbm_bytes_per_s: float
  source: str
  device_kinds: tuple[str, ...] = ()  # What jax's Device.device_kind calls it.
  # Dense float32 matmuls where they run slower than bfloat16 (a GPU's TF32); 0: as bfloat16.
  float32_peak_flops: float = 0.0
  chip_config: str = ''  # libtpu's chip_config_name: v4 and v5p chips are one 'megacore' device.
  topology_prefix: str = ''  # libtpu's name of the generation.
  accelerator_type: str = ''  # Cloud TPU's name of a slice, {n}: its chips (v4, v5p: its cores).
  platform: str = 'tpu'
  target_config: str = ''  # For 'cuda': XLA's TargetConfig of the GPU (a text proto).


# XLA's description of an H100 SXM (xla/tools/hlo_opt/gpu_specs' fields), which the GPU compiler
# reads instead of asking a device.
H100_TARGET_CONFIG = """
gpu_device_info {
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152
  shared_memory_per_core: 233472 threads_per_core_limit: 2048 core_count: 132
  fpus_per_core: 128 block_dim_limit_x: 2147483647 block_dim_limit_y: 65535
  block_dim_limit_z: 65535 memory_bandwidth: 3352320000000 l2_cache_size: 52428800
  clock_rate_ghz: 1.98 device_memory_size: 84929347584 shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 } registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 7 }
runtime_version { major: 12 minor: 8 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""


CHIPS = {
    'v4': Chip('TPU v4', 32 * GIB, 275e12, 1200e9, 'cloud.google.com/tpu/docs/v4', ('TPU v4',),
               chip_config='megacore', topology_prefix='v4', accelerator_type='v4-{cores}'),
    'v5e': Chip('TPU v5e', 16 * GIB, 197e12, 819e9, 'cloud.google.com/tpu/docs/v5e',
                ('TPU v5 lite', 'TPU v5e'),
                chip_config='default', topology_prefix='v5e', accelerator_type='v5litepod-{chips}'),
    'v5p': Chip('TPU v5p', 95 * 10 ** 9, 459e12, 2765e9, 'cloud.google.com/tpu/docs/v5p',
                ('TPU v5', 'TPU v5p'),
                chip_config='megacore', topology_prefix='v5', accelerator_type='v5p-{cores}'),
    'v6e': Chip('TPU v6e', 32 * 10 ** 9, 918e12, 1640e9, 'cloud.google.com/tpu/docs/v6e',
                ('TPU v6 lite', 'TPU v6e'),
                chip_config='default', topology_prefix='v6e', accelerator_type='v6e-{chips}'),
    # Dense bfloat16 Tensor Core peak (the datasheet's 1,979 counts 2:4 sparsity); the memory
    # is the TargetConfig's.
    'h100': Chip('NVIDIA H100 SXM', 84929347584, 989e12, 3.35e12,
                 'NVIDIA H100 Tensor Core GPU datasheet', ('NVIDIA H100 80GB HBM3',),
                 float32_peak_flops=494e12, platform='cuda',
                 target_config=H100_TARGET_CONFIG),
}


def chip_of(device_kind: str) -> Chip | None:
  """The chip a device is (jax's Device.device_kind), or None when the table has no such chip
  (a CPU, another accelerator)."""
  return next((chip for chip in CHIPS.values() if device_kind in chip.device_kinds), None)


def peak_flops(chip: Chip, compute_dtype: str) -> float:
  """The chip's peak FLOP/s for config.compute_dtype ('float32' or 'bfloat16')."""
  return chip.float32_peak_flops if compute_dtype == 'float32' and chip.float32_peak_flops \
      else chip.peak_flops
