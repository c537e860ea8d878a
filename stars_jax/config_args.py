"""The argument of a config file (`--config=configs/FILE.py:ARG`), parsed one way for every file.

ARG is a comma-separated list of tokens, as in big_vision's `parse_arg`: `key=value` sets a key, a bare token sets
a flag (a key whose default is a bool) or names one choice of a key whose default is a tuple of choices. E.g.
`configs/synthetic.py:evaluate,tiny`, `configs/mamp.py:ntu60_xsub`, `configs/nwucla.py:variant=gpu`.
"""

from typing import Any

import ml_collections


def parse_arg(arg: str, what: str, **spec: Any) -> ml_collections.ConfigDict:
  """`arg` against `spec` (key -> default): a bool default is a flag (a bare `key` sets it), a tuple default is
  the key's choices (its first one the default, None: the key must be given; a bare token equal to one of them
  selects it), any other default a typed value (`key=value`). Unknown keys, impossible values, ambiguous tokens and
  missing required keys raise ValueError naming `what` (the config file) and the choices."""
  parsed = {k: v[0] if isinstance(v, tuple) else v for k, v in spec.items()}
  for token in filter(None, (t.strip() for t in arg.split(","))):
    key, eq, value = token.partition("=")
    if not eq:
      key, value = _bare(token, f"{what}:{arg}", spec)
    elif key not in spec:
      raise ValueError(f"{what}:{arg}: no argument {key!r}; the arguments are {_describe(spec)}")
    parsed[key] = _typed(key, value, spec[key], f"{what}:{arg}")
  missing = [k for k, v in parsed.items() if v is None]
  if missing:
    raise ValueError(f"{what}:{arg}: name {' and '.join(missing)}; the arguments are {_describe(spec)}")
  return ml_collections.ConfigDict(parsed)


def _bare(token: str, where: str, spec: dict[str, Any]) -> tuple[str, str]:
  """The (key, value) a token without '=' stands for: a flag's name or one choice of exactly one key."""
  if isinstance(spec.get(token), bool):
    return token, "True"
  keys = [k for k, v in spec.items() if isinstance(v, tuple) and token in v]
  if len(keys) != 1:
    reason = "unknown" if not keys else f"ambiguous (a choice of {keys})"
    raise ValueError(f"{where}: argument {token!r} is {reason}; the arguments are {_describe(spec)}")
  return keys[0], token


def _typed(key: str, value: str, default: Any, where: str) -> Any:
  if isinstance(default, tuple):
    if value not in default or value is None:
      raise ValueError(f"{where}: {key}={value!r}; choose one of {_choices(default)}")
    return value
  if isinstance(default, bool):
    if value not in ("True", "False", "true", "false", "1", "0"):
      raise ValueError(f"{where}: {key}={value!r} is not a bool")
    return value in ("True", "true", "1")
  try:
    return type(default)(value)
  except ValueError:
    raise ValueError(f"{where}: {key}={value!r} is not a {type(default).__name__}") from None


def _describe(spec: dict[str, Any]) -> str:
  parts = []
  for key, default in spec.items():
    if isinstance(default, bool):
      parts.append(f"{key} (a flag)")
    elif isinstance(default, tuple):
      parts.append(f"{key}: one of {_choices(default)}")
    else:
      parts.append(f"{key}=<{type(default).__name__}>")
  return "; ".join(parts)


def _choices(choices: tuple) -> list[str]:
  return [c for c in choices if c]  # without the default "nothing given" ('' or None)
