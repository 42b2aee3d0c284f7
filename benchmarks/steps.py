"""The JAX training step the benchmarks time: `steps.make_steps`' real shard_mapped step on a
batch shaped as the input pipeline delivers it (uint8 crops, per-example shifts, reflection
flags), so that the benchmarks follow the step's interface."""

import os
import sys
from typing import Callable

import jax
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax import models, parallel, steps


def training_batch(batch_size: int, size: int, num_classes: int) -> dict[str, np.ndarray]:
  """Random data in the input pipeline's training format."""
  rng = np.random.default_rng(0)
  return {'image': rng.integers(0, 256, (batch_size, size, size, 3)).astype(np.uint8),
          'shift': rng.normal(-120, 5, (batch_size, 3)).astype(np.float32),
          'flip': rng.integers(0, 2, batch_size).astype(bool),
          'label': rng.integers(0, num_classes, batch_size).astype(np.int32)}


def jax_train_step(config: ml_collections.ConfigDict, num_classes: int,
                   mesh_shape: tuple[int, int]) -> tuple[Callable[[], None], float]:
  """(a zero-argument step that blocks until done, its FLOPs over all devices) for `config`'s
  network at config.batch_size and config.dataset.crop_size on a (data, model) mesh."""
  size = config.dataset.crop_size
  mesh = parallel.create_mesh(*mesh_shape)
  model = models.create_model(config.model, num_classes, scheme=config.mesh.scheme)
  state, specs = steps.create_train_state(config, model, (size, size, 3), mesh)
  train_fn, _ = steps.make_steps(config, model, mesh, specs, steps_per_epoch=1000)
  batch = steps.global_batch(training_batch(config.batch_size, size, num_classes), mesh,
                             model.axes)
  with jax.set_mesh(mesh):
    cost = steps.cost_analysis(train_fn.lower(state, batch).compile())
  # XLA counts one device's share of the shard_mapped step.
  flops = mesh.size * float(cost.get('flops', float('nan')))
  holder = [state]

  def step():
    with jax.set_mesh(mesh):
      holder[0], metrics = train_fn(holder[0], batch)
      jax.block_until_ready((holder[0], metrics))

  return step, flops
