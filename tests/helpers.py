"""What several test files share: the repository's path, small configs and networks, fixtures
written on the fly, readers of a run folder, and a closeness check."""

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
import tensorflow as tf

from alexnet_jax import checkpoints
from configs import relu_vs_tanh

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tests that repeat what another test or a measurement in docs/ already holds, at a cost CI's
# 15 minutes cannot spare: run with ALEXNET_SLOW_TESTS=1.
slow = pytest.mark.skipif(not os.environ.get('ALEXNET_SLOW_TESTS'),
                          reason='slow; set ALEXNET_SLOW_TESTS=1 to run it')
# The paper's layout with few kernels (model config keys), for AlexNet tests on small images.
SMALL_ALEXNET = dict(conv_features=(16, 32, 48, 48, 32), fc_features=(64, 64))


def jit_init(model):
  """`model.init` (inference mode) jitted: eager Flax runs op by op, each op compiled on its own,
  several times slower."""
  return jax.jit(functools.partial(model.init, train=False))


def small_config(**overrides):
  """The Figure-1 net on the synthetic task: 512 training and 100 evaluation images."""
  config = relu_vs_tanh.get_config('figure1_net')
  config.dataset.name = 'synthetic'
  config.dataset.synthetic_train_examples = 512
  config.dataset.synthetic_eval_examples = 100
  config.dataset.cache = False
  config.dataset.shuffle_buffer = 512
  config.model.conv_features = (8, 8, 16)
  config.batch_size = 32
  config.eval_batch_size = 16  # 100 = 6 x 16 + 4: the last batch is padded.
  config.learning_rate = 0.001
  config.num_epochs = 2
  config.log_every_steps = 4
  config.checkpoint_every_steps = 1000
  config.mesh.data = 1
  config.update_from_flattened_dict(overrides)
  return config


def write_image_folder(root, splits=('train', 'test'), classes=('cat', 'dog', 'ship'),
                       per_class=5, size=(12, 10)):
  """A tiny split/label/image.jpg tree; images of class i are bright in channel i."""
  rng = np.random.default_rng(0)
  for split in splits:
    for i, name in enumerate(classes):
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      for j in range(per_class):
        image = rng.integers(0, 60, (*size, 3)).astype(np.uint8)
        image[..., i % 3] += 180
        tf.io.write_file(os.path.join(root, split, name, f'{j:04d}.jpg'),
                         tf.io.encode_jpeg(image))
  return root


def send_signal_after_step(workdir, step, signal_number=signal.SIGTERM):
  """Sends `signal_number` to this process once metrics.jsonl has reached `step`."""

  def watch():
    path = os.path.join(workdir, 'metrics.jsonl')
    while not (os.path.exists(path) and any(r['step'] >= step for r in read_metrics(workdir))):
      time.sleep(0.01)
    os.kill(os.getpid(), signal_number)

  thread = threading.Thread(target=watch, daemon=True)
  thread.start()
  return thread


def run_main(*args, env=None, config='configs/relu_vs_tanh.py:figure1_net', wait=True):
  """`python -m alexnet_jax.main --config=CONFIG ARGS` from the repository; `env` changes its
  environment (None removes a variable). The finished process, or with wait=False the running
  one (its output piped)."""
  environ = {**os.environ, **(env or {})}
  command = [sys.executable, '-m', 'alexnet_jax.main', f'--config={config}', *args]
  kwargs = dict(cwd=REPO, text=True, env={k: v for k, v in environ.items() if v is not None})
  if not wait:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
  return subprocess.run(command, capture_output=True, timeout=300, **kwargs)


def read_metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def latest_params(workdir):
  with checkpoints.create_manager(workdir, read_only=True) as manager:
    step = manager.latest_step()
    return step, checkpoints.restore_on_host(manager, step)['params']


def assert_close(got, want, rtol=1e-5):
  """Equal within rtol, relative to each value and to the largest |want|."""
  got, want = np.asarray(got), np.asarray(want)
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


def tensorboard_scalars(folder: str, tag: str) -> list[tuple[int, float]]:
  """(step, value) of the scalar `tag` as TensorBoard shows it: its own loader reads the event
  files of `folder`, the steps a resumed run purged left out."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  loader = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.SCALARS: 0})
  loader.Reload()
  return [(event.step, event.value) for event in loader.Scalars(tag)]


def cifar_net_forward_flops(config, num_classes: int = 10) -> float:
  """The Figure-1 net's forward multiply-adds x 2 per image, counted by hand from its config: each
  convolution keeps the map's size (SAME), each pooling halves it (cuda-convnet's, padded)."""
  size, channels, flops = config.dataset.crop_size, 3, 0
  for features in config.model.conv_features:
    flops += 2 * config.model.kernel_size ** 2 * channels * features * size * size
    channels, size = features, -(-size // 2)
  return flops + 2 * size * size * channels * num_classes
