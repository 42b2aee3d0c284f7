r"""Images/s of one full training step, JAX (this project's step) beside PyTorch, same networks.

  pip install -r requirements-bench.txt
  python benchmarks/train_step.py [--networks=alexnet,cifar] [--batch_size=128] [--steps=5] \
      [--cpu_devices=-1] [--mesh=-1,1] [--ops=auto] [--compute_dtype=float32]

(a) The paper's AlexNet, two towers, 227x227; (b) the Figure-1 CIFAR-10 net, 32x32. Float32,
forward + backward + the SGD update, after two warm-up steps, the median of --steps. JAX runs
`steps.make_steps` (the real shard_mapped step) on one device; PyTorch runs the same layers
(grouped convolutions for the towers, LRN with the paper's constants, 3/2 max pooling, dropout
0.5) with torch.optim.SGD (momentum 0.9, weight decay 5e-4), on as many threads as cores.
GFLOP/s uses XLA's count of the step's floating-point operations for both.
--compute_dtype=bfloat16: JAX with config.compute_dtype='bfloat16' (activations and convolutions
in bfloat16 on float32 parameters), PyTorch under torch.autocast('cpu', torch.bfloat16), its
mixed-precision counterpart. Fast only on CPUs with bfloat16 matrix units (AMX, AVX512_BF16).

JAX runs as `main` does: the CPU split into one device per core (config.mesh.cpu_devices; XLA:CPU
runs a convolution on one core), the batch over them as data replicas, and `cpu_ops`' gradients
(config.model.ops). --cpu_devices=1 --mesh=1,1 --ops=xla is the plain single-device step.
"""

import argparse
import os
import statistics
import time

import jax

import steps  # benchmarks/steps.py, beside this script.
# pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax import blocks, parallel
from configs import default, relu_vs_tanh

NETWORKS = {'alexnet': default.get_config, 'cifar': lambda: relu_vs_tanh.get_config('figure1_net')}


# The /proc/cpuinfo flags that decide which kernels the two frameworks' libraries run.
ISA_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')


def peak_gflops() -> tuple[float, str]:
  """float32 FMA peak of this machine's cores, from /proc/cpuinfo (x86: AVX-512 or AVX2), and
  the CPU's name with its vector and matrix flags."""
  try:
    info = open('/proc/cpuinfo').read()
  except OSError:
    return float('nan'), 'unknown CPU'
  model = next((l.split(':', 1)[1].strip() for l in info.splitlines()
                if l.startswith('model name')), 'unknown CPU')
  flags = set(next((l.split(':', 1)[1].split() for l in info.splitlines()
                    if l.startswith('flags')), []))
  model += f' ({" ".join(f for f in ISA_FLAGS if f in flags) or "no AVX2"})'
  mhz = max(float(l.split(':', 1)[1]) for l in info.splitlines() if l.startswith('cpu MHz'))
  flops_per_cycle = 64 if 'avx512f' in flags else 32  # Two FMA units x 16 or 8 float32 lanes.
  return os.cpu_count() * mhz / 1000 * flops_per_cycle, model


def time_steps(step, steps: int) -> float:
  for _ in range(2):
    step()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def jax_step(name: str, batch_size: int, mesh_shape: tuple[int, int], ops: str,
             compute_dtype: str):
  """(a zero-argument step, its FLOPs over all devices) for the JAX network `name`."""
  config = NETWORKS[name]()
  config.batch_size = batch_size
  config.model.ops = ops
  config.compute_dtype = compute_dtype
  return steps.jax_train_step(config, 1000 if name == 'alexnet' else 10, mesh_shape)


def torch_step(name: str, batch_size: int, compute_dtype: str):
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(os.cpu_count())
  config = NETWORKS[name]().model
  lrn = nn.LocalResponseNorm(config.lrn_n, alpha=config.lrn_alpha * config.lrn_n,
                             beta=config.lrn_beta, k=config.lrn_k)  # torch divides alpha by n.
  if name == 'alexnet':
    c1, c2, c3, c4, c5 = config.conv_features
    f6, f7 = config.fc_features
    size, num_classes = 227, 1000
    net = nn.Sequential(
        nn.Conv2d(3, c1, 11, 4), nn.ReLU(), lrn, nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2, groups=2), nn.ReLU(), lrn, nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Linear(c5 * 6 * 6, f6), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(f6, f7), nn.ReLU(), nn.Dropout(0.5), nn.Linear(f7, num_classes))
  else:
    c1, c2, c3 = config.conv_features
    size, num_classes = 32, 10
    net = nn.Sequential(
        nn.Conv2d(3, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(c2, c3, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
        nn.Flatten(), nn.Linear(c3 * 4 * 4, num_classes))
  optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
  images = torch.randn(batch_size, 3, size, size) * 50
  labels = torch.randint(0, num_classes, (batch_size,))

  autocast = compute_dtype == 'bfloat16'

  def step():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
      loss = nn.functional.cross_entropy(net(images), labels)
    loss.backward()
    optimizer.step()

  return step, torch.__version__


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--networks', default='alexnet,cifar')
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--mesh', default='-1,1', help='data,model (config.mesh).')
  parser.add_argument('--cpu_devices', type=int, default=-1, help='config.mesh.cpu_devices.')
  parser.add_argument('--ops', default='auto', choices=blocks.OPS_CHOICES, help='config.model.ops.')
  parser.add_argument('--compute_dtype', default='float32', choices=('float32', 'bfloat16'),
                      help="config.compute_dtype; PyTorch's bfloat16 is its autocast.")
  parser.add_argument('--frameworks', default='jax,pytorch',
                      help='jax, pytorch or both; PyTorch needs requirements-bench.txt.')
  args = parser.parse_args()
  frameworks = args.frameworks.split(',')
  jax.config.update('jax_num_cpu_devices', parallel.cpu_device_count(
      args.cpu_devices, os.cpu_count() or 1, (args.batch_size,)))
  mesh_shape = tuple(map(int, args.mesh.split(',')))
  peak, cpu = peak_gflops()
  print(f'{cpu}, {os.cpu_count()} cores, float32 peak ~{peak:.0f} GFLOP/s; jax '
        f'{jax.__version__} on {jax.device_count()} CPU devices, mesh {args.mesh}, ops '
        f'{args.ops}, {args.compute_dtype}; batch {args.batch_size}, median of {args.steps} '
        'steps\n')
  print('| network | JAX images/s | PyTorch images/s | JAX / PyTorch | JAX GFLOP/s | '
        'PyTorch GFLOP/s |\n|---|---|---|---|---|---|')
  nan = float('nan')
  for name in args.networks.split(','):
    jax_seconds = torch_seconds = nan
    torch_version = 'not run'
    step, flops = jax_step(name, args.batch_size, mesh_shape, args.ops, args.compute_dtype)
    if 'jax' in frameworks:
      jax_seconds = time_steps(step, args.steps)
    if 'pytorch' in frameworks:
      step, torch_version = torch_step(name, args.batch_size, args.compute_dtype)
      torch_seconds = time_steps(step, args.steps)
    print(f'| {name} | {args.batch_size / jax_seconds:.1f} | {args.batch_size / torch_seconds:.1f} '
          f'(torch {torch_version}) | {torch_seconds / jax_seconds:.2f} | '
          f'{flops / jax_seconds / 1e9:.1f} | {flops / torch_seconds / 1e9:.1f} |', flush=True)


if __name__ == '__main__':
  main()
