"""Why a run stopped early: `main` prints each as one line, no traceback, with its exit code."""

import signal


class UserInputError(ValueError):
  """A bad config value, path or dataset, found before any work is done."""


class NonFiniteError(RuntimeError):
  """The loss or the parameters became NaN or Inf."""


class Interrupted(Exception):
  """SIGTERM or SIGINT stopped the run after its checkpoint at `step` was written."""

  def __init__(self, signal_number: int, step: int):
    self.signal_number, self.step = signal_number, step
    super().__init__(f'stopped by {signal.Signals(signal_number).name} at step {step}, after '
                     'writing its checkpoint; run the same command to resume.')
