r"""Result tables, plots and a verdict on each paper claim, read from the runs' checkpoints.

  python -m alexnet_jax.report ROOT [ROOT ...] [--table=claims|runs] [--format=markdown|csv]
                                [--plot=DIR] [--target_error=0.25]
  python -m alexnet_jax.report ROOT --export=results/NAME

ROOT is a run folder, a run's record, or any folder above them (a sweep's root, results/).
Prints one table: one row per claim and dataset (the default), or with --table=runs one row per
run; a run that several roots reach (a root and a run inside it, a record and its folder, a copy
of a sweep) is one run, counted once. --plot=DIR writes the error curves
of each sweep (Figure 1's look) and each run's conv1 kernels, one block per tower (Figure 3).
--export=DIR writes the record of each finished run under ROOT to DIR/<its path under ROOT>
(a run folder given as ROOT: DIR/<its name>): the tables, verdicts and plots read from the
records are those read from the run folders, with no checkpoint and no data.
"""

import csv
import importlib
import io
import json
import math
import os
import sys
from typing import Any, Sequence

from absl import app
from absl import logging as absl_logging
from absl import flags

from alexnet_jax import claims
from alexnet_jax import paths
from alexnet_jax import records
from alexnet_jax import run_folder
from alexnet_jax.run_folder import Run

FLAGS = flags.FLAGS
flags.DEFINE_enum('format', 'markdown', ['markdown', 'csv'], 'Output format of the tables.')
flags.DEFINE_enum('table', 'claims', ['claims', 'runs'],
                  'Which table to print: one row per claim and dataset, or one row per run.')
flags.DEFINE_string('plot', None, 'Write PNG plots to this folder.')
flags.DEFINE_float('target_error', 0.25, 'Training error for the "epochs to" column.')
flags.DEFINE_string('export', None, "Write each finished run's record under this folder "
                    '(e.g. results/NAME) instead of printing tables.')

NOT_AVAILABLE = '—'
# Keys that differ between machines, not between conditions.
NOT_OVERRIDES = ('dataset.data_dir', 'experiment')


def overrides(config: dict[str, Any]) -> str:
  """What the run changed from its experiment's config (the closest of its variants)."""
  try:
    module = importlib.import_module(f'configs.{config.get("experiment", "default")}')
  except ImportError:
    return NOT_AVAILABLE
  run = run_folder.flatten(json.loads(json.dumps(config)))
  candidates = []  # (number of differences, description), one per variant of the config.
  for variant in getattr(module, 'VARIANTS', (None,)):
    base = module.get_config(variant) if variant else module.get_config()
    base = run_folder.flatten(json.loads(base.to_json_best_effort()))
    diff = {k: v for k, v in run.items() if base.get(k, object()) != v and k not in NOT_OVERRIDES}
    label = [f':{variant}'] if variant and variant != 'imagenet' else []
    candidates.append((len(diff), label + [f'{k}={_short(v)}' for k, v in sorted(diff.items())]))
  return ' '.join(min(candidates, key=lambda c: c[0])[1]) or '(none)'


def identity(run: Run) -> str:
  """What makes a run the run it is: its config, less what differs between machines."""
  config = run_folder.flatten(json.loads(json.dumps(run.config)))
  return json.dumps({k: v for k, v in config.items() if k not in NOT_OVERRIDES}, sort_keys=True)


def distinct_runs(runs: Sequence[Run]) -> list[Run]:
  """Each run once, however many roots reach it: of the folders and records of one run, the one
  furthest along (the first found when equal) stands for it."""
  chosen: dict[str, Run] = {}
  for run in runs:
    key = identity(run)
    other = chosen.get(key)
    if other is None:
      chosen[key] = run
      continue
    if (run.latest_step or -1) > (other.latest_step or -1):
      chosen[key], run = run, other
    print(f'{run.workdir}: the same run as {chosen[key].workdir} (same config); counted once.',
          file=sys.stderr)
  return list(chosen.values())


def _state(run: Run) -> str:
  """'' for a finished run, else why it is not: stopped (a NaN), or still running."""
  if run.finished:
    return ''
  return f' (stopped: {run.stopped})' if run.stopped else ' (running)'


def _short(value: Any) -> str:
  if isinstance(value, float):
    return f'{value:g}'
  if isinstance(value, tuple):
    return '(' + ','.join(_short(v) for v in value) + ')'
  return str(value)


def _percent(value: float | None) -> str:
  return NOT_AVAILABLE if value is None else f'{100 * value:.2f}'


def _epochs(value: float) -> str:
  """Epochs as a run reports them: whole, or to two decimals mid-epoch; '—' for never."""
  return NOT_AVAILABLE if math.isinf(value) else f'{round(value, 2):g}'


def run_rows(runs: Sequence[Run], roots: Sequence[str], target: float) -> list[dict[str, str]]:
  rows = []
  for run in runs:
    name = next((os.path.relpath(run.workdir, os.path.dirname(paths.absolute(root).rstrip('/')))
                 for root in roots if paths.absolute(run.workdir).startswith(
                     paths.absolute(root))), run.workdir)
    latest = run.latest.metrics if run.latest else {}
    best = run.best.metrics if run.best else {}
    row = {
        'run': name,
        'experiment': run.config.get('experiment', NOT_AVAILABLE),
        'overrides': overrides(run.config),
        'epochs': _epochs(latest.get('epoch', 0)) + _state(run),
        'commit': ' '.join(run_folder.commits(run)) or NOT_AVAILABLE,
        'train error %': _percent(run.history.get('train_epoch_error', [None])[-1]),
    }
    for crop, keys in (('', (claims.TOP1, claims.TOP5)),
                       ('10-crop ', (claims.TOP1_10CROP, claims.TOP5_10CROP))):
      for label, key in zip(('top-1', 'top-5'), keys):
        row[f'{crop}{label} best %'] = _percent(best.get(key))
        row[f'{crop}{label} final %'] = _percent(latest.get(key))
    row[f'epochs to {target:.0%} train error'] = _epochs(claims.epochs_to(run, target))
    rows.append(row)
  return rows


def claim_rows(runs: Sequence[Run], fmt: str = 'markdown') -> list[dict[str, str]]:
  """One row per claim and dataset; in markdown each claim links to its section of the notes."""
  rows = []
  for claim in claims.CLAIMS:
    mine = [r for r in runs if claim.takes(r)]
    labels = sorted({claim.row(r) for r in mine}) or [None]
    for label in labels:
      group = [r for r in mine if claim.row(r) == label]
      verdict = claim.judge(group)
      conditions = NOT_AVAILABLE
      if group:
        sizes = sorted({r.config['dataset']['crop_size'] for r in group})
        epochs = sorted({r.latest.metrics.get('epoch', 0) if r.latest else 0 for r in group})
        epochs = [_epochs(e) for e in epochs]
        seeds = sorted({r.config['seed'] for r in group})
        commits = list(dict.fromkeys(c for r in group for c in run_folder.commits(r)))
        conditions = (f'{label}, {"/".join(map(str, sizes))} px, '
                      f'{claims.count(len(group), "run")}, '
                      f'{"-".join([epochs[0], epochs[-1]]) if len(epochs) > 1 else epochs[0]} '
                      f'epochs; {"seed" if len(seeds) == 1 else "seeds"} '
                      f'{", ".join(map(str, seeds))}; '
                      f'{"commit" if len(commits) == 1 else "commits"} '
                      f'{", ".join(commits) or NOT_AVAILABLE}')
      claim_id = claim.id if fmt == 'csv' else f'[{claim.id}]({claims.NOTES}#{claim.id.lower()})'
      rows.append({'claim': claim_id, 'what': claim.text, 'paper': claim.paper,
                   'ours': verdict.ours or NOT_AVAILABLE, 'conditions': conditions,
                   'verdict': verdict.verdict})
  return rows


def format_table(rows: list[dict[str, str]], fmt: str) -> str:
  if not rows:
    return ''
  if fmt == 'csv':
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
  header = list(rows[0])
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(str(row[k]).replace('|', '/') for k in header) + ' |'
            for row in rows]
  return '\n'.join(lines) + '\n'


def export(runs: Sequence[Run], roots: Sequence[str], destination: str) -> int:
  """Writes each finished run's record to `destination`/<its path under its root>; returns how
  many runs were left out (unfinished)."""
  left_out = 0
  for run in runs:
    root = next(r for r in roots if paths.absolute(run.workdir).startswith(paths.absolute(r)))
    relative = os.path.relpath(paths.absolute(run.workdir), paths.absolute(root))
    target = paths.join(destination, os.path.basename(paths.absolute(root).rstrip('/'))
                        if relative == '.' else relative)
    if not run.finished:
      print(f'{run.workdir}: not finished; not recorded.', file=sys.stderr)
      left_out += 1
      continue
    records.write_record(run, target)
    print(f'{run.workdir}: recorded in {target}')
  return left_out


def main(argv: list[str]) -> None:
  roots = argv[1:]
  if not roots:
    raise app.UsageError('Give at least one ROOT: a run folder or a folder above run folders.')
  absl_logging.set_verbosity(absl_logging.ERROR)  # Orbax narrates every checkpoint it reads.
  why = paths.unwritable_folder(FLAGS.plot) if FLAGS.plot else None
  if why:  # Before the tables, not as a traceback after them.
    print(f'error: --plot={FLAGS.plot}: the folder cannot be written ({why}).', file=sys.stderr)
    sys.exit(2)
  runs, unreadable = [], []
  for root in roots:
    folders = run_folder.find_runs(root) if paths.Path(root).is_dir() else []
    if not folders:
      print(f'{root}: no runs here (no folder with a config.json).', file=sys.stderr)
    for folder in folders:
      try:
        run = run_folder.read_run(folder)
      except Exception as e:  # pylint: disable=broad-except
        unreadable.append(folder)
        print(f'{folder}: cannot be read ({e}).', file=sys.stderr)
        continue
      if run.latest is None:
        print(f'{folder}: no checkpoint yet.', file=sys.stderr)
      runs.append(run)
  if not any(run.latest is not None for run in runs):
    print('error: no run with a checkpoint was found: nothing to report.', file=sys.stderr)
    sys.exit(1)

  if FLAGS.export:
    sys.exit(1 if export(runs, roots, FLAGS.export) else 0)
  runs = distinct_runs(runs)
  if FLAGS.table == 'runs':
    print(format_table(run_rows(runs, roots, FLAGS.target_error), FLAGS.format))
  else:
    print(format_table(claim_rows(runs, FLAGS.format), FLAGS.format))
  if FLAGS.plot:
    from alexnet_jax import plots  # pylint: disable=g-import-not-at-top
    for path in plots.write_all(runs, FLAGS.plot, FLAGS.target_error):
      print(f'wrote {path}', file=sys.stderr)


if __name__ == '__main__':
  app.run(main)
