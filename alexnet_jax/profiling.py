"""A jax.profiler trace of a few training steps (config.profile_steps), as MaxText and big_vision
take one: into WORKDIR/profile, each step annotated (StepTraceAnnotation) so that TensorBoard's
profile plugin or XProf shows it as a step."""

import contextlib
import os
from typing import Any, Iterator

import jax
from absl import logging

from alexnet_jax import paths

PROFILE_DIR = 'profile'  # WORKDIR/profile/plugins/profile/<time>/<host>.xplane.pb, jax's layout.


class StepProfiler:
  """Traces steps first..last (1-based, inclusive) of `profile_steps` = (first, last); () traces
  nothing. A run resumed past `first` traces nothing either: the trace shows whole steps only."""

  def __init__(self, workdir: str, profile_steps: tuple[int, ...]):
    self._log_dir = paths.join(workdir, PROFILE_DIR)
    self._steps = tuple(profile_steps)
    self._tracing = False

  @contextlib.contextmanager
  def step(self, step: int) -> Iterator[None]:
    """Around the dispatch of training step `step` (1-based)."""
    if self._steps and step == self._steps[0]:
      jax.profiler.start_trace(self._log_dir)
      self._tracing = True
      logging.info('Tracing steps %d-%d into %s.', *self._steps, self._log_dir)
    if not self._tracing:
      yield
      return
    with jax.profiler.StepTraceAnnotation('train', step_num=step):
      yield

  def after_step(self, step: int, outputs: Any) -> None:
    """Ends the trace once step `last` has run (its outputs computed, not only dispatched)."""
    if self._tracing and step >= self._steps[1]:
      jax.block_until_ready(outputs)
      self.stop()

  def stop(self) -> None:
    if self._tracing:
      jax.profiler.stop_trace()
      self._tracing = False
      logging.info('Wrote the trace of steps %d-%d to %s.', *self._steps,
                   os.fspath(self._log_dir))
