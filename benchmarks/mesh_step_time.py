r"""Step time of the paper's network on each ('data', 'model') mesh shape.

  XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/mesh_step_time.py \
      --meshes=1x1,1x2,2x1 [--batch_size=128] [--crop_size=227] [--steps=3]

On CPU "devices" share the same cores, so this measures the cost of the communication pattern
(all-gathers at conv3 and the fully-connected layers on 'model'; the gradient all-reduce on
'data'), not a speed-up. The full SGD step (forward, backward, update) on a batch as the input
pipeline delivers it, after one warm-up step, the median of --steps.
"""

import argparse
import time

import jax
import numpy as np

import steps  # benchmarks/steps.py, beside this script.
# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import default


def step_seconds(num_data: int, num_model: int, batch_size: int, crop_size: int,
                 num_steps: int) -> list[float]:
  config = default.get_config()
  config.batch_size, config.dataset.crop_size = batch_size, crop_size
  step, _ = steps.jax_train_step(config, 1000, (num_data, num_model))
  times = []
  for _ in range(num_steps + 1):  # The first runs after compiling; not counted.
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return times[1:]


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--meshes', default='1x1,1x2,2x1')
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--crop_size', type=int, default=227)
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f'{jax.device_count()} {device.platform} devices ({device.device_kind}), jax '
        f'{jax.__version__}; paper network, batch {args.batch_size}, '
        f'{args.crop_size}x{args.crop_size}, float32\n')
  print('| mesh (data, model) | step time, median (s) | images/s |\n|---|---|---|')
  for mesh in args.meshes.split(','):
    num_data, num_model = map(int, mesh.split('x'))
    median = float(np.median(step_seconds(num_data, num_model, args.batch_size,
                                          args.crop_size, args.steps)))
    print(f'| ({num_data}, {num_model}) | {median:.2f} | {args.batch_size / median:.1f} |',
          flush=True)


if __name__ == '__main__':
  main()
