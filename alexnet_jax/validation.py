"""Checks of a config before any work: each bad value is named with what is allowed."""

import ml_collections

from alexnet_jax import (blocks, checkpoint_metrics, convnet_layers, image_stats, models, parallel,
                         run_folder)
from alexnet_jax.errors import UserInputError

LR_SCHEDULES = ('plateau', 'piecewise')
NUM_TOWERS = (1, 2)
DISTRIBUTED = ('auto', 'on', 'off')
BAD_IMAGES = ('skip', 'fail')


def _one_of(config: ml_collections.ConfigDict, key: str, allowed) -> None:
  value = config
  for part in key.split('.'):
    value = value[part]
  if value not in allowed:
    raise UserInputError(f'config.{key}={value!r} is not allowed; use one of {list(allowed)}.')


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise UserInputError(message)


def check_keys_read(model: ml_collections.ConfigDict,
                    defaults: ml_collections.ConfigDict) -> None:
  """A config.model key that the chosen network does not read must keep its value in `defaults`
  (configs/default.py's): a switch that changes nothing is refused, never trained under its
  name."""
  read = models.keys_read(model.name)
  for key in sorted(set(model.keys()) - read):
    default = defaults.get(key)
    _check(models.as_tuples(model[key]) == models.as_tuples(default),
           f'config.model.{key}={model[key]!r} would change nothing: {model.name} does not read '
           f'model.{key} ({models.KNOBS_ELSEWHERE[model.name]}). '
           + (f'Leave it at {default!r}.' if key in defaults else 'Remove it.'))


def _validate_layers(config: ml_collections.ConfigDict) -> None:
  """A layer net's specs parse, and every (layer, value) pair names a weight layer of the
  network with a value it allows."""
  if config.model.name == 'layer_net':
    try:
      convnet_layers.parse_layers(config.model.layers)
    except ValueError as e:
      raise UserInputError(f'config.model.layers: {e}') from e
  layer_names = models.layer_names(config.model)
  for key, pairs in (('model.init_std_overrides', config.model.init_std_overrides),
                     ('layer_lr_multipliers', config.layer_lr_multipliers),
                     ('layer_weight_decay', config.layer_weight_decay)):
    must_be_positive = key == 'model.init_std_overrides'
    for pair in pairs:
      layer, value = pair if isinstance(pair, (list, tuple)) and len(pair) == 2 else (pair, None)
      _check(layer in layer_names and isinstance(value, (int, float)) and value >= 0
             and (value > 0 or not must_be_positive),
             f'config.{key} has {pair!r}; each pair must name one of {list(layer_names)} and a '
             f'{"positive" if must_be_positive else "non-negative"} value.')


def _validate_mesh(config: ml_collections.ConfigDict) -> None:
  """The mesh keys that devices are not needed to judge."""
  _one_of(config, 'mesh.scheme', parallel.SCHEMES)
  _check(config.mesh.scheme != 'hybrid' or models.hidden_fc_features(config.model),
         f"config.mesh.scheme='hybrid' splits the hidden fully-connected layers, and this "
         f'{config.model.name} has none before its classifier: use \'data\' (the same step '
         'here).')
  _check(config.mesh.cpu_devices == -1 or config.mesh.cpu_devices >= 1,
         f'config.mesh.cpu_devices={config.mesh.cpu_devices!r} must be -1 (one per core) or a '
         'positive integer.')


def validate_config(config: ml_collections.ConfigDict,
                    defaults: ml_collections.ConfigDict | None = None) -> None:
  """Raises UserInputError naming the first bad key and value. `defaults`: the config that the
  model keys a network does not read must agree with, configs/default.py's when None."""
  _one_of(config, 'model.name', models.MODELS)
  _one_of(config, 'model.activation', blocks.ACTIVATIONS)
  _one_of(config, 'model.conv1_padding', models.CONV1_PADDINGS)
  _one_of(config, 'model.lrn_alpha_convention', blocks.LRN_ALPHA_CONVENTIONS)
  _one_of(config, 'model.conv1_order', models.CONV1_ORDERS)
  _one_of(config, 'model.ops', blocks.OPS_CHOICES)
  _one_of(config, 'compute_dtype', models.COMPUTE_DTYPES)
  _validate_layers(config)
  _one_of(config, 'model.num_towers', NUM_TOWERS)
  _one_of(config, 'lr_schedule', LR_SCHEDULES)
  _one_of(config, 'distributed.initialize', DISTRIBUTED)
  _one_of(config, 'dataset.bad_images', BAD_IMAGES)
  _validate_mesh(config)
  for key in ('model.pool_size', 'model.pool_stride', 'batch_size', 'eval_batch_size',
              'num_epochs', 'log_every_steps', 'checkpoint_every_steps', 'eval_every_epochs',
              'dataset.image_size', 'dataset.crop_size', 'model.contrast_norm_size',
              'dataset.synthetic_train_examples', 'dataset.synthetic_eval_examples'):
    section, _, name = key.rpartition('.')
    value = (config[section] if section else config)[name]
    _check(isinstance(value, int) and value >= 1,
           f'config.{key}={value!r} must be a positive integer.')
  _check(isinstance(config.dataset.synthetic_num_classes, int)
         and config.dataset.synthetic_num_classes >= 2,
         f'config.dataset.synthetic_num_classes={config.dataset.synthetic_num_classes!r}: a '
         'classifier needs two or more classes.')
  _check(isinstance(config.model.cpu_micro_batch, int) and config.model.cpu_micro_batch >= 0,
         f'config.model.cpu_micro_batch={config.model.cpu_micro_batch!r} must be 0 (whole '
         'batches) or a positive integer.')
  _check(0.0 <= config.model.dropout_rate < 1.0,
         f'config.model.dropout_rate={config.model.dropout_rate!r} must be in [0, 1).')
  _check(0.0 <= config.stop_at_train_error < 1.0,
         f'config.stop_at_train_error={config.stop_at_train_error!r} must be in [0, 1).')
  _check(config.dataset.scale_after_lighting > 0,
         f'config.dataset.scale_after_lighting={config.dataset.scale_after_lighting!r} must be '
         'positive.')
  _check(config.learning_rate > 0,
         f'config.learning_rate={config.learning_rate!r} must be positive.')
  _check(config.lr_warmup_epochs >= 0,
         f'config.lr_warmup_epochs={config.lr_warmup_epochs!r} must be 0 (no warm-up) or more.')
  steps = tuple(config.profile_steps)
  _check(steps == () or (len(steps) == 2 and all(isinstance(n, int) for n in steps)
                         and 1 <= steps[0] <= steps[1]),
         f'config.profile_steps={steps!r} must be () or (first, last) steps, 1 <= first <= last.')
  _check(config.dataset.crop_size <= config.dataset.image_size,
         f'config.dataset.crop_size={config.dataset.crop_size} is larger than '
         f'config.dataset.image_size={config.dataset.image_size}.')
  canvas = config.dataset.window_canvas
  _check(canvas == 0 or canvas >= config.dataset.crop_size,
         f'config.dataset.window_canvas={canvas} must be 0 (2 * crop_size - 1) or at least '
         f'config.dataset.crop_size={config.dataset.crop_size}.')
  _check(canvas == 0 or config.dataset.resize_on_device,
         f'config.dataset.window_canvas={canvas} carries windows to the device, which '
         'config.dataset.resize_on_device=False turns off: set one or the other.')
  if defaults is None:
    from configs import default  # pylint: disable=g-import-not-at-top
    defaults = default.get_config()
  check_keys_read(config.model, defaults.model)
  image_stats.for_config(config.dataset)  # The mean and stats file agree with the config.


def validate_for_mesh(config: ml_collections.ConfigDict, num_data: int, num_model: int,
                      process_count: int) -> None:
  """The combinations of config and devices that cannot be split as asked."""
  # A net with towers splits by tower; the others split each layer's features.
  has_towers = 'num_towers' in models.keys_read(config.model.name)
  # Each axis as the user set it, and as resolved (-1: the remaining devices) when it differs.
  axis = lambda key, size: f'config.mesh.{key}={size}' if config.mesh[key] == size else \
      f'config.mesh.{key}={config.mesh[key]}: {size} devices'
  _check(not has_towers or config.model.num_towers % num_model == 0,
         f'config.model.num_towers={config.model.num_towers} is not divisible by the model axis '
         f'of the mesh, {axis("model", num_model)}.')
  scheme = config.mesh.scheme
  # 'towers' splits the batch over 'data'; 'data' and 'hybrid' over every device.
  num_batch_shards = num_data if scheme == 'towers' else num_data * num_model
  batch_axes = axis('data', num_data) if scheme == 'towers' else \
      f'{axis("data", num_data)} x {axis("model", num_model)} under mesh.scheme={scheme!r}'
  for key in ('batch_size', 'eval_batch_size'):
    _check(config[key] % num_batch_shards == 0 and config[key] % process_count == 0,
           f'config.{key}={config[key]} is not divisible by the devices that split the batch '
           f'({batch_axes}) and the number of processes ({process_count}).')
  if scheme == 'hybrid':
    for features in models.hidden_fc_features(config.model):
      _check(features % (num_data * num_model) == 0,
             f'a hidden fully-connected layer of {features} outputs cannot be split over the '
             f'{num_data * num_model} devices of mesh.scheme=\'hybrid\' '
             f'({axis("data", num_data)} x {axis("model", num_model)}).')


def validate_run(config: ml_collections.ConfigDict, workdir: str,
                 allow_changed_config: bool) -> None:
  """What refuses a run before TensorFlow, the devices or the data: the config's values, a
  workdir that cannot be written (created here), a workdir whose checkpoints another experiment
  wrote (run_folder.check_same_experiment) unless `allow_changed_config`. The checks that need
  the data or the devices come later, in training."""
  validate_config(config)
  run_folder.prepare_workdir(workdir)
  if not allow_changed_config:
    run_folder.check_same_experiment(config, workdir, checkpoint_metrics.latest_metrics(workdir))
