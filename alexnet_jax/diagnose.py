r"""Why a config does not train: its first steps, measured, on a fixed set of its own batches.

  python -m alexnet_jax.diagnose --config=configs/datasets.py:imagenette_131 \
      --config.dataset.data_dir=$HOME/data/imagenette --steps=25 [--split_classes=100] \
      [--config.KEY=VALUE ...]

At the config's init, on the first batch (dropout on): each layer's |gradient| / |kernel|; the
squared length of the classifier's input, averaged over the images, and of its mean over them
(the offset every image shares); the loss's sharpest curvature along the classifier's kernel
(power iteration on Hessian-vector products) and the learning rate below which SGD with
momentum m is stable along that direction, 2 (1 + m) / curvature. Then `--steps` steps of the
config's own training step (its optimizer, schedule and mesh) over the first `--batches` batches
of epoch 0 of its training set, cycled, so that every setting sees the same images: each step's
loss and training error, and every `--every` steps the first batch's class scores without
dropout (their largest magnitude, their spread over the classes and over the images) and the
share of each hidden fully-connected layer's units that are positive for no image of it (dead,
under ReLU); at the end, the mean loss and training error over each `--window` steps.
`--split_classes=K` relabels each class at random into K, giving K times as many balanced
classes on the same images (a stand-in for more classes). Nothing is written.
"""

import functools
import sys
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from alexnet_jax import errors, models, quiet, steps
from alexnet_jax.errors import UserInputError

FLAGS = flags.FLAGS
SCORE_STATS = ('max |score|', 'spread over classes', 'spread over images')


def _number(x: float) -> str:
  """Large numbers whole with thousands separators, small ones to 3 significant digits."""
  return f'{x:,.0f}' if abs(x) >= 100 else f'{x:.3g}'


def split_labels(labels: np.ndarray, split: int, rng: np.random.Generator) -> np.ndarray:
  """Each label c becomes one of c * split ... c * split + split - 1, uniformly at random."""
  return (labels * split + rng.integers(0, split, labels.shape)).astype(np.int32)


def classifier_and_hidden(model_config: Any) -> tuple[str, tuple[str, ...]]:
  """The classifier layer's name and the hidden fully-connected layers' names."""
  names = models.layer_names(model_config)
  return names[-1], tuple(n for n in names[:-1] if n.startswith('fc'))


def _apply(model: Any, params: Any, images: jax.Array, dropout_key: jax.Array | None,
           **kwargs) -> Any:
  train = dropout_key is not None
  return model.apply({'params': params}, images, train=train,
                     rngs={'dropout': dropout_key} if train else {}, **kwargs)


def loss_fn(model: Any, params: Any, images: jax.Array, labels: jax.Array,
            dropout_key: jax.Array) -> jax.Array:
  return jnp.mean(steps.cross_entropy(_apply(model, params, images, dropout_key), labels))


def gradient_ratios(model: Any, params: Any, images: jax.Array, labels: jax.Array,
                    dropout_key: jax.Array) -> dict[str, float]:
  """|dL/dkernel| / |kernel| per layer."""
  # Arrays go in as arguments, never as constants: XLA would spend minutes folding them.
  grad_fn = jax.jit(jax.grad(functools.partial(loss_fn, model)))
  grads = grad_fn(params, images, labels, dropout_key)
  return {name: float(jnp.linalg.norm(grads[name]['kernel']) /
                      jnp.linalg.norm(params[name]['kernel'])) for name in params}


def classifier_input(model: Any, params: Any, images: jax.Array, dropout_key: jax.Array,
                     classifier: str) -> jax.Array:
  """What the classifier layer receives, [batch, features] (dropout as in training)."""

  def run(params, images, dropout_key):
    seen = []

    def record(next_fun, args, kwargs, context):
      if context.module.name == classifier and context.method_name == '__call__':
        seen.append(args[0])
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
      _apply(model, params, images, dropout_key)
    return seen[0].reshape(images.shape[0], -1)

  return jax.jit(run)(params, images, dropout_key)


def offset_lengths(features: jax.Array) -> tuple[float, float]:
  """(mean over rows of |row|^2, |mean row|^2): the second is the part every row shares."""
  return (float(jnp.mean(jnp.sum(features ** 2, -1))),
          float(jnp.sum(jnp.mean(features, 0) ** 2)))


def sharpest_curvature(model: Any, params: Any, images: jax.Array, labels: jax.Array,
                       dropout_key: jax.Array, layer: str, iterations: int,
                       key: jax.Array) -> float:
  """The largest eigenvalue of the loss's Hessian in `layer`'s kernel, by power iteration (which
  finds the largest in magnitude: for the classifier, in which the cross-entropy is convex, the
  largest)."""

  @jax.jit
  def hvp(v, params, images, labels, dropout_key):
    def loss_of_kernel(kernel):
      p = {**params, layer: {**params[layer], 'kernel': kernel}}
      return loss_fn(model, p, images, labels, dropout_key)
    return jax.jvp(jax.grad(loss_of_kernel), (params[layer]['kernel'],), (v,))[1]

  v = jax.random.normal(key, params[layer]['kernel'].shape)
  eigenvalue = 0.0
  for _ in range(iterations):
    w = hvp(v, params, images, labels, dropout_key)
    eigenvalue = float(jnp.vdot(v, w) / jnp.vdot(v, v))
    v = w / jnp.linalg.norm(w)
  return eigenvalue


def score_stats(model: Any, params: Any, images: jax.Array,
                hidden: tuple[str, ...]) -> dict[str, float]:
  """Class scores without dropout: largest |score|, spread over classes (std of each class's
  mean score) and over images (mean over classes of the std over images); each hidden layer's
  share of units positive for no image."""
  scores, state = _apply(model, params, images, None, capture_intermediates=True)
  dead = {f'dead {name}': jnp.mean(jnp.all(state['intermediates'][name]['__call__'][0] <= 0,
                                            axis=0)) for name in hidden}
  return {SCORE_STATS[0]: jnp.max(jnp.abs(scores)),
          SCORE_STATS[1]: jnp.std(jnp.mean(scores, 0)),
          SCORE_STATS[2]: jnp.mean(jnp.std(scores, 0)), **dead}


# Each flag's smallest allowed value.
FLAG_MINIMUMS = {'steps': 0, 'batches': 1, 'every': 1, 'window': 1, 'split_classes': 1,
                 'power_iterations': 1}


def first_batches(config: Any, num_batches: int) -> tuple[list[dict[str, np.ndarray]], int, int]:
  """The first `num_batches` training batches of epoch 0 (at most an epoch), the number of
  classes and of steps per epoch."""
  from alexnet_jax import input_pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  input_pipeline.hide_accelerators_from_tensorflow()
  source = input_pipeline.create_source(config.dataset)
  steps_per_epoch = input_pipeline.steps_per_epoch(source, config.batch_size, 1)
  batches = input_pipeline.train_epoch(source, config.dataset, global_batch_size=config.batch_size,
                                       seed=config.seed, epoch=0,
                                       num_batches=min(num_batches, steps_per_epoch))
  return ([{k: v for k, v in b.items() if k != input_pipeline.POSITION} for b in batches],
          source.num_classes, steps_per_epoch)


def print_measurements_at_init(config: Any, model: Any, params: Any, images: jax.Array,
                               labels: jax.Array, dropout_key: jax.Array,
                               power_iterations: int) -> None:
  classifier, _ = classifier_and_hidden(config.model)
  ratios = gradient_ratios(model, params, images, labels, dropout_key)
  print('  |gradient| / |kernel|: ' + ', '.join(f'{k} {v:.3f}' for k, v in ratios.items()))
  mean_sq, offset_sq = offset_lengths(classifier_input(model, params, images, dropout_key,
                                                       classifier))
  print(f'  {classifier} input: mean |h|^2 {_number(mean_sq)}, |mean h|^2 {_number(offset_sq)}')
  curvature = sharpest_curvature(model, params, images, labels, dropout_key, classifier,
                                 power_iterations, jax.random.key(config.seed + 2))
  print(f'  sharpest curvature along {classifier}: {_number(curvature)}; SGD with momentum '
        f'{config.momentum} is stable along it below lr '
        f'{2 * (1 + config.momentum) / curvature:.3g} (config: {config.learning_rate})')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  for flag, minimum in FLAG_MINIMUMS.items():
    if FLAGS[flag].value < minimum:
      print(f'error: --{flag}={FLAGS[flag].value} must be at least {minimum}.', file=sys.stderr)
      sys.exit(errors.EXIT_BAD_INPUT)
  quiet.import_tensorflow()
  quiet.jax_platform_search()
  from alexnet_jax import parallel, validation  # pylint: disable=g-import-not-at-top
  config = FLAGS.config
  try:
    validation.validate_config(config)
    parallel.set_cpu_devices(config)
    mesh = parallel.create_mesh(config.mesh.data, config.mesh.model)
    batches, num_classes, steps_per_epoch = first_batches(config, FLAGS.batches)
  except (UserInputError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(errors.EXIT_BAD_INPUT)
  if FLAGS.split_classes > 1:
    num_classes *= FLAGS.split_classes
    rng = np.random.default_rng(config.seed)
    batches = [{**b, 'label': split_labels(b['label'], FLAGS.split_classes, rng)}
               for b in batches]

  plain = models.create_model(config.model, num_classes)
  model = models.create_model(config.model, num_classes, scheme=config.mesh.scheme)
  state, specs = steps.create_train_state(config, model, (config.dataset.crop_size,) * 2 + (3,),
                                          mesh)
  print(f'{num_classes} classes, {len(batches)} batches of {config.batch_size}, '
        f'{config.dataset.crop_size} px; at init, on the first batch:')
  # The first batch as the network sees it: measured at init, and probed while training.
  probe = jnp.asarray(steps.dataset_training_images(batches[0], config.dataset))
  print_measurements_at_init(config, plain, jax.device_get(state.params), probe,
                             jnp.asarray(batches[0]['label']),
                             jax.random.fold_in(jax.device_get(state.rng), 0),  # Step 1's.
                             FLAGS.power_iterations)

  train_fn, _ = steps.make_steps(config, model, mesh, specs, steps_per_epoch)
  _, hidden = classifier_and_hidden(config.model)
  stats_fn = jax.jit(lambda params, images: score_stats(plain, params, images, hidden))
  stat_names = SCORE_STATS + tuple(f'dead {name}' for name in hidden)
  losses, train_errors = [], []
  for step in range(1, FLAGS.steps + 1):
    state, metrics = train_fn(state, steps.global_batch(batches[(step - 1) % len(batches)], mesh,
                                                      model.axes))
    losses.append(float(metrics['loss']))
    train_errors.append(float(metrics['error']))
    line = f'step {step} loss {losses[-1]:.3f} error {train_errors[-1]:.3f}'
    if step <= 5 or step % FLAGS.every == 0:
      stats = jax.device_get(stats_fn(state.params, probe))
      line += ''.join(f', {name} {float(stats[name]):.2f}' for name in stat_names)
    print(line, flush=True)
  for start in range(0, len(losses) - FLAGS.window + 1, FLAGS.window):
    window = slice(start, start + FLAGS.window)
    print(f'steps {start + 1}-{start + FLAGS.window}: mean loss {np.mean(losses[window]):.3f}, '
          f'mean training error {np.mean(train_errors[window]):.1%}')


if __name__ == '__main__':
  flags.DEFINE_integer('steps', 25, 'Training steps to take after the measurements at init.')
  flags.DEFINE_integer('batches', 60, 'Training batches to cycle over (from epoch 0).')
  flags.DEFINE_integer('every', 5, 'Measure the class scores and dead units every N steps.')
  flags.DEFINE_integer('window', 25, 'Print the mean loss and error over each N steps.')
  flags.DEFINE_integer('split_classes', 1, 'Relabel each class at random into this many.')
  flags.DEFINE_integer('power_iterations', 20, 'Hessian-vector products for the curvature.')
  config_flags.DEFINE_config_file('config', None, 'An ml_collections config file.',
                                  lock_config=True)
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=errors.config_flags_parser(FLAGS))
