r"""Claim C1 (Figure 1): the four-layer CIFAR-10 net with ReLUs reaches 25% training error ~6x
faster than with tanh. No regularization of any kind: no weight decay, dropout or augmentation.

One run (ReLU; add --config.model.activation=tanh for the other curve):
  python -m alexnet_jax.main --config=configs/relu_vs_tanh.py --workdir=/tmp/c1_relu \
      --config.dataset.name=image_folder --config.dataset.data_dir=$HOME/data/cifar10
The sweep (both activations at three learning rates, two seeds) and its report:
  python -m launch.local --config=configs/relu_vs_tanh.py --root=/tmp/c1 -- \
      --config.dataset.name=image_folder --config.dataset.data_dir=$HOME/data/cifar10
  python -m alexnet_jax.report /tmp/c1

Wall time: about 220 s per epoch on a 2-core CPU (this project's machine; 3 epochs reach 33%
training error, 36% test error); each run stops at 25% training error or after num_epochs.
Paper: about 6 times fewer epochs to 25% training error with ReLU (Figure 1; learning rates
tuned per net). The network is cuda-convnet's 18% CIFAR-10 net: three 5x5 convolutions (32, 32,
64 kernels), each followed by pooling, then a 10-way classifier; max pooling throughout (the 2012
config averaged in the last two pools).
"""

import ml_collections

from configs import common

TARGET_TRAIN_ERROR = 0.25  # Figure 1's dashed line.


def get_config() -> ml_collections.ConfigDict:
  config = common.base('cifar10', ('cifar10',), 'relu_vs_tanh')
  config.stop_at_train_error = TARGET_TRAIN_ERROR
  return config


def get_sweep() -> list[dict]:
  return common.grid(model__activation=('relu', 'tanh'), learning_rate=(0.0005, 0.001, 0.002),
                     seed=common.SEEDS)
