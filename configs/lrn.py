r"""Claim C2 (Sec. 3.3): local response normalization lowers the error.

  python -m launch.local --config=configs/lrn.py:cifar10 --root=/tmp/c2 -- \
      --config.dataset.name=image_folder --config.dataset.data_dir=$HOME/data/cifar10
  python -m alexnet_jax.report /tmp/c2

Variants: 'imagenet' (the paper's network, LRN on and off), 'imagenette' (the same at one-GPU
scale) and 'cifar10' (the four-layer Figure-1 net, 24x24 crops, flips, LRN after each pool on
and off).

The paper's CIFAR-10 numbers (13% -> 11%) came from cuda-convnet's conv-local nets
(configs/cuda_convnet_cifar.py:13pct and :11pct); the sweep 'cuda_convnet' trains the two on
the same data, seeds and shortened schedule (variants 'cuda_convnet_13pct', 'cuda_convnet_11pct'):
  python -m launch.local --config=configs/lrn.py:cuda_convnet --root=/tmp/c2_cifar -- \
      --config.dataset.name=image_folder --config.dataset.data_dir=$HOME/data/cifar10
Shortened schedule: the files' methodology runs ~520 epochs (350 on four of the five training
batches, 150 on all, then 10 + 10 at the rate / 10 and / 100); here CUDA_CONVNET_EPOCHS at
epsW 0.001 on all 50,000 training images, then CUDA_CONVNET_TAIL_EPOCHS at / 10 and as many at
/ 100, so the gap, not the absolute errors, is what compares with the paper's 2 points; the
ten-view test runs every CUDA_CONVNET_EVAL_EVERY_EPOCHS epochs.

Paper: ImageNet top-1 -1.4%, top-5 -1.2%; CIFAR-10 four-layer net 13% -> 11% test error.
Wall time (cuda_convnet, 2 cores, no accelerator): the 13% net 61 min and the 11% net 95 min on
an Intel Xeon, 42-45 and 53 min on an AMD EPYC Zen 5; the other variants are not yet timed.
Result (cuda_convnet, ten views; records in results/c2_cifar10): 19.63% -> 19.01% test top-1
with seed 0, 19.61% -> 19.54% with seed 1, a mean of 0.35 of the paper's 2 points: 'direction
only' (docs/cuda_convnet_cifar.md).
"""

import ml_collections

from configs import common, cuda_convnet_cifar

VARIANTS = ('imagenet', 'imagenette', 'cifar10', 'cuda_convnet_13pct', 'cuda_convnet_11pct')
CUDA_CONVNET_EPOCHS = 30
CUDA_CONVNET_TAIL_EPOCHS = 5
# The ten-view test of 10,000 images takes longer here than an epoch of training (the 11% net:
# 2.0-2.4 min against 1.8), so the sweep tests every 5 epochs, the end of each rate among them.
CUDA_CONVNET_EVAL_EVERY_EPOCHS = 5
CUDA_CONVNET_SEEDS = (0, 1)  # Seed 1 measures the spread that one pair cannot.


def get_config(variant: str = 'imagenet') -> ml_collections.ConfigDict:
  if variant.startswith('cuda_convnet_'):
    config = cuda_convnet_cifar.get_config(variant.removeprefix('cuda_convnet_'))
    config.experiment = 'lrn'
    config.lr_boundaries_epochs = (CUDA_CONVNET_EPOCHS,
                                   CUDA_CONVNET_EPOCHS + CUDA_CONVNET_TAIL_EPOCHS)
    config.num_epochs = CUDA_CONVNET_EPOCHS + 2 * CUDA_CONVNET_TAIL_EPOCHS
    config.eval_every_epochs = CUDA_CONVNET_EVAL_EVERY_EPOCHS
    return config
  config = common.base(variant, VARIANTS[:3], 'lrn')
  if variant == 'cifar10':
    # cuda-convnet's CIFAR-10 nets trained on 24x24 crops with reflections; LRN after pool1 and
    # pool2 is the switch under test, so it normalises after every pool here.
    config.dataset.random_crop = config.dataset.random_flip = True
    config.dataset.crop_size = 24
  return config


def get_sweep(variant: str = 'imagenet') -> list[dict]:
  if variant == 'cuda_convnet':  # The 13% net against the 11% net.
    return [{'variant': f'cuda_convnet_{net}', 'seed': seed}
            for seed in CUDA_CONVNET_SEEDS for net in ('13pct', '11pct')]
  return common.grid(model__lrn=(True, False), seed=common.SEEDS)
