r"""Runs a config's sweep on this machine: finished runs are skipped, unfinished ones resume.

  python -m launch.local --config=configs/relu_vs_tanh.py --root=/tmp/c1 [--parallel=N] -- \
      --config.dataset.name=image_folder --config.dataset.data_dir=$HOME/data/cifar10

--run=NAME (repeatable) runs only the named runs, e.g. one ablation and its baseline.
--record=results/NAME writes each run's record there as soon as it finishes (what `report`
reads, committed to the repository) and skips the runs recorded there already: the same command
continues a sweep on a new machine, where the run folders of the last one are gone.
One run at a time by default; --parallel=N runs N at once, and on a GPU machine each gets its own
--gpus_per_run GPUs (CUDA_VISIBLE_DEVICES). Ctrl-C (or SIGTERM) reaches the runs too: each
writes a checkpoint and stops, and the next invocation resumes them.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from alexnet_jax import paths
from launch import sweep


def log_path(run: sweep.PlannedRun, log_dir: str) -> str:
  """Where a run's output is appended (the folder created)."""
  if not log_dir and not paths.is_uri(run.workdir):
    os.makedirs(run.workdir, exist_ok=True)
    return os.path.join(run.workdir, 'log.txt')
  log_dir = log_dir or 'logs'
  os.makedirs(log_dir, exist_ok=True)
  return os.path.join(log_dir, f'{run.name}.txt')


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sweep.add_common_flags(parser)
  parser.add_argument('--parallel', type=int, default=1, help='Runs at once.')
  parser.add_argument('--gpus_per_run', type=int, default=0,
                      help='GPUs given to each run (CUDA_VISIBLE_DEVICES); 0 leaves them alone.')
  parser.add_argument('--record', default='',
                      help="Write each finished run's record to RECORD/<run name> (e.g. "
                      'results/NAME) and skip the runs recorded there.')
  parser.add_argument('--log_dir', default='',
                      help="Where each run's output goes, as <run name>.txt; default: log.txt in "
                      'its workdir, or ./logs when ROOT is a URI (a process cannot append to '
                      'an object).')
  return parser


def write_record(run: sweep.PlannedRun, record_root: str) -> bool:
  """The record of `run`, when finished, written by the report's own exporter; False when that
  failed."""
  if not record_root or sweep.status(run) != 'finished':
    return True
  export = subprocess.run([sys.executable, '-m', 'alexnet_jax.report', run.workdir,
                           f'--export={record_root}'], cwd=sweep.REPO)
  return export.returncode == 0


def run_all(todo: list[sweep.PlannedRun], *, parallel: int, gpus_per_run: int, log_dir: str,
            record_root: str) -> list[str] | None:
  """Runs `todo`, `parallel` at once, recording each as it finishes; the names of what failed,
  or None when interrupted (Ctrl-C or SIGTERM, passed on to the runs, which checkpoint)."""
  def stop_runs(signal_number, unused_frame):
    # Ctrl-C reaches every process of the terminal; a SIGTERM to this one is passed on.
    for process, _, _ in running:
      process.send_signal(signal_number)
    raise KeyboardInterrupt

  previous_handler = signal.signal(signal.SIGTERM, stop_runs)
  slots = list(range(parallel))  # Free slots; slot i owns GPUs [i*k, (i+1)*k).
  running: list[tuple[subprocess.Popen, sweep.PlannedRun, int]] = []
  failed = []
  try:
    while todo or running:
      while todo and slots:
        run, slot = todo.pop(0), slots.pop(0)
        env = dict(os.environ)
        if gpus_per_run:
          env['CUDA_VISIBLE_DEVICES'] = ','.join(
              str(slot * gpus_per_run + i) for i in range(gpus_per_run))
        with open(log_path(run, log_dir), 'a') as log:  # The child keeps its own descriptor.
          print(f'{run.name}: started (log in {log.name})', flush=True)
          running.append((subprocess.Popen(run.command, cwd=sweep.REPO, env=env, stdout=log,
                                           stderr=subprocess.STDOUT), run, slot))
      time.sleep(1)
      for process, run, slot in [entry for entry in running if entry[0].poll() is not None]:
        running.remove((process, run, slot))
        slots.append(slot)
        print(f'{run.name}: exited with {process.returncode}', flush=True)
        if process.returncode != 0:
          failed.append(run.name)
        elif not write_record(run, record_root):
          failed.append(f'{run.name} (its record)')
  except KeyboardInterrupt:
    print('Interrupted: waiting for the runs to write their checkpoints.', flush=True)
    for process, _, _ in running:
      process.wait()
    return None
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
  return failed


def main(argv: list[str] | None = None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  if args.parallel < 1 or args.gpus_per_run < 0:
    parser.error(f'--parallel={args.parallel} --gpus_per_run={args.gpus_per_run}: run at least 1 '
                 'at once, each with 0 or more GPUs.')
  runs = sweep.expand(args.config, args.root, args.extra_flags, only=args.run)
  record_root = paths.absolute(args.record) if args.record else ''
  todo, failed = [], []
  for run in runs:
    state = sweep.status(run, paths.join(record_root, run.name) if record_root else '')
    print(f'{run.name}: {state}', flush=True)
    if state not in ('finished', 'recorded'):
      todo.append(run)
    elif state == 'finished' and not args.dry_run and not write_record(run, record_root):
      failed.append(f'{run.name} (its record)')
  if args.dry_run:
    for run in todo:
      print(' '.join(run.command))
    return 0
  failed_runs = run_all(todo, parallel=args.parallel, gpus_per_run=args.gpus_per_run,
                        log_dir=args.log_dir, record_root=record_root)
  if failed_runs is None:
    return 130
  failed += failed_runs
  if failed:
    print(f'{len(failed)} of {len(runs)} runs failed: {", ".join(failed)}.', file=sys.stderr)
    return 1
  print(f'All {len(runs)} runs of {args.config} are finished under {args.root}.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
