"""Parameter paths: the 'a/b/c' names that partition rules, optimizer labels and checkpoints use."""

from typing import Any


def path_name(path: Any) -> str:
  """A pytree key path as 'a/b/c'."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)
