"""The report's PNGs: error curves per sweep (Figure 1's look) and conv1 kernels (Figure 3)."""

import io
import os
import re
from typing import Sequence

import matplotlib

matplotlib.use('Agg')  # Files only, no display.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from alexnet_jax import claims, models, paths, records  # pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax.run_folder import Run  # pylint: disable=g-import-not-at-top,wrong-import-position

KERNEL_SCALE = 4  # Pixels per kernel weight in the kernel grid.


def _file_name(text: str) -> str:
  return re.sub(r'[^A-Za-z0-9_.=,-]+', '_', text).strip('_')


def _save_figure(fig: 'matplotlib.figure.Figure', path: str) -> None:
  """Writes a figure as PNG to a local path or a URI."""
  image = io.BytesIO()
  fig.savefig(image, format='png')
  paths.write_bytes(path, image.getvalue())


def error_curves(runs: Sequence[Run], title: str, path: str) -> None:
  """Training (solid) and validation (dashed) error against epochs, one colour per run."""
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
  for i, run in enumerate(runs):
    history = run.history
    epochs = history.get('epoch', [])
    color = f'C{i % 10}'
    label = os.path.basename(run.workdir)
    ax.plot(epochs, history.get('train_epoch_error', []), color=color, label=label)
    evaluated = [(e, v) for e, v in zip(epochs, history.get('eval_top1_error', []))
                 if v is not None]
    if evaluated:
      ax.plot(*zip(*evaluated), color=color, linestyle='--')
  ax.set_xlabel('epochs')
  ax.set_ylabel('error (solid: training, dashed: validation top-1)')
  ax.set_ylim(0, 1)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  _save_figure(fig, path)
  plt.close(fig)


def figure1(runs: Sequence[Run], target: float, path: str) -> None:
  """Figure 1's plot: training error (over each epoch's mini-batches) against epochs, ReLU runs
  solid and tanh runs dashed, one colour per learning rate, and the target as a dotted line."""
  fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
  rates = sorted({run.config['learning_rate'] for run in runs})
  for run in sorted(runs, key=lambda r: (r.config['model']['activation'],
                                         r.config['learning_rate'], r.config['seed'])):
    activation = run.config['model']['activation']
    rate = run.config['learning_rate']
    ax.plot(run.history.get('epoch', []), run.history.get('train_epoch_error', []),
            color=f'C{rates.index(rate) % 10}', linestyle='-' if activation == 'relu' else '--',
            marker='.', label=f'{activation}, lr {rate:g}, seed {run.config["seed"]}')
  ax.axhline(target, color='k', linestyle=':', linewidth=1)
  ax.set_xlabel('epochs')
  ax.set_ylabel('training error rate')
  ax.set_ylim(0, 0.8)
  dataset = runs[0].config['dataset']
  name = os.path.basename(os.path.normpath(dataset['data_dir'])) \
      if dataset['name'] == 'image_folder' else dataset['name']
  ax.set_title(f'ReLU (solid) vs tanh (dashed) on {name}')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  _save_figure(fig, path)
  plt.close(fig)


def kernel_grid(kernel: np.ndarray, num_towers: int, columns: int = 8) -> np.ndarray:
  """conv1 kernels (k, k, 3, C) as one RGB image: a block per tower (channels split in
  contiguous halves, as the towers hold them), each kernel stretched to [0, 1]."""
  size, _, _, channels = kernel.shape
  per_tower = channels // num_towers
  low = kernel.min(axis=(0, 1, 2), keepdims=True)
  high = kernel.max(axis=(0, 1, 2), keepdims=True)
  kernel = (kernel - low) / np.maximum(high - low, 1e-12)
  rows = -(-per_tower // columns)
  cell = size + 1
  blocks = []
  for tower in range(num_towers):
    block = np.ones((rows * cell + 1, columns * cell + 1, 3))
    for i in range(per_tower):
      r, c = divmod(i, columns)
      block[1 + r * cell:1 + r * cell + size, 1 + c * cell:1 + c * cell + size] = \
          kernel[..., tower * per_tower + i]
    blocks.append(block)
  gap = np.ones((blocks[0].shape[0], cell, 3))
  grid = np.concatenate([x for b in blocks for x in (b, gap)][:-1], axis=1)
  return np.repeat(np.repeat(grid, KERNEL_SCALE, axis=0), KERNEL_SCALE, axis=1)


def conv1_kernels(kernel: np.ndarray, num_towers: int, path: str) -> None:
  """Writes conv1's kernels (k, k, 3, C) as Figure 3 draws them: a block per tower."""
  image = io.BytesIO()
  plt.imsave(image, kernel_grid(kernel, num_towers), format='png')
  paths.write_bytes(path, image.getvalue())


def colour_specificity(kernel: np.ndarray, title: str, path: str,
                       initial_kernel: np.ndarray | None = None) -> None:
  """Claim C8's measure (claims.colour_specificity) of each conv1 kernel, one histogram per
  tower, with the bar between colour-agnostic and colour-specific; given the kernel training
  started from, a second panel measures what training added to it."""
  panels = [('the kernels', kernel)]
  if initial_kernel is not None:
    panels.append(('what training added (minus the initial kernels)', kernel - initial_kernel))
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.5), dpi=80, squeeze=False)
  bins = np.linspace(0, 1, 21)
  for ax, (panel, weights) in zip(axes[0], panels):
    towers = np.split(claims.colour_specificity(weights), 2)
    for i, scores in enumerate(towers):
      ax.hist(scores, bins=bins, alpha=0.6, color=f'C{i}',
              label=f'tower {i + 1} (kernels {i * scores.size}-{(i + 1) * scores.size - 1})')
    ax.axvline(claims.COLOUR_SPECIFIC, color='k', linestyle=':', linewidth=1)
    ax.set_xlabel("colour specificity (share of a kernel's energy outside grey)")
    ax.set_ylabel('kernels')
    ax.set_title(f'{title}: {panel}', fontsize=9)
    ax.legend(fontsize=7)
  fig.tight_layout()
  _save_figure(fig, path)
  plt.close(fig)


def write_all(runs: Sequence[Run], out_dir: str, target: float = 0.25) -> list[str]:
  """Every plot of `runs` into `out_dir` (Figure 1's for the relu_vs_tanh sweep, with `target`
  training error); returns the paths written."""
  paths.Path(out_dir).mkdir(parents=True, exist_ok=True)
  written = []
  groups: dict[tuple[str, str, str], list[Run]] = {}  # One plot per sweep, dataset and net.
  for run in runs:
    if run.history.get('epoch'):
      key = (run.config.get('experiment', 'runs'), run.config['dataset']['name'],
             claims.net_of(run))
      groups.setdefault(key, []).append(run)
  for (experiment, dataset, net), group in sorted(groups.items()):
    name = f'{dataset}_{net}'
    path = paths.join(out_dir, _file_name(f'curves_{experiment}_{name}') + '.png')
    error_curves(group, f'{experiment} on {dataset}, {net}', path)
    written.append(path)
    if experiment == 'relu_vs_tanh':
      path = paths.join(out_dir, _file_name(f'figure1_{name}') + '.png')
      figure1(group, target, path)
      written.append(path)
  for run in runs:  # Figure 3 and C8 from each run's best (else latest) checkpoint.
    kernel = records.conv1_kernel(run)
    if kernel is None:
      continue
    name = os.path.basename(run.workdir)
    num_towers = models.num_towers(run.config['model'])
    path = paths.join(out_dir, _file_name(f'conv1_{name}') + '.png')
    conv1_kernels(kernel, num_towers, path)
    written.append(path)
    if num_towers == 2:
      path = paths.join(out_dir, _file_name(f'colour_specificity_{name}') + '.png')
      colour_specificity(kernel, f'conv1 colour specificity per tower, {name}', path,
                         records.initial_conv1_kernel(run))
      written.append(path)
  return written
