r"""The one-GPU net of AlexNet's sequel, Krizhevsky, "One weird trick for parallelizing
convolutional neural networks" (arXiv 1404.5997, 2014): cuda-convnet2's
`layers/layers-223-1gpu.cfg` with `layer-params-223-ce2-1gpu.cfg`, in convnet_layers' spec
format, and the torchvision shape of it. Meant for the parallelism schemes (config.mesh.scheme,
`towers`, `data` or `hybrid`: the paper's own):

  python -m alexnet_jax.compile_check --config=configs/weird_trick.py --topology=v5e:2x4 \
      --config.mesh.scheme=hybrid
  python -m alexnet_jax.main --config=configs/weird_trick.py --config.mesh.scheme=hybrid \
      --config.dataset.data_dir=DIR

Variants:
- 'cuda_convnet2' (default): conv1 64 kernels of 11x11 at stride 4, cross-map normalization (size
  5, scale 1e-4, pow 0.75, minDiv 2: the paper's LRN with k=2, alpha 1e-4 / 5) before pooling
  with the ReLU after it; conv2 192 of 5x5 (initB 1), normalization, pooling; conv3 384, conv4
  256 (initB 1), conv5 256 (initB 1; its ReLU after pool3), all 3x3, conv3-conv5 initW 0.03;
  fc 4096-4096 (initB 1, each followed by dropout2, keep 0.5) and fc1000 (initB -7); wc 5e-4
  and momentum 0.9 everywhere; 61,100,840 parameters for 1000 classes.
- 'torchvision': torchvision's `alexnet` shape (the same layer sizes, no normalization, ReLU
  before each pooling), with the sequel's initialization and dropout after fc6 and fc7
  (torchvision drops the inputs of fc6 and fc7 instead, and initializes by Kaiming's rule).

What differs from cuda-convnet2: the crop is 227 pixels (its 224 crops give conv1 55 outputs a
side only through the kernel's implicit padding past the right edge; 227 gives the same 55 with
real pixels); epsW's schedule, dexp[base 0.01, tgtFactor 250, numSteps 4] (0.01 divided by
250^(1/3) at each quarter of training), is lr_schedule 'piecewise' over num_epochs; the biases
take twice the weights' rate at every step (bias_lr_multiplier 2) instead of their own
dexp[base 0.02, tgtFactor 10, numSteps 2].

Wall time and result: not run here (ImageNet; no accelerator). What compile_check reports for
the three schemes on v5e:2x4 and h100:8 is in docs/accelerators.md.
"""

import ml_collections

from configs import default

VARIANTS = ('cuda_convnet2', 'torchvision')
TRAINING_QUARTERS = 4  # epsW's numSteps: four rates, each for a quarter of the epochs.
EPSW_TARGET_FACTOR = 250.0  # epsW's tgtFactor: the last rate is the first / 250.

CUDA_CONVNET2_LAYERS = (
    'conv1 conv filters=64 size=11 stride=4 padding=0 init_std=0.01',
    'rnorm1 cmrnorm size=5 scale=0.0001 pow=0.75 min_div=2',
    'pool1 pool kind=max size=3 stride=2 act=1',
    'conv2 conv filters=192 size=5 padding=2 init_std=0.01 init_bias=1 act=1',
    'rnorm2 cmrnorm size=5 scale=0.0001 pow=0.75 min_div=2',
    'pool2 pool kind=max size=3 stride=2',
    'conv3 conv filters=384 size=3 padding=1 init_std=0.03 act=1',
    'conv4 conv filters=256 size=3 padding=1 init_std=0.03 init_bias=1 act=1',
    'conv5 conv filters=256 size=3 padding=1 init_std=0.03 init_bias=1',
    'pool3 pool kind=max size=3 stride=2 act=1',
    'fc6 fc outputs=4096 init_std=0.01 init_bias=1 act=1',
    'dropout6 dropout keep=0.5',
    'fc7 fc outputs=4096 init_std=0.01 init_bias=1 act=1',
    'dropout7 dropout keep=0.5',
    'fc8 fc init_std=0.01 init_bias=-7',
)
# The same sizes without the normalization, each ReLU before its pooling.
TORCHVISION_LAYERS = (
    'conv1 conv filters=64 size=11 stride=4 padding=0 init_std=0.01 act=1',
    'pool1 pool kind=max size=3 stride=2',
    'conv2 conv filters=192 size=5 padding=2 init_std=0.01 init_bias=1 act=1',
    'pool2 pool kind=max size=3 stride=2',
    'conv3 conv filters=384 size=3 padding=1 init_std=0.03 act=1',
    'conv4 conv filters=256 size=3 padding=1 init_std=0.03 init_bias=1 act=1',
    'conv5 conv filters=256 size=3 padding=1 init_std=0.03 init_bias=1 act=1',
    'pool3 pool kind=max size=3 stride=2',
    'fc6 fc outputs=4096 init_std=0.01 init_bias=1 act=1',
    'dropout6 dropout keep=0.5',
    'fc7 fc outputs=4096 init_std=0.01 init_bias=1 act=1',
    'dropout7 dropout keep=0.5',
    'fc8 fc init_std=0.01 init_bias=-7',
)


def get_config(variant: str = 'cuda_convnet2') -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f'variant {variant!r}: use one of {VARIANTS}.')
  config = default.get_config()
  config.experiment = 'weird_trick'  # No claim of the 2012 paper: the report judges none by it.
  config.model.name = 'layer_net'
  config.model.layers = (CUDA_CONVNET2_LAYERS if variant == 'cuda_convnet2'
                         else TORCHVISION_LAYERS)
  config.model.layer_file = ('cuda-convnet2 layers/layers-223-1gpu.cfg'
                             if variant == 'cuda_convnet2' else 'torchvision.models.alexnet')
  config.lr_schedule = 'piecewise'
  config.lr_decay_factor = EPSW_TARGET_FACTOR ** (-1.0 / (TRAINING_QUARTERS - 1))
  config.lr_boundaries_epochs = tuple(config.num_epochs * q / TRAINING_QUARTERS
                                      for q in range(1, TRAINING_QUARTERS))
  config.bias_lr_multiplier = 2.0  # epsB's base, 0.02, is twice epsW's.
  return config
