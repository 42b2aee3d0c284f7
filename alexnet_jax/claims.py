"""The paper's claims (DESIGN section 4), and how the runs of a sweep decide each.

A claim is judged from the runs of its experiment (`config.experiment`) on one dataset. The
rules, stated once here:
- C1: epochs to 25% training error, tanh over ReLU, each at its best learning rate (the lowest
  mean over seeds); reproduced when the ratio is at least 3 (half the paper's ~6).
- C2, C3, C4, C6: the final top-1 error without the feature minus with it (10-crop when the runs
  have it, else centre crop); reproduced when it is positive in the mean and in every seed.
- C5: reproduced when the run without dropout overfits more (final test error minus final
  training error) and the run with dropout needs more epochs to the target training error (25%,
  or the lowest whole percent that every run reached, when a run never reached 25%).
- C7: ImageNet (ILSVRC-2012 val) only; reproduced within 2 points of the paper's top-1.
- C8: judged by eye from the conv1 kernel plots.
"""

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

from alexnet_jax.run_folder import Run

TOP1, TOP5 = 'eval_top1_error', 'eval_top5_error'
TOP1_10CROP, TOP5_10CROP = 'eval_10crop_top1_error', 'eval_10crop_top5_error'
NOT_RUN, RUNNING = 'not run', 'running'


@dataclasses.dataclass(frozen=True)
class Verdict:
  ours: str
  verdict: str


@dataclasses.dataclass(frozen=True)
class Claim:
  id: str
  experiment: str
  text: str
  paper: str
  judge: Callable[[Sequence[Run]], Verdict]


def setting(run: Run, key: str) -> Any:
  """A config value by dotted key ('model.lrn')."""
  value: Any = run.config
  for part in key.split('.'):
    value = value[part]
  return value


def epochs_to(run: Run, target: float) -> float:
  """The first epoch whose training error (over its mini-batches) is at most `target`; inf if
  none."""
  history = run.history
  for epoch, error in zip(history.get('epoch', []), history.get('train_epoch_error', [])):
    if error is not None and error <= target:
      return float(epoch)
  return math.inf


def final(run: Run, key: str) -> float | None:
  return None if run.latest is None else run.latest.get(key)


def test_error_keys(runs: Sequence[Run]) -> tuple[str, str, str]:
  """(top-1 key, top-5 key, their name): 10-crop where every run has it."""
  if runs and all(final(r, TOP1_10CROP) is not None for r in runs):
    return TOP1_10CROP, TOP5_10CROP, '10-crop'
  return TOP1, TOP5, 'centre crop'


def mean_spread(values: Sequence[float]) -> str:
  values = [100 * v for v in values]
  if len(values) == 1:
    return f'{values[0]:.2f}%'
  return f'{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}%'


def _unfinished(runs: Sequence[Run]) -> Verdict | None:
  if not runs:
    return Verdict('', NOT_RUN)
  pending = [r for r in runs if not r.finished]
  if pending:
    return Verdict(f'{len(runs) - len(pending)} of {len(runs)} runs finished', RUNNING)
  return None


def judge_relu_vs_tanh(runs: Sequence[Run], target: float = 0.25) -> Verdict:
  early = _unfinished(runs)
  if early:
    return early
  best = {}  # activation -> (mean epochs, learning rate, {seed: epochs})
  for activation in ('relu', 'tanh'):
    by_lr: dict[float, dict[int, float]] = {}
    for run in runs:
      if setting(run, 'model.activation') == activation:
        by_lr.setdefault(setting(run, 'learning_rate'), {})[setting(run, 'seed')] = \
            epochs_to(run, target)
    if not by_lr:
      return Verdict(f'no {activation} runs', NOT_RUN)
    best[activation] = min((np.mean(list(s.values())), lr, s) for lr, s in by_lr.items())
  (relu_epochs, relu_lr, relu_seeds), (tanh_epochs, tanh_lr, tanh_seeds) = \
      best['relu'], best['tanh']
  if math.isinf(relu_epochs):
    return Verdict(f'ReLU never reached {target:.0%} training error', 'not reproduced')
  seeds = sorted(set(relu_seeds) & set(tanh_seeds))
  ratios = [tanh_seeds[s] / relu_seeds[s] for s in seeds]
  detail = (f'ReLU (lr {relu_lr:g}) {relu_epochs:.1f} epochs, tanh (lr {tanh_lr:g}) '
            f'{tanh_epochs:.1f} epochs to {target:.0%} training error; seeds {seeds}')
  if math.isinf(tanh_epochs):
    longest = max(max(r.history.get('epoch', [0])) for r in runs
                  if setting(r, 'model.activation') == 'tanh')
    bound = longest / relu_epochs
    return Verdict(f'ratio > {bound:.1f} (tanh did not reach it in {longest} epochs); {detail}',
                   'reproduced' if bound >= 3 else 'not reproduced (capped)')
  spread = f' ± {np.std(ratios, ddof=1):.1f}' if len(ratios) > 1 else ''
  ratio = tanh_epochs / relu_epochs
  return Verdict(f'ratio {ratio:.1f}{spread}; {detail}',
                 'reproduced' if ratio >= 3 else 'not reproduced')


def comparison(key: str, with_value: Any, without_value: Any) -> Callable[[Sequence[Run]], Verdict]:
  """The rule of C2, C3, C4, C6: the feature (`key` = `with_value`) lowers the final error."""

  def judge(runs: Sequence[Run]) -> Verdict:
    early = _unfinished(runs)
    if early:
      return early
    top1, top5, crop = test_error_keys(runs)
    groups = {value: {setting(r, 'seed'): r for r in runs if setting(r, key) == value}
              for value in (with_value, without_value)}
    seeds = sorted(set(groups[with_value]) & set(groups[without_value]))
    if not seeds:
      return Verdict(f'needs runs with {key}={with_value} and ={without_value}', NOT_RUN)
    gains = {k: [final(groups[without_value][s], k) - final(groups[with_value][s], k)
                 for s in seeds] for k in (top1, top5)}
    ours = (f'top-1 {mean_spread(gains[top1])}, top-5 {mean_spread(gains[top5])} lower '
            f'({crop}; seeds {seeds})')
    reproduced = np.mean(gains[top1]) > 0 and min(gains[top1]) > 0
    return Verdict(ours, 'reproduced' if reproduced else 'not reproduced')

  return judge


def judge_dropout(runs: Sequence[Run], target: float = 0.25) -> Verdict:
  early = _unfinished(runs)
  if early:
    return early
  groups = {dropped: [r for r in runs if (setting(r, 'model.dropout_rate') > 0) == dropped]
            for dropped in (True, False)}
  if not groups[True] or not groups[False]:
    return Verdict('needs runs with and without dropout', NOT_RUN)

  def gap(run):
    return final(run, TOP1) - run.history['train_epoch_error'][-1]

  # Epochs to `target`, or, where a run never got there, to the lowest whole percent of
  # training error that every run reached: a fixed error that both sides' epochs can show.
  reached = max(min(e for e in r.history['train_epoch_error'] if e is not None) for r in runs)
  common = max(target, math.ceil(round(100 * reached, 6)) / 100)
  gaps = {k: float(np.mean([gap(r) for r in g])) for k, g in groups.items()}
  epochs = {k: float(np.mean([epochs_to(r, common) for r in g])) for k, g in groups.items()}
  note = '' if common == target else ' (the lowest whole percent every run reached)'
  ours = (f'test minus training error {100 * gaps[False]:.1f} points without dropout, '
          f'{100 * gaps[True]:.1f} with; epochs to {common:.0%} training error{note} '
          f'{epochs[False]:.1f} without, {epochs[True]:.1f} with')
  reproduced = gaps[False] > gaps[True] and epochs[True] > epochs[False]
  return Verdict(ours, 'reproduced' if reproduced else 'not reproduced')


def judge_imagenet(runs: Sequence[Run]) -> Verdict:
  imagenet = [r for r in runs if setting(r, 'dataset.name') == 'imagenet2012']
  if not imagenet:
    return Verdict(f'no ILSVRC-2012 run ({len(runs)} on other data)' if runs else '', NOT_RUN)
  early = _unfinished(imagenet)
  if early:
    return early
  top1, top5, crop = test_error_keys(imagenet)
  mean1 = float(np.mean([final(r, top1) for r in imagenet]))
  ours = (f'top-1 {mean_spread([final(r, top1) for r in imagenet])}, top-5 '
          f'{mean_spread([final(r, top5) for r in imagenet])} ({crop})')
  return Verdict(ours, 'reproduced' if abs(100 * mean1 - 40.7) <= 2 else 'not reproduced')


def judge_by_eye(runs: Sequence[Run]) -> Verdict:
  return Verdict('see the conv1 kernel plots (--plot)', 'judged by eye') if runs else \
      Verdict('', NOT_RUN)


CLAIMS = (
    Claim('C1', 'relu_vs_tanh', 'ReLUs reach 25% training error faster than tanh (Fig. 1)',
          '~6x fewer epochs', judge_relu_vs_tanh),
    Claim('C2', 'lrn', 'local response normalization lowers the error',
          'top-1 -1.4%, top-5 -1.2%; CIFAR-10 13% -> 11%', comparison('model.lrn', True, False)),
    Claim('C3', 'overlapping_pooling', 'overlapping pooling (3/2 vs 2/2) lowers the error',
          'top-1 -0.4%, top-5 -0.3%', comparison('model.pool_size', 3, 2)),
    Claim('C4', 'pca_lighting', 'PCA lighting lowers the error', 'top-1 -1% or more',
          comparison('dataset.pca_lighting', True, False)),
    Claim('C5', 'dropout', 'without dropout the net overfits; dropout ~doubles the epochs',
          'qualitative', judge_dropout),
    Claim('C6', 'towers', 'two towers beat one tower with half the kernels',
          'top-1 -1.7%, top-5 -1.2%', comparison('model.num_towers', 2, 1)),
    Claim('C7', 'default', 'one net on ILSVRC-2012 val', 'top-1 40.7%, top-5 18.2% (10-crop)',
          judge_imagenet),
    Claim('C8', 'default', 'tower 1 learns colour-agnostic, tower 2 colour-specific kernels',
          'qualitative (Fig. 3)', judge_by_eye),
)
