"""Claim configs and their sweeps, the launchers, and the report read back from checkpoints."""

import csv
import functools
import dataclasses
import io
import os
import shutil
import signal
import subprocess
import sys
import time

import matplotlib.image
import numpy as np
import pytest

from alexnet_jax import (checkpoints, claims, naming, plots, records, report, run_folder, train,
                         validation)
from alexnet_jax.checkpoint_metrics import CheckpointMetrics
from alexnet_jax.run_folder import Run
from configs import cuda_convnet_cifar
from launch import local, slurm, sweep
from tests.helpers import REPO, read_metrics, small_config

CONFIGS = {  # config: (variants, runs in its sweep: one number for all, or one per variant)
    'default': (('imagenet', 'imagenette', 'imagenette_131'), 1),
    'relu_vs_tanh': ((None, '18pct', 'figure1_net'), (6, 6, 2)),
    'lrn': (('imagenet', 'imagenette', 'cifar10'), 4),
    'overlapping_pooling': (('imagenet', 'imagenette'), 4),
    'pca_lighting': (('imagenet', 'imagenette'), 4),
    'dropout': (('imagenet', 'cifar10'), (4, 2)),
    'towers': (('imagenet', 'imagenette'), 4),
    'cuda_convnet': (('imagenet', 'imagenette'), 1),
    'ablations': (('imagenette_131',), 5),
}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_every_config_loads_and_its_sweep_expands(name):
  variants, counts = CONFIGS[name]
  module = __import__(f'configs.{name}', fromlist=['get_config'])
  counts = counts if isinstance(counts, tuple) else (counts,) * len(variants)
  for variant, num_runs in zip(variants, counts):
    config = module.get_config(variant) if variant else module.get_config()
    validation.validate_config(config)
    assert config.experiment == name
    path = f'configs/{name}.py' + (f':{variant}' if variant else '')
    runs = sweep.expand(os.path.join(REPO, path), '/sweeps', ['--config.x=1'])
    assert len(runs) == num_runs and len({r.name for r in runs}) == num_runs
    for run in runs:
      assert run.workdir == f'/sweeps/{run.name}'
      assert run.command[-1] == '--config.x=1'
      assert all(f'--config.{k}={naming.flag_value(v)}' in run.command
                 for k, v in run.overrides.items())
      assert 'seed=' in run.name
      # Each run's config is valid too: no sweep sets a key that its network does not read.
      point = module.get_config(run.overrides.get('variant', variant) or 'imagenet') \
          if variant or 'variant' in run.overrides else module.get_config()
      for key, value in run.overrides.items():
        if key != 'variant':
          *sections, last = key.split('.')
          functools.reduce(lambda c, part: c[part], sections, point)[last] = value
      validation.validate_config(point)


def test_a_flag_after_the_double_dash_may_not_override_a_swept_key():
  with pytest.raises(SystemExit, match=r'^error: --config.seed=3: the sweep sets config.seed '
                     r'itself \(its runs are named after it\)'):
    sweep.expand(os.path.join(REPO, 'configs/relu_vs_tanh.py'), '/sweeps', ['--config.seed=3'])


def test_a_sweep_narrowed_to_named_runs_keeps_its_order_and_rejects_an_unknown_name():
  config = os.path.join(REPO, 'configs/ablations.py:imagenette_131')
  runs = sweep.expand(config, '/sweeps', [], only=['lrn=False,seed=0', 'seed=0'])
  assert [run.name for run in runs] == ['seed=0', 'lrn=False,seed=0']
  assert runs[1].command == sweep.expand(config, '/sweeps', [])[3].command
  with pytest.raises(SystemExit, match=r"^error: --run=lrn=0: the sweep of .* has no such run; "
                     r"its runs: seed=0, num_towers=1,width_multiplier=0.5,seed=0, "):
    sweep.expand(config, '/sweeps', [], only=['seed=0', 'lrn=0'])


def test_run_names_and_flag_values():
  assert naming.run_name({'model.activation': 'tanh', 'learning_rate': 0.001, 'seed': 0}) == \
      'activation=tanh,learning_rate=0.001,seed=0'
  assert naming.flag_value((8, 8, 16)) == '(8,8,16)' and naming.flag_value((4,)) == '(4,)'


TINY_SWEEP = '''
from configs import relu_vs_tanh

def get_config():
  config = relu_vs_tanh.get_config('figure1_net')
  config.dataset.name = 'synthetic'
  config.dataset.synthetic_train_examples = 640
  config.dataset.synthetic_eval_examples = 50
  config.model.conv_features = (8, 8, 16)
  config.batch_size = 16
  config.eval_batch_size = 50
  config.num_epochs = 1
  config.stop_at_train_error = 0.0
  config.log_every_steps = 10
  config.mesh.data = 1
  return config

def get_sweep():
  return [{'seed': 0}, {'seed': 1}]
'''


def test_local_sweep_runs_resumes_and_skips(tmp_path, capsys):
  config = tmp_path / 'tiny_sweep.py'
  config.write_text(TINY_SWEEP)
  root = tmp_path / 'sweep'
  first, second = sweep.expand(str(config), str(root), [])
  # Interrupt the first run part-way, as a preemption would.
  process = subprocess.Popen(first.command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while not os.path.exists(os.path.join(first.workdir, 'metrics.jsonl')) or \
      not read_metrics(first.workdir):
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM
  stopped_at = run_folder.read_run(first.workdir).latest_step
  assert 0 < stopped_at < 40
  assert sweep.status(first) == f'resumes at step {stopped_at}'
  assert sweep.status(second) == 'new'

  # Each run's record is written as it finishes (records/sweep: the root's own name, so that
  # the report names the runs alike from either).
  record_root = tmp_path / 'records' / 'sweep'
  assert local.main([f'--config={config}', f'--root={root}', f'--record={record_root}']) == 0
  capsys.readouterr()
  log = open(os.path.join(first.workdir, 'log.txt')).read()
  assert f'Resumed from the checkpoint at step {stopped_at}' in log
  for run in (first, second):
    assert run_folder.read_run(run.workdir).finished
    assert run_folder.read_run(run.workdir).latest_step == 40
    assert sorted(os.listdir(record_root / run.name)) == ['conv1_kernels.npz', 'record.json']
  modified = [os.path.getmtime(os.path.join(r.workdir, 'metrics.jsonl')) for r in (first, second)]
  assert local.main([f'--config={config}', f'--root={root}']) == 0
  said = capsys.readouterr().out
  assert 'seed=0: finished' in said and 'seed=1: finished' in said
  assert 'started' not in said
  assert modified == [os.path.getmtime(os.path.join(r.workdir, 'metrics.jsonl'))
                      for r in (first, second)]
  # Asked for more epochs, a run finished (and recorded) under fewer is not finished: every
  # launcher hands it to main, which continues it.
  longer = ['--', '--config.num_epochs=2']
  assert local.main([f'--config={config}', f'--root={root}', f'--record={record_root}',
                     '--dry_run', *longer]) == 0
  said = capsys.readouterr().out
  assert 'seed=0: resumes at step 40 (num_epochs 1 -> 2)' in said and 'finished' not in said
  assert slurm.main([f'--config={config}', f'--root={root}', '--dry_run', *longer]) == 0
  assert '#SBATCH --array=0-1' in capsys.readouterr().out
  # The records give the report's tables and plots to the byte, and the same kernels.
  outputs = {}
  for table in ('runs', 'claims'):
    outputs[table] = report_output(record_root, table, tmp_path / 'plots_of_records')
    assert outputs[table] == report_output(root, table, tmp_path / 'plots_of_folders')
  # Each table is one CSV with its own header: one row per run, one per claim.
  assert [row['run'] for row in csv.DictReader(io.StringIO(outputs['runs']))] == \
      ['sweep/seed=0', 'sweep/seed=1']
  assert [row['claim'] for row in csv.DictReader(io.StringIO(outputs['claims']))] == \
      [f'C{i}' for i in range(1, 9)]
  for name in os.listdir(tmp_path / 'plots_of_folders'):
    assert (tmp_path / 'plots_of_records' / name).read_bytes() == \
        (tmp_path / 'plots_of_folders' / name).read_bytes(), name
  for kernel_of in (records.conv1_kernel, records.initial_conv1_kernel):
    np.testing.assert_array_equal(kernel_of(run_folder.read_run(second.workdir)),
                                  kernel_of(run_folder.read_run(str(record_root / 'seed=1'))))
  # A recorded run is skipped even where its folder is gone (a new machine).
  moved = shutil.move(first.workdir, tmp_path / 'first_run')
  assert local.main([f'--config={config}', f'--root={root}', f'--record={record_root}']) == 0
  said = capsys.readouterr().out
  assert 'seed=0: recorded' in said and 'started' not in said
  assert not os.path.exists(first.workdir)
  shutil.move(moved, first.workdir)

  # The report reads both runs back; plant known metrics in a checkpoint of the second.
  manager = checkpoints.create_manager(second.workdir)
  state = checkpoints.restore_on_host(manager, 40)
  planted = CheckpointMetrics(
      metrics={'epoch': 1.0, 'eval_top1_error': 0.1234, 'eval_top5_error': 0.0123},
      finished=True, history={'epoch': [1], 'train_epoch_error': [0.2345],
                              'eval_top1_error': [0.1234]})
  checkpoints.save(manager, 41, state, planted)
  manager.wait_until_finished()
  manager.close()
  result = subprocess.run([sys.executable, '-m', 'alexnet_jax.report', str(root), str(root),
                           str(root / 'seed=1'), '--table=runs', '--format=csv',
                           f'--plot={tmp_path / "plots"}'], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  # Reached three times (a root twice, a run inside it), each run is one row.
  rows = list(csv.DictReader(io.StringIO(result.stdout)))
  assert len(rows) == 2 and 'counted once' in result.stderr
  rows = {row['run']: row for row in rows}
  assert sorted(rows) == ['sweep/seed=0', 'sweep/seed=1']
  planted_row = rows['sweep/seed=1']
  assert (planted_row['epochs'], planted_row['train error %'], planted_row['top-1 final %'],
          planted_row['top-5 final %'], planted_row['epochs to 25% train error']) == \
      ('1', '23.45', '12.34', '1.23', '1')
  assert planted_row['overrides'] == 'seed=1' or 'seed=1' in planted_row['overrides']
  curves = matplotlib.image.imread(str(tmp_path / 'plots' / 'curves_relu_vs_tanh_synthetic_cifar_net.png'))
  assert curves.shape[:2] == (450, 700)
  figure1 = matplotlib.image.imread(str(tmp_path / 'plots' / 'figure1_synthetic_cifar_net.png'))
  assert figure1.shape[:2] == (320, 480)  # 6 x 4 inches at 80 dpi: small enough to commit.
  kernels = matplotlib.image.imread(str(tmp_path / 'plots' / 'conv1_seed=0.png'))
  assert kernels.shape[:2] == (7 * plots.KERNEL_SCALE, 49 * plots.KERNEL_SCALE)


def report_output(root, table, plot_dir):
  """What `report ROOT --table=TABLE --format=csv --plot=PLOT_DIR` prints and draws, by the
  functions its main calls, in this process (the command itself runs in the test above)."""
  runs = report.distinct_runs([run_folder.read_run(f) for f in run_folder.find_runs(str(root))])
  rows = (report.run_rows(runs, [str(root)], 0.25) if table == 'runs' else
          report.claim_rows(runs, 'csv'))
  plots.write_all(runs, str(plot_dir))
  return report.format_table(rows, 'csv')


def test_slurm_script_for_a_three_run_sweep(tmp_path):
  config = tmp_path / 'three.py'
  config.write_text(TINY_SWEEP.replace("[{'seed': 0}, {'seed': 1}]",
                                       "[{'seed': 0}, {'seed': 1}, {'seed': 2}]"))
  runs = sweep.expand(str(config), str(tmp_path / 'root'), ['--config.dataset.data_dir=/d'])
  script = slurm.sbatch_script(runs, job_name='three', nodes=1, gpus_per_node=1,
                               cpus_per_task=8, time_limit='01:00:00', partition='',
                               log_dir=str(tmp_path))
  assert '#SBATCH --array=0-2' in script and '#SBATCH --requeue' in script
  for i, run in enumerate(runs):
    assert f'  {i}) command=' in script and f'--workdir={run.workdir}' in script
  path = tmp_path / 'three.sbatch'
  path.write_text(script)
  assert subprocess.run(['bash', '-n', str(path)], capture_output=True).returncode == 0
  dry = subprocess.run([sys.executable, '-m', 'launch.slurm', f'--config={config}',
                        f'--root={tmp_path / "root"}', '--dry_run'], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
  assert dry.returncode == 0 and dry.stdout.startswith('#!/bin/bash')


@pytest.mark.parametrize('flag', ['--parallel=0', '--parallel=-1', '--gpus_per_run=-1'])
def test_local_refuses_a_count_of_runs_at_once_below_one(tmp_path, capsys, flag):
  with pytest.raises(SystemExit) as exit_info:
    local.main([f'--config={REPO}/configs/relu_vs_tanh.py', f'--root={tmp_path}', flag])
  assert exit_info.value.code == 2
  assert 'run at least 1 at once, each with 0 or more GPUs' in capsys.readouterr().err
  assert not os.listdir(tmp_path)


def test_report_on_nothing_says_so_in_one_line(tmp_path):
  empty = subprocess.run([sys.executable, '-m', 'alexnet_jax.report', str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
  assert empty.returncode == 1
  assert f'{tmp_path}: no runs here' in empty.stderr
  (tmp_path / 'run').mkdir()
  (tmp_path / 'run' / 'config.json').write_text(
      '{"experiment": "lrn", "dataset": {"name": "x"}, "model": {"name": "alexnet"}}')
  assert 'no checkpoint yet' in subprocess.run(
      [sys.executable, '-m', 'alexnet_jax.report', str(tmp_path)], cwd=REPO,
      capture_output=True, text=True, timeout=60).stderr


def fake_run(activation='relu', lr=0.001, seed=0, train_errors=(), dataset='synthetic',
             **config):
  epochs = list(range(1, len(train_errors) + 1))
  history = {'epoch': epochs, 'train_epoch_error': list(train_errors)}
  latest = CheckpointMetrics(metrics=config.pop('metrics', {}), history=history, finished=True)
  model = {'name': 'cifar_net', 'activation': activation, **config.pop('model', {})}
  return Run('/r', {'model': model, 'dataset': {'name': dataset}, 'learning_rate': lr,
                    'seed': seed, **config}, 1, latest, latest)


def test_claim_c1_takes_each_activation_at_its_best_learning_rate():
  runs = [fake_run('relu', 0.001, s, (0.5, 0.3, 0.2)) for s in (0, 1)]  # 3 epochs.
  runs += [fake_run('relu', 0.01, 0, (0.9,) * 5)]  # Never: not the best rate.
  runs += [fake_run('tanh', 0.001, s, (0.5,) * 14 + (0.24,)) for s in (0, 1)]  # 15 epochs.
  verdict = claims.judge_relu_vs_tanh(runs)
  assert verdict.ours == ('median ratio 5.0 (per seed 5.0, 5.0); epochs to 25% training error: '
                          'ReLU (lr 0.001) 3, 3, tanh (lr 0.001) 15, 15; seeds [0, 1]')
  assert verdict.verdict == 'reproduced'
  assert claims.judge_relu_vs_tanh(runs[:2]).verdict == claims.NOT_RUN


def test_claim_c1_is_the_median_of_the_per_seed_ratios_against_half_the_paper():
  relu = [fake_run('relu', 0.002, s, (0.5,) * (n - 1) + (0.2,)) for s, n in enumerate((4, 5, 2))]
  tanh = [fake_run('tanh', 0.008, s, (0.5,) * (n - 1) + (0.2,)) for s, n in enumerate((8, 10, 9))]
  verdict = claims.judge_relu_vs_tanh(relu + tanh)  # Ratios 2, 2, 4.5: median 2.
  assert verdict.ours.startswith('median ratio 2.0 (per seed 2.0, 2.0, 4.5)')
  assert verdict.verdict == claims.DIRECTION_ONLY
  # A tanh run that never got there (12 epochs) bounds its seed's ratio: > 3 with ReLU's 4.
  capped = tanh[:1] + [fake_run('tanh', 0.008, 1, (0.5,) * 12), tanh[2]]
  verdict = claims.judge_relu_vs_tanh(relu + capped)  # 2, > 2.4, 4.5: median > 2.4, a bound.
  assert verdict.ours.startswith('median ratio >2.4 (per seed 2.0, >2.4, 4.5)')
  assert verdict.verdict == f'{claims.DIRECTION_ONLY} so far (capped)'
  slower_relu = [fake_run('relu', 0.002, s, (0.5,) * 9 + (0.2,)) for s in range(3)]
  assert claims.judge_relu_vs_tanh(slower_relu + tanh).verdict == claims.NOT_REPRODUCED


def test_claim_c5_reports_the_gaps_and_the_epochs_of_both_runs():
  def run(rate, train_errors, top1):
    return fake_run(model={'dropout_rate': rate}, train_errors=train_errors,
                    metrics={'eval_top1_error': top1})
  verdict = claims.judge_dropout([run(0.0, (0.5, 0.3, 0.2, 0.1), 0.35),
                                  run(0.5, (0.6, 0.4, 0.3, 0.2), 0.3)])
  assert verdict.ours == ('test minus training error 25.0 points without dropout, 10.0 with; '
                          'epochs to 25% training error 3.0 without, 4.0 with')
  assert verdict.verdict == 'reproduced'
  # Dropout short of 25% after its 4 epochs: both sides are timed to 27%, which both reached.
  verdict = claims.judge_dropout([run(0.0, (0.5, 0.3, 0.2, 0.1), 0.35),
                                  run(0.5, (0.6, 0.4, 0.3, 0.265), 0.3)])
  assert verdict.ours.endswith('epochs to 27% training error (the lowest whole percent every run '
                               'reached) 3.0 without, 4.0 with')


def test_comparison_claims_need_the_gain_in_every_seed():
  def run(lrn, seed, top1):
    return fake_run(seed=seed, model={'lrn': lrn},
                    metrics={'eval_top1_error': top1, 'eval_top5_error': top1 / 2})
  judge = claims.comparison(claims.has_lrn, claims.half_of(1.4, 2.0))
  verdict = judge([run(True, 0, 0.11), run(False, 0, 0.13), run(True, 1, 0.12),
                   run(False, 1, 0.13)])
  assert verdict.verdict == 'reproduced' and verdict.ours.startswith('top-1 -1.50 ± 0.71%')
  assert judge([run(True, 0, 0.11), run(False, 0, 0.13), run(True, 1, 0.14),
                run(False, 1, 0.13)]).verdict == 'not reproduced'
  assert judge([]).verdict == claims.NOT_RUN
  # Half the paper's size: 0.7 points of top-1 on ImageNet-like data, 1 point on CIFAR-10.
  assert judge([run(True, 0, 0.124), run(False, 0, 0.13)]).verdict == claims.DIRECTION_ONLY
  assert judge([run(True, 0, 0.122), run(False, 0, 0.13)]).verdict == 'reproduced'


def test_c2_on_cifar10_compares_the_13pct_and_11pct_layer_nets():
  def net(variant, top1):
    config = cuda_convnet_cifar.get_config(variant)
    return fake_run(dataset='cifar10', model=config.model.to_dict(),
                    metrics={'eval_top1_error': top1, 'eval_top5_error': top1 / 4})
  judge = claims.comparison(claims.has_lrn, claims.half_of(1.4, 2.0))
  assert claims.has_lrn(net('11pct', 0)) and not claims.has_lrn(net('13pct', 0))
  verdict = judge([net('13pct', 0.20), net('11pct', 0.192)])  # 0.8 points: below the 1 point.
  assert verdict.verdict == claims.DIRECTION_ONLY
  assert verdict.ours == ('top-1 -0.80%, top-5 -0.20% with the feature (centre crop; seeds [0]; '
                          'layer_net (layers-conv-local-11pct.cfg) vs layer_net '
                          '(layers-conv-local-13pct.cfg))')
  assert judge([net('13pct', 0.20), net('11pct', 0.18)]).verdict == 'reproduced'


def test_colour_specificity_of_hand_made_kernels():
  rng = np.random.default_rng(0)
  pattern = rng.normal(size=(11, 11))
  grey = np.stack([pattern] * 3, axis=-1)  # The same weights in R, G and B.
  red_minus_green = np.stack([pattern, -pattern, np.zeros_like(pattern)], axis=-1)
  red_only = np.stack([pattern, np.zeros_like(pattern), np.zeros_like(pattern)], axis=-1)
  kernels = np.stack([grey, red_minus_green, red_only, 0.9 * grey + 0.1 * red_minus_green],
                     axis=-1)
  score = claims.colour_specificity(kernels)
  assert score.shape == (4,)
  assert score[0] == pytest.approx(0.0, abs=1e-12)
  assert score[1] == pytest.approx(1.0)
  assert score[2] == pytest.approx(2 / 3)  # One channel: a third of its energy is grey.
  # Orthogonal parts add their energies: 0.01 * 2 / (0.81 * 3 + 0.01 * 2).
  assert score[3] == pytest.approx(0.02 / 2.45)


def test_c8_splits_the_towers_by_their_share_of_colour_specific_kernels(tmp_path):
  rng = np.random.default_rng(0)
  pattern = rng.normal(size=(11, 11, 1, 1))
  grey = np.concatenate([pattern] * 3, axis=2)  # Score 0.
  red_minus_green = np.concatenate([pattern, -pattern, 0 * pattern], axis=2)  # Score 1.

  def kernels(specific_in_tower1, specific_in_tower2, per_tower=4):
    towers = [[red_minus_green] * n + [grey] * (per_tower - n)
              for n in (specific_in_tower1, specific_in_tower2)]
    return np.concatenate(towers[0] + towers[1], axis=3)

  runs = [fake_run(seed=s, model={'name': 'alexnet', 'num_towers': 2}) for s in (0, 1)]
  one_tower = fake_run(seed=2, model={'name': 'alexnet', 'num_towers': 1})  # Not judged.
  # Seed 1's colour-specific tower is the first: the colour-agnostic tower is listed first.
  layout = {0: kernels(1, 3), 1: kernels(4, 0), 2: kernels(0, 0)}
  kernel_of = lambda run: layout[run.config['seed']]
  # Training added grey kernels to tower 1 and colour-specific ones to tower 2 in every run.
  initial_kernel_of = lambda run: kernel_of(run) - kernels(0, 4)
  judge = lambda runs: claims.judge_colour_towers(runs, kernel_of, initial_kernel_of)
  verdict = judge(runs + [one_tower])
  assert verdict.verdict == claims.REPRODUCED
  assert verdict.ours == (
      'kernels with colour specificity > 0.5: tower 1 1/4 colour-specific (median 0.00, '
      'quartiles 0.00-0.25); tower 2 3/4 colour-specific (median 1.00, quartiles 0.75-1.00); '
      'what training added: tower 1 0/4 colour-specific (median 0.00, quartiles 0.00-0.00); '
      'tower 2 4/4 colour-specific (median 1.00, quartiles 1.00-1.00) | '
      'tower 2 0/4 colour-specific (median 0.00, quartiles 0.00-0.00); tower 1 4/4 '
      'colour-specific (median 1.00, quartiles 1.00-1.00); what training added: tower 2 4/4 '
      'colour-specific (median 1.00, quartiles 1.00-1.00); tower 1 0/4 colour-specific (median '
      '0.00, quartiles 0.00-0.00) (2 runs)')
  layout[1] = kernels(2, 3)  # Shares 2/4 and 3/4: apart by a quarter, but no majority split.
  assert judge(runs).verdict == claims.NO_MAJORITY_SPLIT
  layout[1] = kernels(2, 2)
  assert judge(runs).verdict == claims.NOT_REPRODUCED
  assert judge([one_tower]).verdict == claims.NOT_RUN
  plots.colour_specificity(kernels(1, 3), 'seed 0', str(tmp_path / 'c8.png'))
  assert matplotlib.image.imread(str(tmp_path / 'c8.png')).shape[:2] == (280, 480)
  plots.colour_specificity(kernels(1, 3), 'seed 0', str(tmp_path / 'c8_learned.png'),
                           initial_kernel_of(runs[0]))  # A second panel: what training added.
  assert matplotlib.image.imread(str(tmp_path / 'c8_learned.png')).shape[:2] == (280, 960)


def test_a_runs_initial_conv1_kernel_is_the_one_its_training_started_from(tmp_path):
  # A rate too small to move the weights: the trained kernel is the initial one to rounding.
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(small_config(**{'learning_rate': 1e-12, 'num_epochs': 1,
                                        'dataset.synthetic_train_examples': 64}), workdir)
  run = run_folder.read_run(workdir)
  initial, trained = records.initial_conv1_kernel(run), records.conv1_kernel(run)
  assert initial.shape == trained.shape == (5, 5, 3, 8)
  assert np.std(initial) == pytest.approx(0.01, rel=0.2)  # The paper's N(0, 0.01^2).
  assert np.abs(trained - initial).max() < 1e-6 * np.abs(initial).max()
  other_seed = dataclasses.replace(run, config={**run.config, 'seed': 1})
  assert np.abs(records.initial_conv1_kernel(other_seed) - initial).max() > 0.01


def test_the_ablations_sweep_shares_its_baseline_among_the_claims():
  from configs import ablations  # pylint: disable=import-outside-toplevel
  base = run_folder.flatten(ablations.get_config().to_dict())
  runs = {}
  for name, overrides in ablations.ABLATIONS:
    config = ablations.get_config()
    config.update_from_flattened_dict({**overrides, 'dataset.data_dir': '/data/imagenette'})
    flat = run_folder.flatten(config.to_dict())
    changed = {k for k in flat if flat[k] != base[k]} - {'dataset.data_dir'}
    assert changed == set(overrides)  # Its own switch and nothing else.
    runs[name] = Run('/r', config.to_dict(), 1, None, None)
  by_claim = {c.id: sorted(n for n, r in runs.items() if c.takes(r)) for c in claims.CLAIMS}
  assert by_claim == {'C1': [], 'C2': ['C2', 'baseline'], 'C3': ['C3', 'baseline'],
                      'C4': ['C4', 'baseline'], 'C5': [], 'C6': ['C6', 'baseline'], 'C7': [],
                      'C8': ['baseline']}
  # Its rows name the image folder, at its crop size.
  assert claims.dataset_of(runs['baseline']) == 'imagenette (image folder)'
