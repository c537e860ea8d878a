"""The exceptions that mean "the user's input or setting is wrong", at the bottom of the import layers.

Every command ends such an error with its one-line message and exit status 2 (`stars_jax.main`); any other
exception is a bug and keeps its traceback. Validators raise these (or subclass them, keeping the built-in base
the callers already catch, e.g. `class NpzFormatError(BadInput, ValueError)`); the message names the file, sample,
key or path and says what is wrong.
"""


class BadInput(Exception):
  """A file, path, npz layout, checkpoint or dataset the user gave cannot be used; the message names it."""


class BadConfig(BadInput, ValueError):
  """A config value that cannot run; the message names the key (`data.window=0`) and what it must be."""
