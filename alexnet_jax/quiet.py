"""Keeps the libraries' start-up chatter out of a command's stderr, so that a user sees the
project's own lines (an `error: ...` line alone, when the input is bad).

TensorFlow's native code writes, at import, notices that no log level hides: on CPUs where its
oneDNN kernels are on by default (those with AVX-512) an `I0000 ... port.cc] oneDNN custom
operations are on ...` line, each time preceded by absl's `WARNING: All log messages before
absl::InitializeLog() ...`. `import_tensorflow` imports TensorFlow with the native stderr
captured and passes on every line but those notices; TF_CPP_MIN_LOG_LEVEL=1 (unless set) keeps
TensorFlow's INFO lines out and its warnings and errors in.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Iterator, Sequence

# Notices that say nothing about the run (each a regular expression matched per line).
STARTUP_NOTICES = (
    re.compile(r'^WARNING: All log messages before absl::InitializeLog\(\) is called'),
    re.compile(r'port\.cc:\d+\] oneDNN custom operations are on'),
)


@contextlib.contextmanager
def native_stderr_without(notices: Sequence[re.Pattern]) -> Iterator[None]:
  """Captures file descriptor 2 (native code's stderr too) while the block runs, then writes
  every captured line that matches none of `notices` to sys.stderr."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      for line in capture.read().decode(errors='replace').splitlines(keepends=True):
        if not any(notice.search(line) for notice in notices):
          sys.stderr.write(line)
      sys.stderr.flush()


def import_tensorflow() -> None:
  """Imports TensorFlow (and so its native libraries) without its start-up notices; call it
  before anything else imports TensorFlow."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
  with native_stderr_without(STARTUP_NOTICES):
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import


def jax_platform_search() -> None:
  """Hides JAX's INFO lines about each platform it looks for and does not find (TPU, GPU)."""
  logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)
