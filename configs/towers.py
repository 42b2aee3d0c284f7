r"""Claim C6 (Sec. 3.2, footnote 2): the two-tower net beats the one-GPU net, one tower with half
the kernels of conv1 to conv4 (conv5 and the fully-connected layers at their two-GPU size).

  python -m launch.local --config=configs/towers.py:imagenette --root=/tmp/c6
  python -m alexnet_jax.report /tmp/c6

Variants: 'imagenet' and 'imagenette' (one-GPU scale).
Paper: top-1 -1.7%, top-5 -1.2% for two towers (the 2012 code: 1.70 / 1.23).
Wall time: not yet timed (needs a GPU).
"""

import ml_collections

from configs import common

VARIANTS = ('imagenet', 'imagenette')


def get_config(variant: str = 'imagenet') -> ml_collections.ConfigDict:
  return common.base(variant, VARIANTS, 'towers')


def get_sweep(variant: str = 'imagenet') -> list[dict]:
  del variant
  return [{'model.num_towers': towers, 'model.width_multiplier': width, 'seed': seed}
          for towers, width in ((2, 1.0), (1, 0.5)) for seed in common.SEEDS]
