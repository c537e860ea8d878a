"""Atomic file writes, the one implementation: a reader sees the old file or the whole new one, never a part."""

import contextlib
import json
import os
import pathlib
import tempfile
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields a unique temporary name beside `path` (same filesystem); the file written there is renamed over `path`
  when the block succeeds and removed when it fails."""
  path = pathlib.Path(path)
  fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  os.close(fd)
  tmp = pathlib.Path(name)
  try:
    yield tmp
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes `text` to `path` atomically (flushed to disk before the rename)."""
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
  """`payload` as indented JSON (keys sorted; values JSON does not know written as strings)."""
  write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str))
