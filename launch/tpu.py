r"""Runs a config's sweep on a Cloud TPU VM slice, one run after another across all its workers.

  python -m launch.tpu --config=configs/towers.py:imagenette --root=/mnt/shared/c6 \
      --tpu=my-v4-32 --zone=us-central2-b --repo_dir='~/alexnet_jax' [--dry_run] -- \
      --config.dataset.data_dir=/mnt/shared/tfds

  python -m launch.tpu --config=configs/towers.py:imagenette --root=gs://my-bucket/c6 ...

Each run is one `gcloud compute tpus tpu-vm ssh --worker=all` command: every worker starts
`python -m alexnet_jax.main`, and jax.distributed finds the slice from the TPU environment. ROOT
must be a place every worker reads and writes: a bucket (gs://BUCKET/PATH: checkpoints, config,
metrics and TensorBoard events go there directly, no mount needed; give the workers' service
account write access to it), or a shared folder (NFS, a gcsfuse mount). This command reads ROOT
too, to skip finished runs, so the machine it runs on needs read access. A slice that was
preempted resumes the sweep when the command is given again. --dry_run prints the commands.
"""

import argparse
import shlex
import subprocess
import sys

from launch import sweep


def ssh_command(run: sweep.PlannedRun, *, tpu: str, zone: str, project: str,
                repo_dir: str) -> list[str]:
  remote = f'cd {repo_dir} && {shlex.join(run.command)}'
  command = ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', tpu, f'--zone={zone}', '--worker=all',
             f'--command={remote}']
  return command + ([f'--project={project}'] if project else [])


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sweep.add_common_flags(parser)
  parser.add_argument('--tpu', required=True, help='The TPU VM (slice) name.')
  parser.add_argument('--zone', required=True)
  parser.add_argument('--project', default='')
  parser.add_argument('--repo_dir', default='~/alexnet_jax',
                      help='Where this repository is checked out on every worker.')
  parser.add_argument('--python', default='python3', help='The Python of the workers.')
  args = parser.parse_args(argv)
  runs = sweep.expand(args.config, args.root, args.extra_flags, python=args.python,
                      only=args.run)
  for run in runs:
    if sweep.status(run) == 'finished':
      print(f'# {run.name}: finished')
      continue
    command = ssh_command(run, tpu=args.tpu, zone=args.zone, project=args.project,
                          repo_dir=args.repo_dir)
    print(shlex.join(command), flush=True)
    if not args.dry_run:
      code = subprocess.run(command, check=False).returncode
      if code != 0:
        print(f'{run.name} exited with {code}: stopping the sweep.', file=sys.stderr)
        return code
  return 0


if __name__ == '__main__':
  sys.exit(main())
