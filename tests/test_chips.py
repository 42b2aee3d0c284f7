"""The chip table that compile_check compiles for and MFU divides by."""

from alexnet_jax import chips


def test_each_chip_is_found_by_its_device_kind_and_has_its_peaks():
  assert chips.chip_of('TPU v5 lite') is chips.CHIPS['v5e']
  assert chips.chip_of('NVIDIA H100 80GB HBM3') is chips.CHIPS['h100']
  assert chips.chip_of('cpu') is None
  assert chips.peak_flops(chips.CHIPS['h100'], 'float32') == 494e12  # TF32, dense.
  assert chips.peak_flops(chips.CHIPS['h100'], 'bfloat16') == 989e12
  assert chips.peak_flops(chips.CHIPS['v5e'], 'float32') == 197e12  # As bfloat16 on a TPU.
  for name, chip in chips.CHIPS.items():
    assert isinstance(chip.float32_peak_flops, float), name
    if chip.platform == 'tpu':  # What libtpu's topology and Cloud TPU's slice names need.
      assert chip.chip_config in ('default', 'megacore') and chip.topology_prefix, name
      assert chip.accelerator_type.format(chips=8, cores=16).split('-')[-1] in ('8', '16'), name
