r"""The network as Krizhevsky's 2012 code (cuda-convnet) trained it, where it differs from the
paper's text (configs/default.py, the paper, stays the default everywhere else).

  python -m alexnet_jax.main --config=configs/cuda_convnet.py --workdir=/tmp/alexnet_2012 \
      --config.dataset.data_dir=$TFDS_DATA_DIR

Variants: 'imagenet', 'imagenette' (--config=configs/cuda_convnet.py:imagenette).
Wall time: not yet timed (needs a GPU).

The differences, each a switch of configs/default.py:
  - LRN: alpha divides by n, alpha / n * sum a^2 (effective 2e-5), as torch's LocalResponseNorm
    does; the paper writes alpha * sum a^2 (model.lrn_alpha_convention).
  - conv1: LRN and pooling see the maps before the ReLU, which comes after pooling; the paper
    has ReLU, LRN, pool (model.conv1_order).
  - init: conv3 to conv5 weights ~ N(0, 0.03^2), the rest 0.01 (model.init_std_overrides).
  - biases: twice the weights' learning rate and no weight decay (bias_lr_multiplier,
    decay_biases).
  - after LRN2: a spatial contrast normalization too (model.conv2_contrast_norm), with
    cuda-convnet's default constants: the 2012 ImageNet layer file's size, scale and power are
    not known to this project (its public example layer files are the CIFAR-10 nets').
  - PCA lighting: the image is scaled by 1 / 1.1 after the noise is added
    (dataset.scale_after_lighting).
  - learning rate: divided by 10 near epochs 24, 51 and 78 of 91, not at validation plateaus
    (lr_schedule=piecewise, lr_boundaries_epochs).
  - input: 224x224 crops with conv1 padded by 2 pixels before and 1 after, which gives the
    paper's 55x55 conv1 maps (model.conv1_padding, dataset.crop_size).

Reported by that code: 40.66% top-1 / 18.21% top-5 on ILSVRC-2012 val (10-crop), and 39.02 /
18.30 centre-only for a later run; the one-GPU net 39.17 / 18.23 against the two-GPU net, a
1.70 / 1.23 gap. The paper reports 40.7 / 18.2.
"""

import ml_collections

from configs import common

VARIANTS = ('imagenet', 'imagenette')


def get_config(variant: str = 'imagenet') -> ml_collections.ConfigDict:
  config = common.base(variant, VARIANTS, 'cuda_convnet')
  config.model.lrn_alpha_convention = 'cuda_convnet'
  config.model.conv1_order = 'norm_pool_relu'
  config.model.conv2_contrast_norm = True
  config.model.init_std_overrides = (('conv3', 0.03), ('conv4', 0.03), ('conv5', 0.03))
  config.model.conv1_padding = 'cuda_convnet'
  config.dataset.crop_size = 224
  config.dataset.scale_after_lighting = 1 / 1.1
  config.bias_lr_multiplier = 2.0
  config.decay_biases = False
  config.lr_schedule = 'piecewise'
  if variant == 'imagenet':
    config.num_epochs = 91
    config.lr_boundaries_epochs = (24, 51, 78)
  else:  # The same cuts, as fractions of the variant's epochs.
    config.lr_boundaries_epochs = tuple(round(e * config.num_epochs / 91) for e in (24, 51, 78))
  return config


def get_sweep(variant: str = 'imagenet') -> list[dict]:
  del variant
  return [{'seed': 0}]
