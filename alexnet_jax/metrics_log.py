"""A run's log of numbers: metrics.jsonl and TensorBoard scalars, through `paths` (local or gs://).

The TensorBoard event files are written here, not by tf.summary, so that they go wherever the
rest of the run goes: an event file is a TFRecord file (each record: its length, a masked CRC-32C
of the length, the serialized Event proto, a masked CRC-32C of it) whose first Event names the
file version.
"""

import json
import os
import socket
import struct
import time
from typing import Any, Iterator

from absl import logging
from tensorflow.core.framework import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.util import event_pb2

from alexnet_jax import paths

METRICS_FILE = 'metrics.jsonl'
EVENTS_PREFIX = 'events.out.tfevents.'
# In an object store each upload sends a whole file again: at most one per file this often, and
# one at each checkpoint (flush), so that what a checkpoint resumes from is in the files too.
UPLOAD_EVERY_S = 300.0
# What tf.summary.scalar writes, so that TensorBoard shows these as scalars.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'))


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected.
    table.append(crc)
  return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> bytes:
  crc = crc32c(data)
  return struct.pack('<I', (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tf_record(data: bytes) -> bytes:
  """One TFRecord: what tf.io.TFRecordWriter writes for `data`."""
  length = struct.pack('<Q', len(data))
  return length + _masked_crc(length) + data + _masked_crc(data)


def read_tf_records(contents: bytes) -> Iterator[bytes]:
  """The records of a TFRecord file's bytes, up to the first one cut short or corrupt (a kill
  while writing)."""
  offset = 0
  while offset + 12 <= len(contents):
    length_bytes = contents[offset:offset + 8]
    (length,) = struct.unpack('<Q', length_bytes)
    end = offset + 12 + length + 4
    if contents[offset + 8:offset + 12] != _masked_crc(length_bytes) or end > len(contents):
      return
    data = contents[offset + 12:end - 4]
    if contents[end - 4:end] != _masked_crc(data):
      return
    yield data
    offset = end


def scalar_event(step: int, tag: str, value: float) -> event_pb2.Event:
  tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value],
                                  tensor_shape=tensor_shape_pb2.TensorShapeProto())
  return event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(
      value=[summary_pb2.Summary.Value(tag=tag, metadata=_SCALAR_METADATA, tensor=tensor)]))


def trim_events(path: str, last_step: int) -> None:
  """Drops the summaries of steps after `last_step` from an event file, as metrics.jsonl is
  trimmed, so that a resumed run's steps show once; a record cut short ends the file."""
  contents = paths.Path(path).read_bytes()
  records = list(read_tf_records(contents))

  def is_later(record: bytes) -> bool:
    event = event_pb2.Event.FromString(record)
    return event.HasField('summary') and event.step > last_step

  kept = [record for record in records if not is_later(record)]
  if len(kept) < len(records) or sum(len(r) + 16 for r in records) < len(contents):
    paths.write_bytes(path, b''.join(tf_record(r) for r in kept))


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
    for events in paths.Path(workdir).glob(EVENTS_PREFIX + '*'):
      trim_events(os.fspath(events), start_step)
    self._jsonl = paths.AppendOnlyFile(path, UPLOAD_EVERY_S)
    self._events = paths.AppendOnlyFile(paths.join(
        workdir, f'{EVENTS_PREFIX}{int(time.time())}.{socket.gethostname()}.{os.getpid()}.v2'),
        UPLOAD_EVERY_S)
    self._events.append(tf_record(event_pb2.Event(
        wall_time=time.time(), file_version='brain.Event:2').SerializeToString()))

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self._enabled:
      return
    self._jsonl.append((json.dumps({'step': step, **metrics}) + '\n').encode())
    self._events.append(b''.join(
        tf_record(scalar_event(step, key, float(value)).SerializeToString())
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        and key not in ('step', 'epoch')))

  def flush(self) -> None:
    """Locally every write is in its file already; in an object store, what is held goes up."""
    if self._enabled:
      self._jsonl.flush()
      self._events.flush()

  def close(self) -> None:
    """No file is held open: closing is the last flush."""
    self.flush()
