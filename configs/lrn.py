r"""Claim C2 (Sec. 3.3): local response normalization lowers the error.

  python -m launch.local --config=configs/lrn.py:cifar10 --root=/tmp/c2 -- \
      --config.dataset.name=image_folder --config.dataset.data_dir=$HOME/data/cifar10
  python -m alexnet_jax.report /tmp/c2

Variants: 'imagenet' (the paper's network, LRN on and off), 'imagenette' (the same at one-GPU
scale) and 'cifar10' (the paper's own small test: the four-layer net, 24x24 crops, flips).
Paper: ImageNet top-1 -1.4%, top-5 -1.2%; CIFAR-10 four-layer net 13% -> 11% test error.
Wall time: not yet timed (the Figure-1 net on whole 32x32 images takes about 220 s an epoch on
the 2-core CPU machine; cifar10 is 4 runs of 30 epochs).
"""

import ml_collections

from configs import common

VARIANTS = ('imagenet', 'imagenette', 'cifar10')


def get_config(variant: str = 'imagenet') -> ml_collections.ConfigDict:
  config = common.base(variant, VARIANTS, 'lrn')
  if variant == 'cifar10':
    # cuda-convnet's CIFAR-10 nets trained on 24x24 crops with reflections; LRN after pool1 and
    # pool2 is the switch under test, so it normalises after every pool here.
    config.dataset.random_crop = config.dataset.random_flip = True
    config.dataset.crop_size = 24
  return config


def get_sweep(variant: str = 'imagenet') -> list[dict]:
  del variant
  return common.grid(model__lrn=(True, False), seed=common.SEEDS)
