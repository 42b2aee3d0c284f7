"""What the claim configs share: their sweeps as grids, and the paper's config moved to a
variant's dataset (configs/datasets.py)."""

import itertools
from typing import Any

import ml_collections

from configs import datasets, default

SEEDS = (0, 1)  # Every claim's sweep repeats each condition with these seeds.


def grid(**axes: tuple[Any, ...]) -> list[dict[str, Any]]:
  """Every combination of the axes' values, as config overrides; '__' in a name stands for '.'.

  grid(model__lrn=(True, False), seed=(0, 1)) -> [{'model.lrn': True, 'seed': 0}, ...]
  """
  keys = [key.replace('__', '.') for key in axes]
  return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


def base(variant: str, variants: tuple[str, ...], experiment: str) -> ml_collections.ConfigDict:
  """The default config of `experiment`, moved to `variant`'s dataset; an unknown variant is
  named."""
  if variant not in variants:
    raise ValueError(f'unknown variant {variant!r}; this config has {list(variants)} '
                     '(--config=configs/NAME.py:VARIANT).')
  config = default.get_config()
  config.experiment = experiment
  return datasets.VARIANTS[variant](config)
