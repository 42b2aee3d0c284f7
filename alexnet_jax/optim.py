"""The paper's SGD rule (Sec. 5) and its learning-rate schedules."""

from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax


class VelocityState(NamedTuple):
  velocity: Any


def is_bias(path: tuple[Any, ...]) -> bool:
  return getattr(path[-1], 'key', None) == 'bias'


def paper_sgd(momentum: float, weight_decay: float, *, decay_biases: bool = True,
              bias_lr_multiplier: float = 1.0,
              layer_lr_multipliers: Mapping[str, float] | None = None,
              layer_weight_decay: Mapping[str, float] | None = None
              ) -> optax.GradientTransformationExtraArgs:
  """v <- momentum v - weight_decay lr w - lr dL/dw; w <- w + v (Sec. 5), lr given per step.

  The learning rate sits inside the velocity, as in the paper, so a cut of the rate slows the
  momentum already accumulated too (optax.sgd scales the velocity by the current rate instead).
  Biases may take a multiplied rate and no decay (the 2012 code's choice). As cuda-convnet's
  layer-params files do, a layer (the first key of a parameter's path) may have its own rate
  multiplier (`layer_lr_multipliers`) and weight decay (`layer_weight_decay`, replacing
  `weight_decay` for its weights).
  """

  layer_lr_multipliers = dict(layer_lr_multipliers or {})
  layer_weight_decay = dict(layer_weight_decay or {})

  def per_leaf(params, value_for_bias, value_for_weight):
    """value_for_*(layer) at every leaf of params."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: (value_for_bias if is_bias(path) else value_for_weight)(path[0].key),
        params)

  def init_fn(params):
    return VelocityState(jax.tree.map(jnp.zeros_like, params))

  def update_fn(grads, state, params, *, learning_rate, **unused):
    del unused
    weight_decay_of = lambda layer: layer_weight_decay.get(layer, weight_decay)
    decay = per_leaf(params, weight_decay_of if decay_biases else lambda _: 0.0, weight_decay_of)
    lr_of = lambda layer: layer_lr_multipliers.get(layer, 1.0)
    lr_multiplier = per_leaf(params, lambda layer: bias_lr_multiplier * lr_of(layer), lr_of)
    velocity = jax.tree.map(
        lambda v, g, w, wd, mult: momentum * v - learning_rate * mult * (wd * w + g),
        state.velocity, grads, params, decay, lr_multiplier)
    return velocity, VelocityState(velocity)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def num_lr_cuts(step: jax.Array, plateau_cuts: jax.Array, *, schedule: str,
                boundaries_epochs: Sequence[int], steps_per_epoch: int) -> jax.Array:
  """How many times the learning rate has been divided at this step."""
  if schedule == 'plateau':
    return plateau_cuts
  boundaries = jnp.asarray([b * steps_per_epoch for b in boundaries_epochs], jnp.int32)
  return jnp.sum(step >= boundaries).astype(jnp.int32)


def warmup_factor(step: jax.Array, warmup_steps: float) -> jax.Array:
  """The learning rate's share at `step` under a linear warm-up over `warmup_steps` steps: step
  s (from 0) trains at (s + 1) / warmup_steps of the rate, 1 from then on (0 steps: always 1)."""
  if warmup_steps <= 0:
    return jnp.float32(1.0)
  return jnp.minimum(1.0, (step + 1) / jnp.float32(warmup_steps))


def plateau_update(error: float, best_error: float, evals_without_improvement: int,
                   cuts: int, *, patience: int, min_delta: float,
                   max_cuts: int) -> tuple[float, int, int]:
  """After an evaluation: (best error, evaluations without improvement, cuts).

  The rate is divided when the validation error has not improved by `min_delta` for `patience`
  evaluations, at most `max_cuts` times (Sec. 5: three times before termination).
  """
  if error < best_error - min_delta:
    return error, 0, cuts
  evals_without_improvement += 1
  if evals_without_improvement >= patience and cuts < max_cuts:
    return best_error, 0, cuts + 1
  return best_error, evals_without_improvement, cuts
