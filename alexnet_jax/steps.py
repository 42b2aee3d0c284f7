"""The pure part of training, without TensorFlow: the train state, the loss, the shard_mapped
train and eval steps (with the on-device half of the augmentation), and exact evaluation over
batches. `train.py` runs them in its loop; compile_check, diagnose, evaluate and the benchmarks
build them from here."""

import functools
from typing import Any, Callable, Iterable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax
from jax.sharding import NamedSharding

from alexnet_jax import blocks
from alexnet_jax import crops
from alexnet_jax import models
from alexnet_jax import optim
from alexnet_jax import parallel
from alexnet_jax.errors import UserInputError



@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array  # Raw uint32 key data, so that orbax stores it as a plain array.
  # Sums over this epoch's mini-batches: loss, errors, examples (the paper's training error).
  epoch_sums: jax.Array
  # The plateau schedule's memory (Sec. 5), restored with the run.
  lr_cuts: jax.Array
  best_eval_error: jax.Array
  evals_without_improvement: jax.Array


def state_specs(state: TrainState, model: Any, tx: optax.GradientTransformation) -> TrainState:
  """Parameters, and every copy of the parameter tree in the optimizer's state (the velocity),
  laid out by `model`'s scheme (parallel.param_specs); everything else replicated."""
  param_specs = parallel.param_specs(state.params, model.replicated_layers(), model.axes)
  specs = jax.tree.map(lambda _: parallel.REPLICATED, state)
  opt_specs = optax.tree_map_params(tx, lambda _, spec: spec, state.opt_state, param_specs,
                                    transform_non_params=lambda _: parallel.REPLICATED)
  return specs.replace(params=param_specs, opt_state=opt_specs)


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformationExtraArgs:
  return optim.paper_sgd(config.momentum, config.weight_decay, decay_biases=config.decay_biases,
                         bias_lr_multiplier=config.bias_lr_multiplier,
                         layer_lr_multipliers=dict(config.layer_lr_multipliers),
                         layer_weight_decay=dict(config.layer_weight_decay))


def train_state_shapes(config: ml_collections.ConfigDict, model: Any,
                       image_shape: tuple[int, ...]) -> tuple[Callable[..., TrainState],
                                                              TrainState, TrainState]:
  """A fresh state's initializer `init(params_key, dropout_key)` (`models.seed_keys`), its
  shapes and dtypes (nothing computed), and its partition specs under `model`'s scheme.

  The state is the single-device network's, whole, whatever the scheme. The keys are arguments,
  not constants of the program, so that one compiled initializer serves every seed.
  """
  tx = create_optimizer(config)
  whole = model.clone(axes=parallel.Axes())

  def init(params_key: jax.Array, dropout_key: jax.Array) -> TrainState:
    params = models.init_params(whole, image_shape, params_key)
    return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                      rng=dropout_key, epoch_sums=jnp.zeros(3, jnp.float32),
                      lr_cuts=jnp.int32(0), best_eval_error=jnp.float32(np.inf),
                      evals_without_improvement=jnp.int32(0))

  keys = jax.eval_shape(models.seed_keys, config.seed)
  # The crop is checked with XLA's op set, whichever the run uses: the CPU op set's pooling
  # fails on a window larger than its input before any shape can be read.
  probe = whole.clone(ops=blocks.OPS['xla'])
  probe_params = jax.eval_shape(lambda key: models.init_params(probe, image_shape, key), keys[0])
  empty = [jax.tree_util.keystr(path) for path, leaf in
           jax.tree_util.tree_leaves_with_path(probe_params) if leaf.size == 0]
  if empty:
    raise UserInputError(f'config.dataset.crop_size={image_shape[0]} is too small for '
                         f'{type(model).__name__}: its pooling leaves no pixels ({empty[0]} is '
                         'empty).')
  abstract = jax.eval_shape(init, *keys)
  return init, abstract, state_specs(abstract, model, tx)


def create_train_state(config: ml_collections.ConfigDict, model: Any, image_shape: tuple[int, ...],
                       mesh: jax.sharding.Mesh) -> tuple[TrainState, TrainState]:
  """A fresh state laid out on `mesh` by `model`'s scheme, and its partition specs.

  The state is computed whole on one device, then placed shard by shard: every mesh shape
  starts from the same numbers, and one compiled initializer serves every mesh and seed.
  """
  init, _, specs = train_state_shapes(config, model, image_shape)
  whole = jax.device_get(jax.jit(init)(*models.seed_keys(config.seed)))
  return jax.device_put(whole, parallel.shardings(mesh, specs)), specs


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def loss_and_grads(params: Any, batch: dict[str, jax.Array], dropout_key: jax.Array, *,
                   model: Any, compute_dtype: Any = jnp.float32
                   ) -> tuple[jax.Array, jax.Array, Any]:
  """(mean loss over the global batch, this device's logits, gradients), inside shard_map.

  The network runs in `compute_dtype` on a cast of the float32 parameters; logits, loss and
  gradients are float32. The loss is averaged over 'data' (and over the identical copies on
  'model') before differentiation; shard_map's transpose then sums each parameter's gradient
  over exactly the devices that used it, so no gradient is reduced by hand (that would count it
  twice).
  """

  def loss_fn(params):
    logits = model.apply({'params': models.cast_for_compute(params, compute_dtype)},
                         batch['image'].astype(compute_dtype), train=True,
                         rngs={'dropout': dropout_key}).astype(jnp.float32)
    loss = lax.pmean(jnp.mean(cross_entropy(logits, batch['label'])), parallel.ALL_AXES)
    return loss, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return loss, logits, grads


def batch_shapes(config: ml_collections.ConfigDict, batch_size: int,
                 train: bool) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """The (shape, dtype) of each array of a batch as the steps take it
  (`input_pipeline.train_epoch`'s, without its POSITION, or `input_pipeline.eval_batches`'),
  without reading any data: for compiling ahead of time."""
  crop = (config.crop_size, config.crop_size, 3)
  if train:
    shift = crop if config.mean == 'image' else (3,)
    canvas = crops.window_canvas(config)
    image = crop if canvas is None else (canvas, canvas, 3)
    shapes = {'image': ((batch_size, *image), np.dtype(np.uint8)),
              'shift': ((batch_size, *shift), np.dtype(np.float32)),
              'flip': ((batch_size,), np.dtype(bool)),
              'label': ((batch_size,), np.dtype(np.int32))}
    if canvas is not None:
      shapes['window'] = ((batch_size, 4), np.dtype(np.float32))
    return shapes
  views = (10,) if config.ten_crop_eval else ()
  return {'image': ((batch_size, *views, *crop), np.dtype(np.float32)),
          'label': ((batch_size,), np.dtype(np.int32)),
          'mask': ((batch_size,), np.dtype(np.float32))}


def abstract_batch(dataset: ml_collections.ConfigDict, batch_size: int, mesh: jax.sharding.Mesh,
                   train: bool, axes: parallel.Axes) -> dict[str, jax.ShapeDtypeStruct]:
  """A global batch's shapes, dtypes and shardings, as `global_batch` hands it to the steps:
  for compiling them without data."""
  sharding = NamedSharding(mesh, parallel.batch_spec(axes))
  return {key: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
          for key, (shape, dtype) in batch_shapes(dataset, batch_size, train).items()}


def with_shardings(tree: Any, specs: Any, mesh: jax.sharding.Mesh) -> Any:
  """`tree`'s shapes and dtypes laid out by the partition specs `specs` on `mesh`."""
  return jax.tree.map(lambda leaf, spec: jax.ShapeDtypeStruct(
      leaf.shape, leaf.dtype, sharding=NamedSharding(mesh, spec)), tree, specs)


def cost_analysis(*stages: Any) -> dict[str, float]:
  """The first of `stages` (compiled or lowered programs) whose cost analysis counts anything,
  as one dict (JAX gives a list of one on some backends); {} when none does."""
  for stage in stages:
    cost = stage.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    if cost:
      return dict(cost)
  return {}


def flops_per_device(compiled: Any) -> float | None:
  """The FLOPs of one run of a compiled step on one device (XLA's cost analysis counts one
  device's share of a shard_mapped program); None where the compiler counts none."""
  flops = cost_analysis(compiled).get('flops')
  return float(flops) if flops and flops > 0 else None


def train_step_flops(train_fn: Callable, state: TrainState, dataset: ml_collections.ConfigDict,
                     batch_size: int, mesh: jax.sharding.Mesh,
                     axes: parallel.Axes) -> float | None:
  """One train step's FLOPs on one device, from the compiled step's cost analysis (what
  compile_check prints). The compile is the one the first step needs: JAX keeps it."""
  with jax.set_mesh(mesh):
    return flops_per_device(
        train_fn.lower(state, abstract_batch(dataset, batch_size, mesh, True, axes)).compile())


def training_images(batch: dict[str, Any], scale: float = 1.0, *, crop_size: int | None = None,
                    antialias: bool = False) -> Any:
  """A training batch's images as the network sees them (`input_pipeline.augment`): float32
  crops (each window resized to `crop_size` first when the batch has 'window') plus their
  shifts, times `scale` (`dataset.scale_after_lighting`), reflected where 'flip'. NumPy or JAX
  arrays; in the step, one fused pass."""
  xp = np if isinstance(batch['image'], np.ndarray) else jnp
  if 'window' in batch:
    if crop_size is None:
      raise ValueError('A batch of windows (input_pipeline.decode_window) needs the crop_size '
                       'to resize them to.')
    images = crops.resize_windows(batch['image'], batch['window'], crop_size, antialias)
  else:
    images = batch['image'].astype(xp.float32)
  shift = batch['shift']
  if shift.ndim == 2:  # One RGB shift per example.
    shift = shift[:, None, None, :]
  images = images + shift
  if scale != 1.0:
    images = images * xp.float32(scale)
  return xp.where(batch['flip'][:, None, None, None], images[:, :, ::-1], images)


def dataset_training_images(batch: dict[str, Any], dataset: ml_collections.ConfigDict) -> Any:
  """`training_images` as `dataset`'s config asks for them."""
  return training_images(batch, dataset.scale_after_lighting, crop_size=dataset.crop_size,
                         antialias=dataset.antialias_training_crops)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model: Any, tx: Any,
               learning_rate_fn: Callable, images_fn: Callable = training_images,
               compute_dtype: Any = jnp.float32) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on this device's share of the batch, inside shard_map; `images_fn` makes
  the network's images from it (`dataset_training_images`)."""
  dropout_key = jax.random.fold_in(state.rng, state.step)
  batch = {'image': images_fn(batch), 'label': batch['label']}
  loss, logits, grads = loss_and_grads(state.params, batch, dropout_key, model=model,
                                       compute_dtype=compute_dtype)
  learning_rate = learning_rate_fn(state.step, state.lr_cuts)
  updates, opt_state = tx.update(grads, state.opt_state, state.params,
                                 learning_rate=learning_rate)
  error = lax.pmean(jnp.mean(jnp.argmax(logits, -1) != batch['label']), parallel.ALL_AXES)
  grads_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  grads_finite = lax.pmin(grads_finite.astype(jnp.int32), parallel.ALL_AXES)
  num_examples = parallel.sum_over_batch(jnp.float32(batch['label'].shape[0]), model.axes)
  new_state = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates),
      opt_state=opt_state,
      epoch_sums=state.epoch_sums + num_examples * jnp.stack([loss, error, 1.0]))
  return new_state, {'loss': loss, 'error': error, 'learning_rate': learning_rate,
                     'grads_finite': grads_finite}


def error_sums(scores: jax.Array, labels: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  """Top-1 and top-5 errors of class scores (logits or probabilities), summed where mask=1."""
  top_k = lax.top_k(scores, min(5, scores.shape[-1]))[1]
  return {'top1_errors': jnp.sum(mask * (top_k[:, 0] != labels)),
          'top5_errors': jnp.sum(mask * ~jnp.any(top_k == labels[:, None], axis=-1))}


def eval_step(params: Any, batch: dict[str, jax.Array], *, model: Any,
              compute_dtype: Any = jnp.float32) -> dict[str, jax.Array]:
  """Sums over the real (mask=1) examples of the batch: loss, top-1 and top-5 errors, count.

  Images [batch, 10, h, w, 3] are ten crops each (the centre crop at index 4): the errors of
  their averaged softmax are summed too, as '10crop_top1_errors' and '10crop_top5_errors'.
  """
  images, labels, mask = batch['image'], batch['label'], batch['mask']
  ten_crop = images.ndim == 5
  logits = model.apply({'params': models.cast_for_compute(params, compute_dtype)},
                       images.reshape(-1, *images.shape[-3:]).astype(compute_dtype),
                       train=False).astype(jnp.float32)
  if ten_crop:
    logits = logits.reshape(*images.shape[:2], -1)
    ten_crop_probs = jnp.mean(jax.nn.softmax(logits), axis=1)
    logits = logits[:, 4]  # The centre crop.
  sums = {'loss': jnp.sum(mask * cross_entropy(logits, labels)), 'count': jnp.sum(mask),
          **error_sums(logits, labels, mask)}
  if ten_crop:
    sums.update({f'10crop_{k}': v for k, v in error_sums(ten_crop_probs, labels, mask).items()})
  return jax.tree.map(lambda x: parallel.sum_over_batch(x, model.axes), sums)


def make_steps(config: ml_collections.ConfigDict, model: Any, mesh: jax.sharding.Mesh,
               specs: TrainState, steps_per_epoch: int) -> tuple[Callable, Callable]:
  """The jitted, shard_mapped train and eval steps for `mesh`."""
  learning_rate_fn = lambda step, cuts: config.learning_rate * config.lr_decay_factor ** (
      optim.num_lr_cuts(step, cuts, schedule=config.lr_schedule,
                        boundaries_epochs=config.lr_boundaries_epochs,
                        steps_per_epoch=steps_per_epoch)) * optim.warmup_factor(
                            step, config.lr_warmup_epochs * steps_per_epoch)
  compute_dtype = models.COMPUTE_DTYPES[config.compute_dtype]
  one_train_step = functools.partial(train_step, model=model, tx=create_optimizer(config),
                                     learning_rate_fn=learning_rate_fn,
                                     images_fn=functools.partial(dataset_training_images,
                                                                 dataset=config.dataset),
                                     compute_dtype=compute_dtype)
  batch_spec = lambda *keys: {key: parallel.batch_spec(model.axes) for key in keys}
  train_fn = parallel.sharded_step(
      one_train_step, mesh, (specs, batch_spec(*batch_shapes(config.dataset, 1, train=True))),
      (specs, parallel.REPLICATED), donate_argnums=(0,))
  eval_fn = parallel.sharded_step(
      functools.partial(eval_step, model=model, compute_dtype=compute_dtype), mesh,
      (specs.params, batch_spec('image', 'label', 'mask')), parallel.REPLICATED)
  return train_fn, eval_fn


def global_batch(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh,
                 axes: parallel.Axes) -> dict[str, jax.Array]:
  """This process's rows of a batch, assembled into arrays laid out as the scheme of `axes`
  splits the examples."""
  sharding = NamedSharding(mesh, parallel.batch_spec(axes))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def evaluate(eval_fn: Callable, params: Any, batches: Iterable[dict[str, np.ndarray]],
             mesh: jax.sharding.Mesh, axes: parallel.Axes,
             stop_requested: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
  """Loss and top-1/top-5 error (centre crop, and ten crops when the batches have them) over
  every evaluation example exactly once; None when `stop_requested()` before a batch."""
  totals = None
  for batch in batches:
    if stop_requested():
      return None
    sums = eval_fn(params, global_batch(batch, mesh, axes))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = float(totals.pop('count'))
  metrics = {f'eval_{name.replace("errors", "error")}': float(total) / count
             for name, total in totals.items()}
  return {**metrics, 'eval_examples': int(count)}
