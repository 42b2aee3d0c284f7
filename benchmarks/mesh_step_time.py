r"""Step time of the paper's network at batch 128 on each ('data', 'model') mesh shape.

  XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/mesh_step_time.py \
      --meshes=1x1,1x2,2x1

On CPU "devices" share the same cores, so this measures the cost of the communication pattern
(all-gathers at conv3 and the fully-connected layers on 'model'; the gradient all-reduce on
'data'), not a speed-up. The full SGD step (forward, backward, update), after one warm-up step,
the median of --steps.
"""

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax import models, parallel, train
from configs import default


def step_seconds(num_data: int, num_model: int, steps: int) -> list[float]:
  config = default.get_config()
  mesh = parallel.create_mesh(num_data, num_model)
  size = config.dataset.crop_size
  state, specs = train.create_train_state(config, models.create_model(config.model, 1000),
                                          (size, size, 3), mesh)
  model = models.create_model(config.model, 1000, data_axis=parallel.DATA_AXIS,
                              model_axis=parallel.MODEL_AXIS)
  train_fn, _ = train.make_steps(config, model, mesh, specs, steps_per_epoch=1000)
  rng = np.random.default_rng(0)
  batch = {'image': rng.normal(0, 50, (config.batch_size, size, size, 3)).astype(np.float32),
           'label': rng.integers(0, 1000, config.batch_size).astype(np.int32)}
  times = []
  with jax.set_mesh(mesh):
    batch = train.global_batch(batch, mesh)
    for _ in range(steps + 1):  # The first compiles.
      start = time.perf_counter()
      state, metrics = train_fn(state, batch)
      jax.block_until_ready((state, metrics))
      times.append(time.perf_counter() - start)
  return times[1:]


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--meshes', default='1x1,1x2,2x1')
  parser.add_argument('--steps', type=int, default=3)
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f'{jax.device_count()} {device.platform} devices ({device.device_kind}), jax '
        f'{jax.__version__}; paper network, batch 128, 227x227, float32\n')
  print('| mesh (data, model) | step time, median (s) | images/s |\n|---|---|---|')
  for mesh in args.meshes.split(','):
    num_data, num_model = map(int, mesh.split('x'))
    median = float(np.median(step_seconds(num_data, num_model, args.steps)))
    print(f'| ({num_data}, {num_model}) | {median:.2f} | {128 / median:.1f} |', flush=True)


if __name__ == '__main__':
  main()
