"""Train state, loss, the shard_mapped train and eval steps, and the training loop."""

import contextlib
import dataclasses
import functools
import json
import sys
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorflow as tf
from absl import logging
from jax import lax
from jax.sharding import NamedSharding

from alexnet_jax import checkpoints
from alexnet_jax import input_pipeline
from alexnet_jax import metrics_log
from alexnet_jax import models
from alexnet_jax import optim
from alexnet_jax import paths
from alexnet_jax import parallel
from alexnet_jax import preemption
from alexnet_jax import run_folder
from alexnet_jax import validation
from alexnet_jax.errors import DiskFullError, Interrupted, NonFiniteError, UserInputError

BOTH_AXES = (parallel.DATA_AXIS, parallel.MODEL_AXIS)


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


def state_specs(state: TrainState, replicated_layers: tuple[str, ...],
                tx: optax.GradientTransformation) -> TrainState:
  """Parameters, and every copy of the parameter tree in the optimizer's state (the velocity),
  split over 'model'; everything else replicated."""
  param_specs = parallel.param_specs(state.params, replicated_layers)
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
                       image_shape: tuple[int, ...]) -> tuple[Callable[[], TrainState],
                                                              TrainState, TrainState]:
  """A fresh state's initializer, its shapes and dtypes (nothing computed), and its partition
  specs.

  The parameters are initialised whole (the single-device network), so that every mesh shape
  starts from the same numbers.
  """
  tx = create_optimizer(config)
  params_key, dropout_key = models.seed_keys(config.seed)

  def init():
    params = models.init_params(model, image_shape, params_key)
    return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                      rng=dropout_key, epoch_sums=jnp.zeros(3, jnp.float32),
                      lr_cuts=jnp.int32(0), best_eval_error=jnp.float32(np.inf),
                      evals_without_improvement=jnp.int32(0))

  # The crop is checked with XLA's op set, whichever the run uses: the CPU op set's pooling
  # fails on a window larger than its input before any shape can be read.
  probe = model.clone(ops=models.OPS['xla'])
  probe_params = jax.eval_shape(lambda: models.init_params(probe, image_shape, params_key))
  empty = [jax.tree_util.keystr(path) for path, leaf in
           jax.tree_util.tree_leaves_with_path(probe_params) if leaf.size == 0]
  if empty:
    raise UserInputError(f'config.dataset.crop_size={image_shape[0]} is too small for '
                         f'{type(model).__name__}: its pooling leaves no pixels ({empty[0]} is '
                         'empty).')
  abstract = jax.eval_shape(init)
  return init, abstract, state_specs(abstract, model.replicated_layers(), tx)


def create_train_state(config: ml_collections.ConfigDict, model: Any, image_shape: tuple[int, ...],
                       mesh: jax.sharding.Mesh) -> tuple[TrainState, TrainState]:
  """A fresh state laid out on `mesh` (computed whole, then placed shard by shard), and its
  partition specs."""
  init, _, specs = train_state_shapes(config, model, image_shape)
  state = jax.jit(init, out_shardings=parallel.shardings(mesh, specs))()
  return state, specs


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
    loss = lax.pmean(jnp.mean(cross_entropy(logits, batch['label'])), BOTH_AXES)
    return loss, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return loss, logits, grads


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model: Any, tx: Any,
               learning_rate_fn: Callable, image_scale: float = 1.0,
               compute_dtype: Any = jnp.float32) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on this device's share of the batch, inside shard_map."""
  dropout_key = jax.random.fold_in(state.rng, state.step)
  batch = {'image': input_pipeline.training_images(batch, image_scale), 'label': batch['label']}
  loss, logits, grads = loss_and_grads(state.params, batch, dropout_key, model=model,
                                       compute_dtype=compute_dtype)
  learning_rate = learning_rate_fn(state.step, state.lr_cuts)
  updates, opt_state = tx.update(grads, state.opt_state, state.params,
                                 learning_rate=learning_rate)
  error = lax.pmean(jnp.mean(jnp.argmax(logits, -1) != batch['label']), BOTH_AXES)
  grads_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  grads_finite = lax.pmin(grads_finite.astype(jnp.int32), BOTH_AXES)
  num_examples = lax.psum(jnp.float32(batch['label'].shape[0]), parallel.DATA_AXIS)
  num_examples = lax.pmean(num_examples, parallel.MODEL_AXIS)
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
  return jax.tree.map(lambda x: lax.pmean(lax.psum(x, parallel.DATA_AXIS), parallel.MODEL_AXIS),
                      sums)


def make_steps(config: ml_collections.ConfigDict, model: Any, mesh: jax.sharding.Mesh,
               specs: TrainState, steps_per_epoch: int) -> tuple[Callable, Callable]:
  """The jitted, shard_mapped train and eval steps for `mesh`."""
  learning_rate_fn = lambda step, cuts: config.learning_rate * config.lr_decay_factor ** (
      optim.num_lr_cuts(step, cuts, schedule=config.lr_schedule,
                        boundaries_epochs=config.lr_boundaries_epochs,
                        steps_per_epoch=steps_per_epoch)) * optim.warmup_factor(
                            step, config.lr_warmup_epochs * steps_per_epoch)
  compute_dtype = models.COMPUTE_DTYPES[config.compute_dtype]
  train = functools.partial(train_step, model=model, tx=create_optimizer(config),
                            learning_rate_fn=learning_rate_fn,
                            image_scale=config.dataset.scale_after_lighting,
                            compute_dtype=compute_dtype)
  batch_spec = lambda *keys: {key: parallel.BATCH_SPEC for key in keys}
  train = parallel.sharded_step(train, mesh, (specs, batch_spec('image', 'shift', 'flip', 'label')),
                                (specs, parallel.REPLICATED), donate_argnums=(0,))
  evaluate = parallel.sharded_step(
      functools.partial(eval_step, model=model, compute_dtype=compute_dtype), mesh,
      (specs.params, batch_spec('image', 'label', 'mask')), parallel.REPLICATED)
  return train, evaluate


def global_batch(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """This process's rows of a batch, assembled into arrays split over 'data'."""
  sharding = NamedSharding(mesh, parallel.BATCH_SPEC)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def evaluate(eval_fn: Callable, params: Any, batches: Iterable[dict[str, np.ndarray]],
             mesh: jax.sharding.Mesh,
             stop_requested: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
  """Loss and top-1/top-5 error (centre crop, and ten crops when the batches have them) over
  every evaluation example exactly once; None when `stop_requested()` before a batch."""
  totals = None
  for batch in batches:
    if stop_requested():
      return None
    sums = eval_fn(params, global_batch(batch, mesh))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = float(totals.pop('count'))
  metrics = {f'eval_{name.replace("errors", "error")}': float(total) / count
             for name, total in totals.items()}
  return {**metrics, 'eval_examples': int(count)}


def prepare_workdir(workdir: str) -> None:
  """Creates the workdir, or says in one line why it cannot be written."""
  try:
    paths.Path(workdir).mkdir(parents=True, exist_ok=True)
    if not paths.is_uri(workdir):
      with tempfile.TemporaryFile(dir=workdir):  # Unique: processes of one run may share it.
        pass
  except OSError as e:
    raise UserInputError(f'workdir {workdir!r} cannot be written: {e.strerror}.') from e


def undecodable_image_error(paths: Sequence[str], image_size: int,
                            error: tf.errors.OpError | None = None) -> UserInputError | None:
  """What `bad_images=fail` says of an image that does not decode: the first such file among
  `paths` and the decoder's reason (else, given the pipeline's `error`, its reason; else None)."""
  bad = input_pipeline.first_undecodable(paths, image_size)
  if bad is None and error is None:
    return None
  what = (f'{bad[0]} cannot be decoded ({bad[1]})' if bad else
          f'an image cannot be decoded ({input_pipeline.decoder_error(error)})')
  return UserInputError(f'{what}; remove it, or set dataset.bad_images=skip to drop such '
                        'images.')


def check_same_experiment(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a workdir whose checkpoints were written under a config that differs from
  `config` in a key that defines the experiment, naming each such key and both values. The
  checkpoints' own config decides; config.json only for checkpoints that hold none."""
  if _committed_step(workdir) is None:
    return
  saved = checkpoints.latest_saved(workdir, checkpoints.CONFIG)  # config.json or not.
  path = paths.Path(workdir) / run_folder.CONFIG_FILE
  if saved is None and path.exists():  # Checkpoints from before they held their config.
    try:
      saved = json.loads(path.read_text())
    except ValueError:
      pass  # Not written whole: the checkpoints' shapes are still checked on restore.
  if not isinstance(saved, dict):
    return
  changes = run_folder.experiment_changes(saved, json.loads(config.to_json_best_effort()))
  if changes:
    listed = ', '.join(f'{key} {old!r} -> {new!r}' for key, (old, new) in changes.items())
    raise UserInputError(f'workdir {workdir!r} holds a run of another experiment ({listed}); '
                         'use a new workdir, or --allow_changed_config to resume it with the '
                         'new values.')


def check_same_data(source: input_pipeline.Source, dataset: ml_collections.ConfigDict,
                    workdir: str) -> None:
  """Refuses to resume checkpoints trained on data of another size or other classes: the data
  may move (dataset.data_dir may change), but its epochs and labels must stay what they were."""
  saved, found = checkpoints.latest_saved(workdir, checkpoints.DATA), source.identity()
  if saved is None or saved == found:
    return
  def describe(data: dict[str, Any]) -> str:
    names = data.get('class_names') or []
    return (f'{data.get("train_examples")} training examples of {data.get("num_classes")} '
            'classes' + (f' ({", ".join(names[:3])}{", ..." if len(names) > 3 else ""})'
                         if names else ''))
  raise UserInputError(f'workdir {workdir!r} was trained on {describe(saved)}, but '
                       f'dataset.data_dir={dataset.data_dir!r} holds {describe(found)}: a run '
                       'resumes only on the same data (moved, it may be); use a new workdir.')


def check_finite(step_metrics: list[tuple[int, dict[str, jax.Array]]],
                 latest_checkpoint: int | None = None) -> None:
  """Raises NonFiniteError at the first step whose loss or gradients are not finite, naming the
  run's latest checkpoint (None: it has none)."""
  for step, metrics in jax.device_get(step_metrics):
    if not np.isfinite(metrics['loss']):
      quantity = f'the training loss is {metrics["loss"]}'
    elif not metrics['grads_finite']:
      quantity = 'a gradient is not finite (NaN or Inf)'
    else:
      continue
    kept = ('no checkpoint was written before it' if latest_checkpoint is None else
            f'the latest checkpoint is step {latest_checkpoint}, written before it')
    raise NonFiniteError(f'{quantity} at step {step}: stopping; {kept}.')


def reached_train_error(config: ml_collections.ConfigDict, train_error: float | None) -> bool:
  """Whether an epoch's training error ends the run (config.stop_at_train_error; 0: never)."""
  return train_error is not None and 0 < config.stop_at_train_error and \
      train_error <= config.stop_at_train_error


def plateau_schedule_update(config: ml_collections.ConfigDict, state: TrainState,
                            eval_error: float) -> TrainState:
  """The plateau schedule's memory after an evaluation (Sec. 5); kept, unused, by 'piecewise'."""
  best, waited, cuts = optim.plateau_update(
      eval_error, float(state.best_eval_error), int(state.evals_without_improvement),
      int(state.lr_cuts), patience=config.lr_plateau_patience,
      min_delta=config.lr_plateau_min_delta, max_cuts=config.lr_max_cuts)
  if config.lr_schedule != 'plateau':
    cuts = int(state.lr_cuts)
  elif cuts > int(state.lr_cuts):
    logging.info('Validation error has stopped improving: learning rate divided by %g.',
                 1 / config.lr_decay_factor)
  return state.replace(best_eval_error=jnp.float32(best),
                       evals_without_improvement=jnp.int32(waited), lr_cuts=jnp.int32(cuts))


@dataclasses.dataclass(frozen=True)
class RunContext:
  """What stays fixed for the whole of a run: its config, devices, data, steps and writers."""
  config: ml_collections.ConfigDict
  workdir: str
  mesh: jax.sharding.Mesh
  source: input_pipeline.Source
  steps_per_epoch: int
  total_steps: int
  process_index: int
  process_count: int
  train_fn: Callable
  eval_fn: Callable
  manager: checkpoints.ocp.CheckpointManager
  writer: metrics_log.MetricsWriter
  triggers: preemption.CheckpointTriggers
  cache: tf.data.Dataset | None  # The decoded training set in memory (dataset.cache).
  normalization: input_pipeline.Normalization
  eval_batches: tf.data.Dataset
  commit: str  # The code version (run_folder.code_version), kept with each epoch.


@dataclasses.dataclass(frozen=True)
class Progress:
  """Where a run stands: its state, the step reached, the metrics of its last log or
  evaluation (with checkpoints.FINISHED) and its per-epoch curves, kept in every checkpoint."""
  state: TrainState
  step: int
  last_metrics: dict[str, Any]
  history: dict[str, list[Any]]
  # Mid-epoch: this process's place in the epoch's example stream (input_pipeline.POSITION),
  # dropped examples included, so that a resume skips exactly what was trained.
  input_position: int | None = None
  # At an epoch's end whose evaluation a signal cut short: the evaluation comes first.
  eval_pending: bool = False

  @property
  def finished(self) -> bool:
    return bool(self.last_metrics.get(checkpoints.FINISHED))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_changed_config: bool = False) -> dict[str, float]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the last metrics.

  The workdir is this run's alone while it trains (run_folder.workdir_lock). A workdir whose
  checkpoints another experiment wrote (run_folder.experiment_changes) is refused, unless
  `allow_changed_config`. SIGTERM or SIGINT, from here on, checkpoints the current step and
  raises `Interrupted`.
  """
  validation.validate_config(config)
  prepare_workdir(workdir)
  with run_folder.workdir_lock(workdir, enabled=jax.process_index() == 0), \
      preemption.CheckpointTriggers(config.checkpoint_every_minutes,
                                    jax.process_count()) as triggers, \
      _disk_full_in_one_line(workdir):
    if not allow_changed_config:
      check_same_experiment(config, workdir)
    stopped_file = paths.Path(workdir) / run_folder.STOPPED_FILE
    if jax.process_index() == 0 and stopped_file.exists():
      stopped_file.unlink()  # Run again: no longer stopped.
    run, progress = _set_up(config, workdir, triggers)
    try:
      with jax.set_mesh(run.mesh):
        # The paper's procedure: epochs of SGD on random mini-batches, each followed by an
        # evaluation that may divide the learning rate, until the last epoch (or the target).
        while not progress.finished and (progress.step < run.total_steps or
                                         progress.eval_pending):
          trained = progress if progress.eval_pending else _train_epoch(run, progress)
          progress = _end_epoch(run, trained)
          signal_number, _ = triggers.poll()
          if signal_number is not None and not progress.finished:
            raise Interrupted(signal_number, progress.step)
    except NonFiniteError as e:
      if jax.process_index() == 0:  # What report shows for the run, instead of "running".
        paths.write_text(stopped_file, f'{e}\n')
      raise
    except tf.errors.InvalidArgumentError as e:  # Only the input pipeline runs TensorFlow ops.
      raise undecodable_image_error(run.source.train.paths + run.source.eval.paths,
                                    config.dataset.image_size, e) from e
    finally:
      _finish_writing(run)
  return progress.last_metrics


@contextlib.contextmanager
def _disk_full_in_one_line(workdir: str) -> Iterator[None]:
  """Turns a write that failed for lack of space (in orbax, TensorFlow or the metrics) into
  DiskFullError, naming the latest good checkpoint."""
  try:
    yield
  except DiskFullError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if not checkpoints.is_disk_full(e):
      raise
    raise DiskFullError(checkpoints.disk_full_message(
        workdir, _committed_step(workdir), 'no space left on device')) from e


def _committed_step(workdir: str) -> int | None:
  """The latest checkpoint written whole, whatever the one being written does."""
  directory = paths.Path(workdir) / checkpoints.CHECKPOINTS_DIR
  steps = [entry.name for entry in directory.iterdir()] if directory.is_dir() else []
  return max((int(name) for name in steps if name.isdigit()), default=None)


def _finish_writing(run: RunContext) -> None:
  """Lets a checkpoint being written finish, whatever happened, then closes the writers. When
  the run is already stopping on an error, a failure here (the same full disk) adds nothing."""
  stopping = sys.exc_info()[0] is not None
  for finish in (run.manager.wait_until_finished, run.manager.close, run.writer.close):
    try:
      finish()
    except Exception:  # pylint: disable=broad-except
      if not stopping:
        raise


def _set_up(config: ml_collections.ConfigDict, workdir: str,
            triggers: preemption.CheckpointTriggers) -> tuple[RunContext, Progress]:
  """The run's devices, data, network, steps and writers, and its progress: fresh, or restored
  from the workdir's latest checkpoint."""
  input_pipeline.hide_accelerators_from_tensorflow()
  process_index, process_count = jax.process_index(), jax.process_count()

  source = input_pipeline.create_source(config.dataset, process_index, process_count)
  check_same_data(source, config.dataset, workdir)
  try:
    mesh = parallel.create_mesh(config.mesh.data, config.mesh.model)
  except ValueError as e:
    raise UserInputError(str(e)) from e
  num_data, num_model = mesh.shape[parallel.DATA_AXIS], mesh.shape[parallel.MODEL_AXIS]
  validation.validate_for_mesh(config, num_data, num_model, process_count)
  if config.dataset.bad_images == 'fail':  # Found now, not after an epoch of training.
    bad = undecodable_image_error(source.eval.paths, config.dataset.image_size)
    if bad:
      raise bad
  steps_per_epoch = input_pipeline.steps_per_epoch(source, config.batch_size, process_count)
  if steps_per_epoch == 0:
    raise UserInputError(f'config.batch_size={config.batch_size} is larger than the '
                         f'{source.train.num_global} training examples.')
  total_steps = config.num_epochs * steps_per_epoch
  logging.info('Mesh %s over %d devices (%d processes); %d classes, %d training and %d '
               'evaluation examples; %d steps per epoch.', dict(mesh.shape), jax.device_count(),
               process_count, source.num_classes, source.train.num_global,
               source.eval.num_global, steps_per_epoch)

  image_shape = (config.dataset.crop_size, config.dataset.crop_size, 3)
  init_model = models.create_model(config.model, source.num_classes)
  state, specs = create_train_state(config, init_model, image_shape, mesh)
  num_params = sum(p.size for p in jax.tree.leaves(state.params))
  logging.info('%s: %s parameters.', config.model.name, f'{num_params:,}')

  if process_index == 0:
    checkpoints.set_aside_unreadable_metrics(workdir)
  parallel.sync_processes('checkpoint metrics checked')
  manager = checkpoints.create_manager(workdir)
  progress = _restore(config, manager, state, steps_per_epoch, total_steps, process_index == 0)
  if process_index == 0:
    paths.write_text(paths.join(workdir, run_folder.CONFIG_FILE),
                     config.to_json_best_effort(indent=2, sort_keys=True))

  model = models.create_model(config.model, source.num_classes, data_axis=parallel.DATA_AXIS,
                              model_axis=parallel.MODEL_AXIS)
  train_fn, eval_fn = make_steps(config, model, mesh, specs, steps_per_epoch)
  normalization = input_pipeline.Normalization.from_config(config.dataset)
  eval_batches = input_pipeline.eval_batches(
      source, config.dataset, batch_size=config.eval_batch_size // process_count,
      normalization=normalization, process_count=process_count)
  run = RunContext(
      config=config, workdir=workdir, mesh=mesh, source=source,
      steps_per_epoch=steps_per_epoch, total_steps=total_steps, process_index=process_index,
      process_count=process_count, train_fn=train_fn, eval_fn=eval_fn, manager=manager,
      writer=metrics_log.MetricsWriter(workdir, process_index == 0, start_step=progress.step),
      triggers=triggers, cache=input_pipeline.training_cache(source, config.dataset),
      normalization=normalization, eval_batches=eval_batches,
      commit=run_folder.code_version())
  logging.info('Code version %s.', run.commit)
  return run, progress


def _restore(config: ml_collections.ConfigDict, manager: Any, fresh_state: TrainState,
             steps_per_epoch: int, total_steps: int, is_chief: bool) -> Progress:
  """The progress of the latest readable checkpoint, or of `fresh_state` when there is none;
  finished for this config when its steps are done or its last epoch reached the target (a run
  given more epochs, or a lower target, goes on)."""
  restored = checkpoints.restore_latest(manager, fresh_state, is_chief)
  state, last_metrics = fresh_state, {}
  if restored is not None:
    state, restored_step = restored
    last_metrics = dict(manager.metrics(restored_step) or {})
  history: dict[str, list[Any]] = last_metrics.pop(checkpoints.HISTORY, {})
  last_metrics.pop(checkpoints.DIGEST, None)  # Each save computes its own.
  positions = last_metrics.pop(checkpoints.INPUT_POSITIONS, None)
  eval_pending = bool(last_metrics.pop(checkpoints.EVAL_PENDING, False))
  step = int(state.step)
  last_metrics[checkpoints.FINISHED] = not eval_pending and (step >= total_steps or (
      step % steps_per_epoch == 0 and
      reached_train_error(config, (history.get('train_epoch_error') or [None])[-1])))
  if restored is not None:
    logging.info('Resumed from the checkpoint at step %d (epoch %.2f)%s.', restored_step,
                 restored_step / steps_per_epoch,
                 ': the run is already finished' if last_metrics[checkpoints.FINISHED] else '')
  position = positions[jax.process_index()] if positions and step % steps_per_epoch else None
  if eval_pending:
    logging.info('The evaluation of epoch %d was stopped by a signal: evaluating it first.',
                 step // steps_per_epoch)
  return Progress(state, step, last_metrics, history, position, eval_pending)


def _save(run: RunContext, progress: Progress,
          unchecked: list[tuple[int, dict[str, jax.Array]]]) -> None:
  """A checkpoint of `progress`, once the steps since the last check are known finite."""
  check_finite(unchecked, run.manager.latest_step())  # Nothing non-finite is checkpointed.
  unchecked.clear()
  if run.manager.latest_step() != progress.step:  # Stopped right after a resume: saved already.
    metrics = {**progress.last_metrics, checkpoints.HISTORY: progress.history,
               checkpoints.CONFIG: json.loads(run.config.to_json_best_effort()),
               checkpoints.DATA: run.source.identity()}
    if progress.input_position is not None:  # Every process's, for its own resume.
      metrics[checkpoints.INPUT_POSITIONS] = parallel.gather_from_processes(
          progress.input_position)
    run.manager.wait_until_finished()  # The previous save's outcome, and its disk space.
    checkpoints.check_space(run.workdir, progress.state, _committed_step(run.workdir))
    run.writer.flush()  # The metrics up to this step are stored before the checkpoint is.
    checkpoints.save(run.manager, progress.step, progress.state, metrics)
  run.triggers.saved()


def _log_training(run: RunContext, progress: Progress, learning_rate: jax.Array,
                  since: tuple[float, int]) -> dict[str, Any]:
  """The running training metrics of this epoch, written and logged; `since` is the (time,
  step) of the previous log, for the speed."""
  config, step = run.config, progress.step
  steps_per_sec = (step - since[1]) / max(time.time() - since[0], 1e-9)
  sums = jax.device_get(progress.state.epoch_sums)
  metrics = {
      'epoch': step / run.steps_per_epoch,
      'train_loss': float(sums[0] / sums[2]),
      'train_error': float(sums[1] / sums[2]),
      'learning_rate': float(learning_rate),
      'images_per_sec': steps_per_sec * config.batch_size,
  }
  run.writer.write(step, metrics)
  logging.info('step %d/%d epoch %.2f: loss %.4f, training error %.4f (this epoch), lr %.2g, '
               '%.0f images/s, ETA %.1f min', step, run.total_steps, metrics['epoch'],
               metrics['train_loss'], metrics['train_error'], metrics['learning_rate'],
               metrics['images_per_sec'], (run.total_steps - step) / steps_per_sec / 60)
  return metrics


def _train_epoch(run: RunContext, progress: Progress) -> Progress:
  """The rest of the current epoch's SGD steps, from `progress.step`: logs every
  log_every_steps, checkpoints every checkpoint_every_steps, when the timer runs out and on a
  signal (then raises Interrupted)."""
  config, steps_per_epoch = run.config, run.steps_per_epoch
  state, step, last_metrics = progress.state, progress.step, progress.last_metrics
  epoch, skip = divmod(step, steps_per_epoch)
  if skip == 0:
    state = state.replace(epoch_sums=jnp.zeros_like(state.epoch_sums))
  batches = input_pipeline.train_epoch(
      run.source, config.dataset, global_batch_size=config.batch_size, seed=config.seed,
      epoch=epoch, num_batches=steps_per_epoch, skip_batches=skip,
      skip_examples=progress.input_position if skip else None,
      process_index=run.process_index, process_count=run.process_count, cached=run.cache,
      normalization=run.normalization)
  unchecked: list[tuple[int, dict[str, jax.Array]]] = []  # Steps whose metrics are on device.
  since = (time.time(), step)
  position = progress.input_position
  for batch in batches:
    position = int(batch.pop(input_pipeline.POSITION))
    state, metrics = run.train_fn(state, global_batch(batch, run.mesh))
    step += 1
    unchecked.append((step, metrics))
    end_of_epoch = step % steps_per_epoch == 0
    if step % config.log_every_steps == 0 or end_of_epoch:
      check_finite(unchecked, run.manager.latest_step())
      unchecked.clear()
      last_metrics = _log_training(run, Progress(state, step, last_metrics, progress.history),
                                   metrics['learning_rate'], since)
      since = (time.time(), step)
    if end_of_epoch:
      break
    signal_number, timer_ran_out = run.triggers.poll()
    if signal_number is not None or timer_ran_out or step % config.checkpoint_every_steps == 0:
      _save(run, Progress(state, step, last_metrics, progress.history, position), unchecked)
    if signal_number is not None:
      raise Interrupted(signal_number, step)
  return Progress(state, step, last_metrics, progress.history)


def _end_epoch(run: RunContext, progress: Progress) -> Progress:
  """After an epoch's last step: the evaluation (every eval_every_epochs, and at the end), the
  plateau schedule's update, the epoch's entry in the history, and a checkpoint."""
  config, state, step = run.config, progress.state, progress.step
  last_metrics, history = dict(progress.last_metrics), progress.history
  epoch_done = step // run.steps_per_epoch
  reached_target = reached_train_error(config, last_metrics['train_error'])
  if reached_target:
    logging.info('The training error, %.4f, has reached config.stop_at_train_error=%g: the run '
                 'is finished.', last_metrics['train_error'], config.stop_at_train_error)
  is_last = step >= run.total_steps or reached_target
  epoch_record = {'epoch': epoch_done, 'train_epoch_loss': last_metrics['train_loss'],
                  'train_epoch_error': last_metrics['train_error'], 'commit': run.commit}
  if epoch_done % config.eval_every_epochs == 0 or is_last:
    signal_number = None

    def stop_requested() -> bool:
      nonlocal signal_number
      signal_number, _ = run.triggers.poll()
      return signal_number is not None

    eval_metrics = evaluate(run.eval_fn, state.params, run.eval_batches.as_numpy_iterator(),
                            run.mesh, stop_requested)
    if eval_metrics is None:  # Stopped promptly: the trained step is kept, evaluated on resume.
      if not progress.eval_pending:
        _save(run, Progress(state, step, {**last_metrics, checkpoints.EVAL_PENDING: True},
                            history), [])
      raise Interrupted(signal_number, step)
    last_metrics.update(eval_metrics)
    epoch_record.update(eval_metrics)
    state = plateau_schedule_update(config, state, eval_metrics['eval_top1_error'])
    ten_crop = ', 10 crops: top-1 error {:.4f}, top-5 error {:.4f}'.format(
        eval_metrics['eval_10crop_top1_error'], eval_metrics['eval_10crop_top5_error']
    ) if 'eval_10crop_top1_error' in eval_metrics else ''
    logging.info('epoch %d: training error %.4f, eval loss %.4f, top-1 error %.4f, top-5 error '
                 '%.4f%s (%d examples)', epoch_done, last_metrics['train_error'],
                 eval_metrics['eval_loss'], eval_metrics['eval_top1_error'],
                 eval_metrics['eval_top5_error'], ten_crop, eval_metrics['eval_examples'])
  for key in checkpoints.HISTORY_KEYS:  # None where this epoch was not evaluated.
    history.setdefault(key, []).append(epoch_record.get(key))
  run.writer.write(step, epoch_record)
  last_metrics[checkpoints.FINISHED] = is_last
  if progress.eval_pending:  # This checkpoint replaces the one that awaited the evaluation.
    run.manager.wait_until_finished()
    run.manager.delete(step)
  progress = Progress(state, step, last_metrics, history)
  _save(run, progress, [])
  return progress
