"""Why a run stopped early: `main` prints each as one line, no traceback, with its exit code;
and the same one line for a config file or override that cannot be loaded."""

import re
import signal
import sys
from typing import Callable, Sequence

from absl import flags

EXIT_BAD_INPUT = 2


class UserInputError(ValueError):
  """A bad config value, path or dataset, found before any work is done."""


class NonFiniteError(RuntimeError):
  """The loss or the parameters became NaN or Inf."""


class DiskFullError(OSError):
  """The workdir's disk has no room for the next checkpoint or record."""


class Interrupted(Exception):
  """SIGTERM or SIGINT stopped the run after its checkpoint at `step` was written."""

  def __init__(self, signal_number: int, step: int):
    self.signal_number, self.step = signal_number, step
    super().__init__(f'stopped by {signal.Signals(signal_number).name} at step {step}, after '
                     'writing its checkpoint; run the same command to resume.')


def _config_file(argv: Sequence[str]) -> str:
  return next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), '?')


def describe_config_error(error: Exception, argv: Sequence[str]) -> str:
  """One line for a config flag that cannot be loaded (no such file, a syntax error, an
  override of a key that does not exist, a bad value), naming the flag and the closest key."""
  # A KeyError's text is the repr of its message: take the message itself.
  message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
  message = message.strip().replace("\\'", "'").replace('\\n', '\n')
  if 'get_config' in message and isinstance(error, AttributeError):
    return f'--config={_config_file(argv)}: the file defines no get_config().'
  unknown = re.search(r"'([^']+)'", message) if isinstance(error, (KeyError, AttributeError)) \
      else None
  if unknown:  # An override of a key that does not exist, with ml_collections' suggestion.
    key = unknown.group(1)
    flag = next((a.split('=')[0] for a in argv if a.startswith('--config.')
                 and key in a.split('=')[0].split('.')), '--config.*')
    suggestion = re.search(r'Did you mean "([^"]+)"', message)
    return f'{flag}: the config has no key {key!r}' + (
        f'; did you mean {suggestion.group(1)!r}?' if suggestion else '.')
  missing = re.search(r"No such file or directory: '([^']+)'", message)
  if missing:
    return f'--config={missing.group(1)}: no such file.'
  if isinstance(error, SyntaxError):
    return f'the config file cannot be loaded: {error.msg} ({error.filename}, line {error.lineno}).'
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  first = lines[0].rstrip(':') if lines else type(error).__name__
  # A config file that raised: absl wraps the traceback; its last line is the reason.
  return first if len(lines) == 1 else f'{first.split(": Error whilst")[0]}: {lines[-1]}'


def repeated_override(argv: Sequence[str]) -> str | None:
  """The first --config.KEY flag that `argv` gives twice, or None."""
  seen = set()
  for arg in argv:
    if arg.startswith('--config.'):
      key = arg.split('=', 1)[0]
      if key in seen:
        return key
      seen.add(key)
  return None


def config_flags_parser(flag_values: flags.FlagValues) -> Callable[[list[str]], list[str]]:
  """An absl flags parser (app.run's flags_parser) that says in one line, with exit code 2,
  why a config flag cannot be loaded (or is given twice), instead of a traceback."""

  def parse(argv: list[str]) -> list[str]:
    repeated = repeated_override(argv)
    if repeated:
      # ml_collections joins repeated tuple values ('a', 'b') + ('c',) instead of keeping the
      # last, so a second override of a key is refused rather than guessed at.
      print(f'error: {repeated} is given more than once; give each config key once.',
            file=sys.stderr)
      sys.exit(EXIT_BAD_INPUT)
    try:
      remaining = flag_values(argv)
      if 'config' in flag_values and flag_values['config'].present:
        flag_values.config.keys()  # ml_collections reports a file it could not load on use.
      return remaining
    except (flags.Error, OSError, SyntaxError, LookupError, AttributeError, ValueError,
            TypeError) as e:
      print(f'error: {describe_config_error(e, argv)}', file=sys.stderr)
      sys.exit(EXIT_BAD_INPUT)
    except Exception as e:  # pylint: disable=broad-except
      # The config file itself raised, at import or in get_config.
      print(f'error: --config={_config_file(argv)}: the config file raised '
            f'{type(e).__name__}: {e}', file=sys.stderr)
      sys.exit(EXIT_BAD_INPUT)

  return parse
