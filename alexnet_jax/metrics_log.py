"""A run's log of numbers: metrics.jsonl (through `paths`, local or gs://) and TensorBoard scalars
(tensorboardX's event files, which it writes to local folders and to gs:// itself).

A resumed run logs again the steps after its checkpoint that a killed run had logged: its
metrics.jsonl is trimmed to the checkpoint, and its new event file starts with tensorboardX's
`purge_step`, which tells TensorBoard to hide the older files' events of those steps (each step
shows once).
"""

import json
import os
from typing import Any

import tensorboardX
from absl import logging

from alexnet_jax import paths

METRICS_FILE = 'metrics.jsonl'
EVENTS_PREFIX = 'events.out.tfevents.'  # tensorboardX's (and TensorFlow's) event file names.
# In an object store each upload sends a whole file again: at most one per file this often, and
# one at each checkpoint (flush), so that what a checkpoint resumes from is in the files too.
UPLOAD_EVERY_S = 300


def _metrics_record(line: str) -> dict[str, Any] | None:
  """A metrics.jsonl line's record, or None when it is not JSON or names no integer step."""
  try:
    record = json.loads(line)
  except ValueError:
    return None
  return record if isinstance(record, dict) and isinstance(record.get('step'), int) else None


class MetricsWriter:
  """metrics.jsonl and TensorBoard scalars, written by process 0 only."""

  def __init__(self, workdir: str, enabled: bool, start_step: int):
    """Continues metrics.jsonl from `start_step`: the records of later steps, left by a run
    killed after its last checkpoint, are dropped, since the resumed run writes them again."""
    self._enabled = enabled
    if not enabled:
      return
    path = paths.join(workdir, METRICS_FILE)
    if paths.Path(path).exists():
      lines = [line for line in paths.Path(path).read_text().splitlines(keepends=True)
               if line.strip()]
      records = [_metrics_record(line) for line in lines]
      unreadable = sum(r is None for r in records)
      if unreadable:  # A line cut short (a full disk, a kill) or not a record of a step.
        logging.warning('Dropped %d unreadable lines of %s.', unreadable, path)
      kept = [line if line.endswith('\n') else line + '\n'
              for line, r in zip(lines, records) if r is not None and r['step'] <= start_step]
      paths.write_text(path, ''.join(kept))  # Whole or not at all: a kill loses no record.
    self._jsonl = paths.AppendOnlyFile(path, UPLOAD_EVERY_S)
    # The process id in the name: two writers started in one second never share a file.
    self._events = tensorboardX.SummaryWriter(
        os.fspath(workdir), purge_step=start_step + 1,
        flush_secs=UPLOAD_EVERY_S, filename_suffix=f'.{os.getpid()}')

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self._enabled:
      return
    self._jsonl.append((json.dumps({'step': step, **metrics}) + '\n').encode())
    for key, value in metrics.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool) and key != 'epoch':
        self._events.add_scalar(key, value, step)

  def flush(self) -> None:
    """Everything written so far, in the files (in an object store: uploaded)."""
    if self._enabled:
      self._jsonl.flush()
      self._events.flush()

  def close(self) -> None:
    if self._enabled:
      self._jsonl.flush()
      self._events.close()
