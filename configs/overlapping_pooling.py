r"""Claim C3 (Sec. 3.4): overlapping pooling (z=3, s=2) lowers the error against z=2, s=2.

  python -m launch.local --config=configs/overlapping_pooling.py:imagenette --root=/tmp/c3
  python -m alexnet_jax.report /tmp/c3

Variants: 'imagenet' (the paper's setting) and 'imagenette' (one-GPU scale). With 2/2 pooling the
paper's layer sizes change (55 -> 27 -> 13 -> 6 as well; the 227 input is kept).
Paper: top-1 -0.4%, top-5 -0.3%, and nets with overlapping pooling overfit slightly less.
Wall time: not yet timed (needs a GPU).
"""

import ml_collections

from configs import common

VARIANTS = ('imagenet', 'imagenette')


def get_config(variant: str = 'imagenet') -> ml_collections.ConfigDict:
  return common.base(variant, VARIANTS, 'overlapping_pooling')


def get_sweep(variant: str = 'imagenet') -> list[dict]:
  del variant
  return [{'model.pool_size': size, 'seed': seed} for size in (3, 2) for seed in common.SEEDS]
