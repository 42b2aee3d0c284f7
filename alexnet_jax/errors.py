"""Errors that mean the user's input is wrong: `main` prints them as one line, no traceback."""


class UserInputError(ValueError):
  """A bad config value, path or dataset, found before any work is done."""


class NonFiniteError(RuntimeError):
  """The loss or the parameters became NaN or Inf."""
