"""One run per workdir: an exclusive lock on WORKDIR/.lock, held for the life of the process.

The lock is an `fcntl.flock` on the file, so the kernel releases it when its holder exits, killed or not: the lock
of a dead process is reclaimed by the next launch. The file records the holder (host, pid, start time) for the
message a second launch gets. (flock needs a filesystem that supports it; on NFS mount with local locks or
rely on the cluster's scheduler.)
"""

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import time
from collections.abc import Iterator

LOCK_FILE = ".lock"


class WorkdirLocked(RuntimeError):
  """Another live process runs in the workdir."""


@contextlib.contextmanager
def hold(workdir: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Holds WORKDIR/.lock for the block; raises `WorkdirLocked` naming the holder if another process has it."""
  path = pathlib.Path(workdir) / LOCK_FILE
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
      raise WorkdirLocked(
        f"{workdir} is in use by another run ({holder}); wait for it to finish, stop it, or choose another --workdir"
      ) from None
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    try:
      yield path
    finally:
      os.ftruncate(fd, 0)
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)
