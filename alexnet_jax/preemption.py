"""When to write a checkpoint besides the step interval: on SIGTERM, SIGINT or SIGHUP, and every
N minutes.

Every process of a run must take the same decision at the same step (orbax saves together), so
the decision is the logical OR over processes.
"""

import signal
import threading
import time

import numpy as np


class CheckpointTriggers:
  """A context that turns SIGTERM, SIGINT and SIGHUP into 'checkpoint now, then stop'.

  A second signal of the same kind acts as it would have without this context. A signal the
  process ignores stays ignored (SIGHUP under `nohup`: the user asked the run to outlive its
  terminal). Outside the main thread, where Python cannot handle signals, only the timer works.
  """

  # SIGHUP: the terminal that started the run was closed (an ssh session that dropped).
  SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

  def __init__(self, every_minutes: float, process_count: int = 1):
    self._every_seconds = every_minutes * 60
    self._process_count = process_count
    self._last_save = time.monotonic()
    self._previous_handlers = {}
    self.received: int | None = None  # The signal that asked to stop.

  def __enter__(self) -> 'CheckpointTriggers':
    if threading.current_thread() is threading.main_thread():
      for signal_number in self.SIGNALS:
        if signal.getsignal(signal_number) is not signal.SIG_IGN:
          self._previous_handlers[signal_number] = signal.signal(signal_number, self._handle)
    return self

  def __exit__(self, *unused_exc_info) -> None:
    for signal_number, handler in self._previous_handlers.items():
      signal.signal(signal_number, handler)

  def _handle(self, signal_number: int, unused_frame) -> None:
    self.received = signal_number
    signal.signal(signal_number, self._previous_handlers[signal_number])

  def saved(self) -> None:
    """Restarts the timer."""
    self._last_save = time.monotonic()

  def poll(self) -> tuple[int | None, bool]:
    """(the signal to stop for, or None; whether the checkpoint timer has run out), agreed by
    every process."""
    stop = self.received or 0
    timer = 0 < self._every_seconds <= time.monotonic() - self._last_save
    if self._process_count > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      gathered = multihost_utils.process_allgather(np.array([stop, timer], np.int32))
      stop, timer = int(gathered[:, 0].max()), bool(gathered[:, 1].max())
    return stop or None, timer
