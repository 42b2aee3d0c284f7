"""Where a run's files live: a local path or a URI (gs://bucket/...), one API for both.

Everything the project reads or writes of a run (config.json, metrics.jsonl, TensorBoard events,
checkpoints, stats files, reports and plots) goes through etils' `epath`, as orbax's checkpoints
already do. epath serves gs:// through TensorFlow's GCS filesystem, or through gcsfs when
EPATH_USE_TF=false (which honours STORAGE_EMULATOR_HOST, and is how the tests reach a GCS
emulator). Object stores have no append and no rename of a folder: `AppendOnlyFile` and `move`
say how each is done there.
"""

import os
import shutil
import time

from etils import epath

Path = epath.Path


def is_uri(path: str | os.PathLike) -> bool:
  """gs://, s3:// and the like, as opposed to a path of this machine's file system."""
  return '://' in os.fspath(path)


def absolute(path: str | os.PathLike) -> str:
  """A local path made absolute; a URI as it is."""
  path = os.fspath(path)
  return path if is_uri(path) else os.path.abspath(path)


def join(*parts: str | os.PathLike) -> str:
  return os.fspath(Path(*parts))


def unwritable_folder(path: str | os.PathLike) -> str | None:
  """Makes the folder `path` (and its parents) if missing: None when files can be written in it,
  else why not. Asked before the work whose output goes there, not after."""
  try:
    Path(path).mkdir(parents=True, exist_ok=True)
    probe = Path(path) / f'.write_test.{os.getpid()}'
    probe.write_bytes(b'')
    probe.unlink()
  except OSError as e:
    return e.strerror or str(e)
  return None


def write_text(path: str | os.PathLike, text: str) -> None:
  """As `write_bytes`, for text (UTF-8)."""
  write_bytes(path, text.encode())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Replaces the file's contents whole, or not at all: locally through a temporary file and a
  rename (a kill leaves the old file); an object store's upload is atomic by itself."""
  path = os.fspath(path)
  if is_uri(path):
    Path(path).write_bytes(data)
    return
  temporary = f'{path}.{os.getpid()}.tmp'  # Beside it (same file system), with the usual mode.
  with open(temporary, 'wb') as f:
    f.write(data)
  os.replace(temporary, path)


class AppendOnlyFile:
  """A file written by appending. Locally each append reaches the file at once. An object store
  cannot append, so there the whole object is rewritten from what this writer holds (its earlier
  contents included); appends are held and uploaded together, on `flush()` and once
  `upload_every_s` has passed since the last upload, since one upload per append would send the
  whole object again for every line."""

  def __init__(self, path: str | os.PathLike, upload_every_s: float = 0.0):
    self.path = os.fspath(path)
    self._upload_every_s = upload_every_s
    self._contents = Path(self.path).read_bytes() if is_uri(self.path) and \
        Path(self.path).exists() else b''
    self._held = False  # Appended since the last upload.
    self._uploaded_at = time.monotonic()

  def append(self, data: bytes) -> None:
    if not is_uri(self.path):
      with open(self.path, 'ab') as f:
        f.write(data)
      return
    self._contents += data
    self._held = True
    if time.monotonic() - self._uploaded_at >= self._upload_every_s:
      self.flush()

  def flush(self) -> None:
    """What was appended reaches the object store."""
    if self._held:
      Path(self.path).write_bytes(self._contents)
      self._held = False
      self._uploaded_at = time.monotonic()


def move(source: str | os.PathLike, destination: str | os.PathLike) -> None:
  """Moves a file or a folder; in an object store a folder is copied object by object, then
  removed."""
  source, destination = os.fspath(source), os.fspath(destination)
  if not is_uri(source):
    shutil.move(source, destination)
    return
  source_path = Path(source)
  if not source_path.is_dir():
    source_path.rename(destination)
    return
  for directory, _, files in source_path.walk():
    for name in files:
      target = Path(destination) / Path(directory / name).relative_to(source_path)
      target.parent.mkdir(parents=True, exist_ok=True)
      (directory / name).copy(target)
  source_path.rmtree()
