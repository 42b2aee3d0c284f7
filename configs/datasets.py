"""The smaller datasets the claim configs run on, each a function that moves the paper's config
(configs/default.py) to it. It imports no other config, so that the import graph of configs/ is
a tree: default and common import it.
"""

import ml_collections


def imagenette(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The paper's network and training on Imagenette (10 ImageNet classes, 9,469 training and
  3,925 validation images): an ImageNet-scale claim at a size one GPU trains in about an hour.
  """
  config.dataset.name = 'imagenette/320px-v2'
  config.dataset.eval_split = 'validation'
  config.num_epochs = 40
  config.checkpoint_every_steps = 500
  config.log_every_steps = 20
  return config


def cifar10_figure1_net(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The four-layer net of Figure 1 on CIFAR-10 (the image-folder layout or TFDS 'cifar10')."""
  config.dataset.name = 'cifar10'
  config.dataset.eval_split = 'test'
  config.dataset.image_size = 32
  config.dataset.crop_size = 32
  config.dataset.random_crop = False
  config.dataset.random_flip = False
  config.dataset.pca_lighting = False
  config.dataset.mean_rgb = (125.3, 123.0, 113.9)  # CIFAR-10 training set, 0-255 scale.
  config.dataset.ten_crop_eval = False  # Whole 32x32 images: no crops to average over.
  config.dataset.cache = True
  config.dataset.shuffle_buffer = 50_000
  config.model.name = 'cifar_net'
  config.model.conv_features = (32, 32, 64)
  config.model.kernel_size = 5
  config.model.fc_features = ()  # The classifier straight after conv3.
  config.model.dropout_rate = 0.0
  config.model.num_towers = 1
  config.model.lrn = False
  config.model.bias_one_layers = ()
  config.weight_decay = 0.0
  # Figure 1 tunes the rate per net. The ImageNet rate, 0.01, diverges on this net at the 0-255
  # pixel scale (loss 8.6 and 85% training error after 50 steps on CIFAR-10); 0.001 trains.
  config.learning_rate = 0.001
  config.lr_schedule = 'piecewise'
  config.lr_boundaries_epochs = ()  # A constant learning rate.
  config.num_epochs = 30
  config.log_every_steps = 50
  config.checkpoint_every_steps = 200
  config.eval_batch_size = 500
  return config


# Variant name (--config=configs/NAME.py:VARIANT) -> the function that moves a config there.
VARIANTS = {'imagenet': lambda config: config, 'imagenette': imagenette,
            'cifar10': cifar10_figure1_net}
