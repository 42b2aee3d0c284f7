r"""Soak (by hand, not in CI): kill -9 a run at random moments, restart it each time, and check
that it ends with the same parameters as an uninterrupted run of the same command.

  python tests/soak/kill9.py --reference=/tmp/ref3 --workdir=/tmp/soak --kills=5 -- \
      --config=configs/relu_vs_tanh.py --config.dataset.name=image_folder \
      --config.dataset.data_dir=$HOME/data/cifar10 --config.num_epochs=3

REFERENCE is a finished run of the same flags. Prints, for each kill, the step the run had reached
(from its per-step metrics), the step it resumed from, and so the steps lost.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from alexnet_jax import checkpoints  # pylint: disable=g-import-not-at-top,wrong-import-position


def last_logged_step(workdir: str) -> int:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    steps = [json.loads(line)['step'] for line in f if line.strip()]
  return max(steps, default=0)


def final_params(workdir: str):
  manager = checkpoints.create_manager(workdir, read_only=True)
  step = manager.latest_step()
  return step, checkpoints.restore_on_host(manager, step)['params']


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--reference', required=True)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--kills', type=int, default=5)
  parser.add_argument('--min_seconds', type=float, default=30)
  parser.add_argument('--max_seconds', type=float, default=150)
  parser.add_argument('--seed', type=int, default=0)
  args, flags = parser.parse_known_args()
  flags = [f for f in flags if f != '--']
  command = [sys.executable, '-m', 'alexnet_jax.main', f'--workdir={args.workdir}', *flags,
             '--config.log_every_steps=1']  # Logging every step only tells us where it was.
  rng = random.Random(args.seed)
  started = time.time()
  for kill in range(args.kills + 1):
    manager = checkpoints.create_manager(args.workdir) if os.path.isdir(args.workdir) else None
    resume_step = (manager.latest_step() or 0) if manager else 0
    with open(os.path.join('/tmp', f'kill9_{kill}.log'), 'w') as log:
      process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
      if kill == args.kills:
        print(f'run {kill}: resumed at step {resume_step}, left to finish', flush=True)
        if process.wait() != 0:
          sys.exit(f'the last run failed: see /tmp/kill9_{kill}.log')
        break
      delay = rng.uniform(args.min_seconds, args.max_seconds)
      try:
        process.wait(timeout=delay)
        sys.exit(f'the run finished before kill {kill + 1}: use shorter delays')
      except subprocess.TimeoutExpired:
        reached = last_logged_step(args.workdir)
        process.kill()  # SIGKILL: no chance to checkpoint.
        process.wait()
    after = checkpoints.create_manager(args.workdir).latest_step() or 0
    print(f'kill {kill + 1} after {delay:.0f} s: resumed at step {resume_step}, reached step '
          f'{reached}, latest checkpoint {after}: {reached - after} steps lost', flush=True)
  (step_a, a), (step_b, b) = final_params(args.reference), final_params(args.workdir)
  same = step_a == step_b and all(np.array_equal(x, y) for x, y in
                                  zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  print(f'{time.time() - started:.0f} s in all; final step {step_b} (reference {step_a}); '
        f'parameters {"bit for bit equal" if same else "DIFFER"} to the reference.')
  sys.exit(0 if same else 1)


if __name__ == '__main__':
  main()
