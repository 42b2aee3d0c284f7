r"""The paper's AlexNet on ImageNet (claim C7), with the paper's text as the default everywhere.

Command:
  python -m alexnet_jax.main --config=configs/default.py --workdir=/tmp/alexnet \
      --config.dataset.data_dir=$TFDS_DATA_DIR
On Imagenette (TFDS 'imagenette/320px-v2', 10 classes, 40 epochs; not yet timed on a GPU):
  python -m alexnet_jax.main --config=configs/default.py:imagenette --workdir=/tmp/alexnet_small

Paper (Krizhevsky, Sutskever & Hinton, NIPS 2012): top-1 40.7%, top-5 18.2% on ILSVRC-2012 val
(10-crop) after about 90 epochs, 5-6 days on two GTX 580 GPUs. This config is the reference that
every other config imports and overrides; section numbers refer to the paper.

Input size: 227x227 with no padding in conv1, because it is the only size for which the paper's
conv1 arithmetic (11x11, stride 4 -> 55x55) holds without padding. `model.conv1_padding =
'cuda_convnet'` with `dataset.crop_size = 224` is the 2012 code's equivalent (2 pixels of padding
before, 1 after).
"""

import ml_collections

from configs import datasets


VARIANTS = ('imagenet', 'imagenette', 'imagenette_131')


def get_config(variant: str = 'imagenet') -> ml_collections.ConfigDict:
  """The paper's config; `configs/default.py:imagenette` is its one-GPU-hour variant."""
  config = ml_collections.ConfigDict()
  config.experiment = 'default'  # Which config (claim) a run belongs to, for the report.

  config.dataset = ml_collections.ConfigDict()
  # 'synthetic', 'image_folder' (DIR/split/label/image.jpg) or any TFDS image-classification name.
  config.dataset.name = 'imagenet2012'
  config.dataset.data_dir = ml_collections.FieldReference(None, field_type=str)
  config.dataset.train_split = 'train'
  config.dataset.eval_split = 'validation'
  config.dataset.image_size = 256  # Shorter side rescaled to 256, central 256x256 kept (Sec. 2).
  config.dataset.crop_size = 227  # Random crops in training, the centre crop in evaluation.
  config.dataset.random_crop = True  # Sec. 4.1.
  config.dataset.random_flip = True  # Sec. 4.1, horizontal reflections.
  # Training crops of JPEGs are decoded from the window they cover and resized to crop_size: on
  # the host, or (True) by the step on the device, the host only decoding (DCT-downscaled while
  # that leaves at least crop_size) into a canvas (alexnet_jax/crops.py). For accelerator runs
  # on JPEG folders, with a canvas that fits the images, the host then delivers about twice as
  # many images (docs/performance.md). Off by default: a CPU-only run's step resizes on the same
  # cores, and the records in results/ were trained with the host's crops.
  config.dataset.resize_on_device = False
  # The side of the uint8 canvas that carries each window to the device; 0: 2 * crop_size - 1,
  # which holds any window DCT downscaling leaves. An image or window larger than the canvas is
  # resized on the host. The host's throughput falls with the canvas's area (it fills every
  # byte): set it to the largest window your images have (crop_size * shorter side /
  # image_size) when that is smaller; whole images that fit are decoded whole, the fastest,
  # and when all of an image folder's JPEGs fit, with no per-example choice at all.
  config.dataset.window_canvas = 0
  # Antialias that resize, as evaluation's is (on the host it costs a third of the throughput).
  config.dataset.antialias_training_crops = False
  # Mean RGB of the training set, subtracted from each pixel (Sec. 2), on the 0-255 scale.
  config.dataset.mean_rgb = (123.68, 116.78, 103.94)
  # 'rgb' subtracts the mean RGB; 'image', the paper's choice (Sec. 2), the mean image of the
  # training set, which only a stats file holds.
  config.dataset.mean = 'rgb'
  # The output of `python -m alexnet_jax.write_image_stats`: when set, its mean RGB, mean image and
  # PCA eigenvalues/eigenvectors replace mean_rgb and pca_eigen* below.
  config.dataset.stats_file = ''
  # Image folders: files that are not images are 'skip'ped (counted in the log) or 'fail' the run,
  # naming the file; so are images that fail to decode ('fail' stops at the first).
  config.dataset.bad_images = 'skip'
  # PCA lighting (Sec. 4.1): add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T, a_i ~ N(0, pca_std), to
  # every training image. The l_i are the eigenvalues of the RGB covariance of the training
  # pixels on the 0-1 scale, the p_i its eigenvectors (columns; rows are R, G, B). These are
  # ImageNet's, as fb.resnet.torch computed them.
  config.dataset.pca_lighting = True
  config.dataset.pca_std = 0.1
  config.dataset.pca_eigenvalues = (0.2175, 0.0188, 0.0045)
  config.dataset.pca_eigenvectors = ((-0.5675, 0.7192, 0.4009),
                                     (-0.5808, -0.0045, -0.8140),
                                     (-0.5836, -0.6948, 0.4203))
  # Training images (minus the mean, plus the noise) are multiplied by this: 1 in the paper's
  # text; the 2012 code scaled them by 1 / 1.1 after adding the noise.
  config.dataset.scale_after_lighting = 1.0
  # Evaluation on ten crops (the four corners, the centre and their reflections) with their
  # softmax averaged, as the paper reports (Sec. 4.1), besides the centre crop; False: the
  # centre crop only (ten times less work).
  config.dataset.ten_crop_eval = True
  config.dataset.cache = False  # Keep decoded images in memory (small datasets only).
  # Of TFDS records or of decoded images (cached); an image folder's paths are shuffled whole.
  config.dataset.shuffle_buffer = 16_384
  # Synthetic source only: a learnable task of class-coloured patterns.
  config.dataset.synthetic_num_classes = 10
  config.dataset.synthetic_train_examples = 256
  config.dataset.synthetic_eval_examples = 100

  config.model = ml_collections.ConfigDict()
  # 'alexnet', 'cifar_net' (the four-layer net of Figure 1) or 'layer_net' (stacked from
  # cuda-convnet layer specs in model.layers: configs/cuda_convnet_cifar.py).
  config.model.name = 'alexnet'
  config.model.layers = ()
  config.model.layer_file = ''  # The cuda-convnet layer file that model.layers transcribes.
  config.model.activation = 'relu'  # Sec. 3.1; the ablation is 'tanh'.
  config.model.pool_size = 3  # Overlapping pooling z=3, s=2 (Sec. 3.4); ablation 2/2.
  config.model.pool_stride = 2
  config.model.lrn = True  # Local response normalization (Sec. 3.3).
  config.model.lrn_k = 2.0
  config.model.lrn_n = 5
  config.model.lrn_alpha = 1e-4
  config.model.lrn_beta = 0.75
  # 'paper': alpha multiplies the plain sum of squares (Sec. 3.3); 'cuda_convnet': alpha / n
  # does, as in the 2012 code and torch's LocalResponseNorm.
  config.model.lrn_alpha_convention = 'paper'
  # 'relu_norm_pool' (Sec. 3.5) or 'norm_pool_relu': the 2012 code's LRN saw conv1's maps before
  # the ReLU, which it applied after pooling.
  config.model.conv1_order = 'relu_norm_pool'
  # The 2012 code normalised conv2's maps once more after LRN, spatially within each map
  # (cuda-convnet's 'cnorm', convnet_layers.contrast_norm). The constants are cuda-convnet's
  # defaults (scale 1e-3, power 0.75) and a 5x5 window: the 2012 layer file's own are not known
  # here.
  config.model.conv2_contrast_norm = False
  config.model.contrast_norm_size = 5
  config.model.contrast_norm_scale = 1e-3
  config.model.contrast_norm_power = 0.75
  config.model.dropout_rate = 0.5  # On the outputs of fc6 and fc7 (Sec. 4.2).
  config.model.num_towers = 2  # The two GPUs of Sec. 3.2: conv2, conv4, conv5 see their own tower.
  # Kernel counts of conv1-conv5 and fc6-fc7 for both towers together (Figure 2).
  config.model.conv_features = (96, 256, 384, 384, 256)
  config.model.fc_features = (4096, 4096)
  # Scales the kernels of conv1-conv4 only: 0.5 with num_towers=1 is the paper's one-GPU net
  # (footnote 2: conv5 and the fully-connected layers keep their two-GPU size).
  config.model.width_multiplier = 1.0
  config.model.conv1_padding = 'valid'  # 'valid' (227 input) or 'cuda_convnet' (224 input).
  config.model.init_std = 0.01  # Weights ~ N(0, 0.01^2) (Sec. 5).
  # (layer, std) pairs that replace init_std for those layers (the 2012 code: conv3-conv5 0.03).
  config.model.init_std_overrides = ()
  # Layers whose biases start at 1, the rest at 0 (Sec. 5).
  config.model.bias_one_layers = ('conv2', 'conv4', 'conv5', 'fc6', 'fc7')
  # How convolution, pooling and LRN are differentiated: 'xla' (XLA's own gradients),
  # 'handwritten' (alexnet_jax/cpu_ops.py: the same functions, gradients that XLA:CPU runs 2-6x
  # faster) or 'auto' (models.choose_ops: 'handwritten' when JAX runs on the CPU, else 'xla').
  # Not a paper setting: results agree to rounding.
  config.model.ops = 'auto'
  # On the CPU with the hand-written gradients, the CIFAR net's convolutional layers run a
  # training step on this many images at a time (blocks.in_micro_batches: their maps stay in
  # cache; 0 = the whole batch at once). AlexNet's maps outgrow the cache even so: it takes whole
  # batches.
  config.model.cpu_micro_batch = 8

  # SGD exactly as Sec. 5: v <- momentum v - weight_decay lr w - lr dL/dw; w <- w + v.
  config.batch_size = 128
  # The type of the activations and convolutions: 'float32' (the paper's) or 'bfloat16' (the
  # TPU's native matmul type, half the activation memory); parameters, the optimizer's velocity
  # and the loss stay float32 either way.
  config.compute_dtype = 'float32'
  config.learning_rate = 0.01
  config.momentum = 0.9
  config.weight_decay = 5e-4
  config.decay_biases = True  # The paper's rule decays every weight, biases included.
  config.bias_lr_multiplier = 1.0
  # (layer, value) pairs, as cuda-convnet's layer-params files set them per layer: a multiplier
  # of the learning rate, and a weight decay that replaces weight_decay for that layer.
  config.layer_lr_multipliers = ()
  config.layer_weight_decay = ()
  # 'plateau': divide by lr_decay_factor when the validation error stops improving (Sec. 5),
  # at most lr_max_cuts times; 'piecewise': divide at each of lr_boundaries_epochs.
  config.lr_schedule = 'plateau'
  config.lr_decay_factor = 0.1
  config.lr_max_cuts = 3  # "reduced three times prior to termination".
  config.lr_plateau_patience = 2  # Evaluations without improvement before a cut.
  config.lr_plateau_min_delta = 1e-3  # Smaller improvements of the error count as none.
  config.lr_boundaries_epochs = (30, 60, 80)
  # Not in the paper (0: none): the rate rises linearly from lr / steps to lr over this many
  # epochs (configs/datasets.py:imagenette_131 says why a small dataset needs it).
  config.lr_warmup_epochs = 0.0
  config.num_epochs = 90  # "roughly 90 cycles through the training set".
  # Stop once an epoch's training error is at most this (0: never), as Figure 1 measures.
  config.stop_at_train_error = 0.0

  config.seed = 0
  config.log_every_steps = 100
  config.eval_every_epochs = 1
  config.checkpoint_every_steps = 1000  # And at the end of every epoch,
  config.checkpoint_every_minutes = 30.0  # and when this much time has passed (0: never),
  # and on SIGTERM or SIGINT, after which the run stops (a second signal stops it at once).
  config.eval_batch_size = 128
  # (first, last): a jax.profiler trace of those training steps (1-based) into WORKDIR/profile,
  # for TensorBoard's profile plugin or XProf; () traces none.
  config.profile_steps = ()

  # Devices: 'data' replicas x 'model' shards (towers); -1 takes all remaining devices.
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1
  config.mesh.model = 1
  # Where the work lies on the mesh (alexnet_jax/parallel.py): 'towers', the paper's (the batch
  # over 'data', every layer's output channels over 'model'); 'data' (every parameter on every
  # device, the batch over all of them); 'hybrid', Krizhevsky's "One weird trick" (2014): conv
  # layers data parallel over every device, fc layers split over every device, the conv features
  # of the whole batch gathered to each before the first fc layer.
  config.mesh.scheme = 'towers'
  # When JAX runs on the CPU: how many devices to split the cores into. XLA:CPU runs each
  # convolution on one core, so one device per core (data replicas) trains ~1.6x faster on 2
  # cores. -1: as many as there are cores, down to the largest count that divides both batch
  # sizes. Left to XLA_FLAGS when it sets --xla_force_host_platform_device_count.
  config.mesh.cpu_devices = -1

  # Several processes (hosts) through jax.distributed: 'auto' initializes it when the environment
  # shows a multi-process job (SLURM with several tasks, a Cloud TPU slice) or a coordinator
  # address is given below; 'off' never does.
  config.distributed = ml_collections.ConfigDict()
  config.distributed.initialize = 'auto'
  config.distributed.coordinator_address = ''  # host:port of process 0, for any other cluster.
  config.distributed.num_processes = -1
  config.distributed.process_id = -1
  config.distributed.cpu_collectives = 'gloo'  # Collectives across CPU-only processes.
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r}; this config has {list(VARIANTS)} '
                     '(--config=configs/default.py:VARIANT).')
  return datasets.VARIANTS[variant](config)


def get_sweep(variant: str = 'imagenet') -> list[dict]:
  del variant
  return [{'seed': 0}]  # One run: the paper reports a single net for C7.

