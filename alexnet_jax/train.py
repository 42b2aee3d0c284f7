"""The training loop: workdir guards, restore, the epochs of steps (`steps`), evaluation, the
plateau schedule, checkpoints and logs."""

import contextlib
import dataclasses
import json
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from alexnet_jax import checkpoint_metrics
from alexnet_jax import chips
from alexnet_jax import checkpoints
from alexnet_jax import input_pipeline
from alexnet_jax import metrics_log
from alexnet_jax import models
from alexnet_jax import optim
from alexnet_jax import paths
from alexnet_jax import parallel
from alexnet_jax import preemption
from alexnet_jax import profiling
from alexnet_jax import run_folder
from alexnet_jax import steps
from alexnet_jax import validation
from alexnet_jax.errors import DiskFullError, Interrupted, NonFiniteError, UserInputError


def undecodable_image_error(image_files: Sequence[str], image_size: int,
                            error: tf.errors.OpError | None = None) -> UserInputError | None:
  """What `bad_images=fail` says of an image that does not decode: the first such file among
  `image_files` and the decoder's reason (else, given the pipeline's `error`, its reason; else
  None)."""
  bad = input_pipeline.first_undecodable(image_files, image_size)
  if bad is None and error is None:
    return None
  what = (f'{bad[0]} cannot be decoded ({bad[1]})' if bad else
          f'an image cannot be decoded ({input_pipeline.decoder_error(error)})')
  return UserInputError(f'{what}; remove it, or set dataset.bad_images=skip to drop such '
                        'images.')


def check_same_data(source: input_pipeline.Source, dataset: ml_collections.ConfigDict,
                    workdir: str, saved: checkpoint_metrics.CheckpointMetrics | None) -> None:
  """Refuses to resume checkpoints (`saved`: the latest's metrics) trained on data of another
  size or other classes: the data may move (dataset.data_dir may change), but its epochs and
  labels must stay what they were."""
  saved_data, found = (saved.data if saved else None), source.identity()
  if saved_data is None or saved_data == found:
    return
  def describe(data: dict[str, Any]) -> str:
    names = data.get('class_names') or []
    return (f'{data.get("train_examples")} training examples of {data.get("num_classes")} '
            'classes' + (f' ({", ".join(names[:3])}{", ..." if len(names) > 3 else ""})'
                         if names else ''))
  raise UserInputError(f'workdir {workdir!r} was trained on {describe(saved_data)}, but '
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


def plateau_schedule_update(config: ml_collections.ConfigDict, state: steps.TrainState,
                            eval_error: float) -> steps.TrainState:
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
  axes: parallel.Axes  # Where the scheme (config.mesh.scheme) puts the work on the mesh.
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
  profiler: profiling.StepProfiler  # config.profile_steps.
  step_flops: float | None  # A train step's FLOPs per device (XLA's count; None: not counted).
  peak_flops: float | None  # The device's peak FLOP/s for the compute dtype, if chips knows it.


@dataclasses.dataclass(frozen=True)
class Progress:
  """Where a run stands: its state, the step reached, the metrics of its last log or evaluation
  and its per-epoch curves (kept in every checkpoint: `checkpoint_metrics`)."""
  state: steps.TrainState
  step: int
  metrics: dict[str, Any]
  history: dict[str, list[Any]]
  # Mid-epoch: this process's place in the epoch's example stream (input_pipeline.POSITION),
  # dropped examples included, so that a resume skips exactly what was trained.
  input_position: int | None = None
  # At an epoch's end whose evaluation a signal cut short: the evaluation comes first.
  eval_pending: bool = False
  finished: bool = False  # Nothing left to do.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_changed_config: bool = False) -> dict[str, float]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the last metrics.

  The workdir is this run's alone while it trains (run_folder.workdir_lock). A workdir whose
  checkpoints another experiment wrote (run_folder.experiment_changes) is refused, unless
  `allow_changed_config`. SIGTERM or SIGINT, from here on, checkpoints the current step and
  raises `Interrupted`.
  """
  validation.validate_run(config, workdir, allow_changed_config)
  with run_folder.workdir_lock(workdir, enabled=jax.process_index() == 0), \
      preemption.CheckpointTriggers(config.checkpoint_every_minutes,
                                    jax.process_count()) as triggers, \
      _disk_full_in_one_line(workdir):
    saved = checkpoint_metrics.latest_metrics(workdir)
    stopped_file = paths.Path(workdir) / run_folder.STOPPED_FILE
    if jax.process_index() == 0 and stopped_file.exists():
      stopped_file.unlink()  # Run again: no longer stopped.
    run, progress = _set_up(config, workdir, triggers, saved)
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
      raise undecodable_image_error(run.source.train.image_files + run.source.eval.image_files,
                                    config.dataset.image_size, e) from e
    finally:
      _finish_writing(run)
  return progress.metrics


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
  return max(checkpoint_metrics.committed_steps(workdir), default=None)


def _finish_writing(run: RunContext) -> None:
  """Lets a checkpoint being written finish, whatever happened, then closes the writers. When
  the run is already stopping on an error, a failure here (the same full disk) adds nothing."""
  stopping = sys.exc_info()[0] is not None
  for finish in (run.profiler.stop, run.manager.wait_until_finished, run.manager.close,
                 run.writer.close):
    try:
      finish()
    except Exception:  # pylint: disable=broad-except
      if not stopping:
        raise


def _set_up(config: ml_collections.ConfigDict, workdir: str,
            triggers: preemption.CheckpointTriggers,
            saved: checkpoint_metrics.CheckpointMetrics | None) -> tuple[RunContext, Progress]:
  """The run's devices, data, network, steps and writers, and its progress: fresh, or restored
  from the workdir's latest checkpoint (`saved`: its metrics, read before)."""
  input_pipeline.hide_accelerators_from_tensorflow()
  process_index, process_count = jax.process_index(), jax.process_count()

  source = input_pipeline.create_source(config.dataset, process_index, process_count)
  check_same_data(source, config.dataset, workdir, saved)
  try:
    mesh = parallel.create_mesh(config.mesh.data, config.mesh.model)
  except ValueError as e:
    raise UserInputError(str(e)) from e
  num_data, num_model = mesh.shape[parallel.DATA_AXIS], mesh.shape[parallel.MODEL_AXIS]
  validation.validate_for_mesh(config, num_data, num_model, process_count)
  steps_per_epoch = _steps_per_epoch(config, source, process_count)
  total_steps = config.num_epochs * steps_per_epoch
  logging.info('Mesh %s over %d of %d devices (%d processes); %d classes, %d training and %d '
               'evaluation examples; %d steps per epoch.', dict(mesh.shape), mesh.devices.size,
               jax.device_count(), process_count, source.num_classes, source.train.num_global,
               source.eval.num_global, steps_per_epoch)

  image_shape = (config.dataset.crop_size, config.dataset.crop_size, 3)
  model = models.create_model(config.model, source.num_classes, scheme=config.mesh.scheme)
  state, specs = steps.create_train_state(config, model, image_shape, mesh)
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

  train_fn, eval_fn = steps.make_steps(config, model, mesh, specs, steps_per_epoch)
  chip = chips.chip_of(jax.devices()[0].device_kind)
  normalization = input_pipeline.Normalization.from_config(config.dataset)
  eval_batches = input_pipeline.eval_batches(
      source, config.dataset, batch_size=config.eval_batch_size // process_count,
      normalization=normalization, process_count=process_count)
  run = RunContext(
      config=config, workdir=workdir, mesh=mesh, axes=model.axes, source=source,
      steps_per_epoch=steps_per_epoch, total_steps=total_steps, process_index=process_index,
      process_count=process_count, train_fn=train_fn, eval_fn=eval_fn, manager=manager,
      writer=metrics_log.MetricsWriter(workdir, process_index == 0, start_step=progress.step),
      triggers=triggers, cache=input_pipeline.training_cache(source, config.dataset),
      normalization=normalization, eval_batches=eval_batches,
      commit=run_folder.code_version(),
      profiler=profiling.StepProfiler(workdir, config.profile_steps),
      step_flops=steps.train_step_flops(train_fn, progress.state, config.dataset,
                                        config.batch_size, mesh, model.axes),
      peak_flops=chips.peak_flops(chip, config.compute_dtype) if chip else None)
  logging.info('Code version %s.', run.commit)
  return run, progress


def _steps_per_epoch(config: ml_collections.ConfigDict, source: input_pipeline.Source,
                     process_count: int) -> int:
  """The SGD steps of an epoch of `source`, once the data is known to serve the run: one batch
  at least, and (with bad_images=fail) evaluation images that all decode, found now rather than
  after an epoch of training."""
  if config.dataset.bad_images == 'fail':
    bad = undecodable_image_error(source.eval.image_files, config.dataset.image_size)
    if bad:
      raise bad
  steps_per_epoch = input_pipeline.steps_per_epoch(source, config.batch_size, process_count)
  if steps_per_epoch == 0:
    raise UserInputError(f'config.batch_size={config.batch_size} is larger than the '
                         f'{source.train.num_global} training examples.')
  return steps_per_epoch


def _restore(config: ml_collections.ConfigDict, manager: Any, fresh_state: steps.TrainState,
             steps_per_epoch: int, total_steps: int, is_chief: bool) -> Progress:
  """The progress of the latest readable checkpoint, or of `fresh_state` when there is none;
  finished for this config when its steps are done or its last epoch reached the target (a run
  given more epochs, or a lower target, goes on)."""
  restored = checkpoints.restore_latest(manager, fresh_state, is_chief)
  state, saved = fresh_state, checkpoint_metrics.CheckpointMetrics()
  if restored is not None:
    state, restored_step = restored
    saved = checkpoint_metrics.CheckpointMetrics.from_json(manager.metrics(restored_step) or {})
  step = int(state.step)
  finished = not saved.eval_pending and (step >= total_steps or (
      step % steps_per_epoch == 0 and
      reached_train_error(config, (saved.history.get('train_epoch_error') or [None])[-1])))
  if restored is not None:
    logging.info('Resumed from the checkpoint at step %d (epoch %.2f)%s.', restored_step,
                 restored_step / steps_per_epoch,
                 ': the run is already finished' if finished else '')
  positions = saved.input_positions
  position = positions[jax.process_index()] if positions and step % steps_per_epoch else None
  if saved.eval_pending:
    logging.info('The evaluation of epoch %d was stopped by a signal: evaluating it first.',
                 step // steps_per_epoch)
  return Progress(state, step, dict(saved.metrics), dict(saved.history), position,
                  saved.eval_pending, finished)


def _save(run: RunContext, progress: Progress,
          unchecked: list[tuple[int, dict[str, jax.Array]]]) -> None:
  """A checkpoint of `progress`, once the steps since the last check are known finite."""
  check_finite(unchecked, run.manager.latest_step())  # Nothing non-finite is checkpointed.
  unchecked.clear()
  if run.manager.latest_step() != progress.step:  # Stopped right after a resume: saved already.
    positions = None
    if progress.input_position is not None:  # Every process's, for its own resume.
      positions = parallel.gather_from_processes(progress.input_position)
    saved = checkpoint_metrics.CheckpointMetrics(
        metrics=progress.metrics, history=progress.history, finished=progress.finished,
        config=json.loads(run.config.to_json_best_effort()), data=run.source.identity(),
        input_positions=positions, eval_pending=progress.eval_pending)
    run.manager.wait_until_finished()  # The previous save's outcome, and its disk space.
    checkpoints.check_space(run.workdir, progress.state, _committed_step(run.workdir))
    run.writer.flush()  # The metrics up to this step are stored before the checkpoint is.
    checkpoints.save(run.manager, progress.step, progress.state, saved)
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
  if run.step_flops:  # The model's FLOP rate, and its share of the chip's peak (MFU).
    metrics['model_flops_per_sec_per_device'] = run.step_flops * steps_per_sec
    if run.peak_flops:
      metrics['mfu'] = metrics['model_flops_per_sec_per_device'] / run.peak_flops
  run.writer.write(step, metrics)
  logging.info('step %d/%d epoch %.2f: loss %.4f, training error %.4f (this epoch), lr %.2g, '
               '%.0f images/s%s, ETA %.1f min', step, run.total_steps, metrics['epoch'],
               metrics['train_loss'], metrics['train_error'], metrics['learning_rate'],
               metrics['images_per_sec'], _flop_rate_text(metrics),
               (run.total_steps - step) / steps_per_sec / 60)
  return metrics


def _flop_rate_text(metrics: dict[str, Any]) -> str:
  """', 12.3 model GFLOP/s per device (MFU 45.6%)' for the log line; '' when not counted."""
  rate = metrics.get('model_flops_per_sec_per_device')
  if rate is None:
    return ''
  scale, unit = (1e12, 'TFLOP/s') if rate >= 1e12 else (1e9, 'GFLOP/s')
  mfu = f' (MFU {metrics["mfu"]:.1%})' if 'mfu' in metrics else ''
  return f', {rate / scale:.1f} model {unit} per device{mfu}'


def _train_epoch(run: RunContext, progress: Progress) -> Progress:
  """The rest of the current epoch's SGD steps, from `progress.step`: logs every
  log_every_steps, checkpoints every checkpoint_every_steps, when the timer runs out and on a
  signal (then raises Interrupted)."""
  config, steps_per_epoch = run.config, run.steps_per_epoch
  state, step, last_metrics = progress.state, progress.step, progress.metrics
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
    with run.profiler.step(step + 1):
      state, metrics = run.train_fn(state, steps.global_batch(batch, run.mesh, run.axes))
    step += 1
    run.profiler.after_step(step, (state, metrics))
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
  last_metrics, history = dict(progress.metrics), progress.history
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

    eval_metrics = steps.evaluate(run.eval_fn, state.params,
                                  run.eval_batches.as_numpy_iterator(), run.mesh, run.axes,
                                  stop_requested)
    if eval_metrics is None:  # Stopped promptly: the trained step is kept, evaluated on resume.
      if not progress.eval_pending:
        _save(run, Progress(state, step, last_metrics, history, eval_pending=True), [])
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
  for key in checkpoint_metrics.HISTORY_KEYS:  # None where this epoch was not evaluated.
    history.setdefault(key, []).append(epoch_record.get(key))
  run.writer.write(step, epoch_record)
  if progress.eval_pending:  # This checkpoint replaces the one that awaited the evaluation.
    run.manager.wait_until_finished()
    run.manager.delete(step)
  progress = Progress(state, step, last_metrics, history, finished=is_last)
  _save(run, progress, [])
  return progress
