r"""Claim C4 (Sec. 4.1): PCA lighting noise lowers the top-1 error by 1% or more.

  python -m launch.local --config=configs/pca_lighting.py:imagenette --root=/tmp/c4
  python -m alexnet_jax.report /tmp/c4

Variants: 'imagenet' and 'imagenette' (one-GPU scale; its pixels are ImageNet's, so the default
ImageNet eigenvalues and eigenvectors apply).
Paper: "reduces the top-1 error rate by over 1%".
Wall time: not yet timed (needs a GPU).
"""

import ml_collections

from configs import common

VARIANTS = ('imagenet', 'imagenette')


def get_config(variant: str = 'imagenet') -> ml_collections.ConfigDict:
  return common.base(variant, VARIANTS, 'pca_lighting')


def get_sweep(variant: str = 'imagenet') -> list[dict]:
  del variant
  return common.grid(dataset__pca_lighting=(True, False), seed=common.SEEDS)
