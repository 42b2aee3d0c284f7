r"""Runs a config's sweep on a SLURM cluster: one array task per run, submitted with sbatch.

  python -m launch.slurm --config=configs/towers.py:imagenette --root=/shared/c6 \
      --gpus_per_node=1 --time=04:00:00 [--dry_run] -- --config.dataset.data_dir=/shared/tfds

Each array task runs `srun python -m alexnet_jax.main` in ROOT/<run name>; with several nodes
per run, jax.distributed finds its processes from SLURM's environment (one task per node, each
using its node's GPUs). The job asks for SIGTERM two minutes before its time limit and is
requeueable: a run stopped by preemption or by the limit checkpoints, is queued again, and
resumes. Finished runs are left out of the array. --dry_run prints the script.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys

from alexnet_jax import paths
from launch import sweep

SIGTERM_EXIT = 143  # main's exit code after a SIGTERM and its checkpoint (128 + 15).


def sbatch_script(runs: list[sweep.PlannedRun], *, job_name: str, nodes: int, gpus_per_node: int,
                  cpus_per_task: int, time_limit: str, partition: str, log_dir: str) -> str:
  """A bash script for `sbatch`: an array of len(runs), task i running runs[i]."""
  header = [
      '#!/bin/bash',
      f'#SBATCH --job-name={job_name}',
      f'#SBATCH --array=0-{len(runs) - 1}',
      f'#SBATCH --nodes={nodes}',
      '#SBATCH --ntasks-per-node=1',
      f'#SBATCH --cpus-per-task={cpus_per_task}',
      f'#SBATCH --time={time_limit}',
      '#SBATCH --requeue',
      '#SBATCH --signal=TERM@120',  # To every job step: checkpoint before the limit.
      '#SBATCH --open-mode=append',
      f'#SBATCH --output={os.path.join(log_dir, "%x_%A_%a.out")}',
  ]
  if gpus_per_node:
    header.append(f'#SBATCH --gpus-per-node={gpus_per_node}')
  if partition:
    header.append(f'#SBATCH --partition={partition}')
  commands = '\n'.join(
      f'  {i}) command={shlex.quote(shlex.join(run.command))} ;;  # {run.name}'
      for i, run in enumerate(runs))
  body = f'''
set -u
cd {shlex.quote(sweep.REPO)}
case "$SLURM_ARRAY_TASK_ID" in
{commands}
esac
srun bash -c "$command"
code=$?
# Stopped by SIGTERM after writing its checkpoint (the time limit): queue it again to resume.
if [ "$code" -eq {SIGTERM_EXIT} ]; then
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
fi
exit "$code"
'''
  return '\n'.join(header) + '\n' + body


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sweep.add_common_flags(parser)
  parser.add_argument('--nodes', type=int, default=1, help='Nodes per run.')
  parser.add_argument('--gpus_per_node', type=int, default=1)
  parser.add_argument('--cpus_per_task', type=int, default=16)
  parser.add_argument('--time', default='24:00:00', help='Time limit of each array task.')
  parser.add_argument('--partition', default='')
  parser.add_argument('--python', default='python', help='The Python of the cluster nodes.')
  args = parser.parse_args(argv)
  runs = sweep.expand(args.config, args.root, args.extra_flags, python=args.python,
                      only=args.run)
  todo = [run for run in runs if sweep.status(run) != 'finished']
  if not todo:
    print(f'All {len(runs)} runs of {args.config} are finished under {args.root}.')
    return 0
  job_name = os.path.basename(args.config.split(':')[0]).removesuffix('.py')
  # The job's script and SLURM's logs need a file system: ROOT, or ./slurm for a bucket ROOT.
  log_dir = os.path.abspath('slurm' if paths.is_uri(args.root) else args.root)
  script = sbatch_script(todo, job_name=job_name, nodes=args.nodes,
                         gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task,
                         time_limit=args.time, partition=args.partition,
                         log_dir=log_dir)
  if args.dry_run:
    print(script)
    return 0
  if shutil.which('sbatch') is None:
    print('error: sbatch is not on this machine; --dry_run prints the script.', file=sys.stderr)
    return 2
  os.makedirs(log_dir, exist_ok=True)
  path = os.path.join(log_dir, f'{job_name}.sbatch')
  with open(path, 'w') as f:
    f.write(script)
  return subprocess.run(['sbatch', path], check=False).returncode


if __name__ == '__main__':
  sys.exit(main())
