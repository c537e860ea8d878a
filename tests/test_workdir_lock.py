"""One run per workdir: a second holder is refused with a message naming the first; a dead holder's lock is
reclaimed (the kernel drops an flock with its process)."""

import json
import os
import subprocess
import sys

import pytest

from stars_jax import workdir_lock


def test_second_holder_is_refused_naming_the_first(tmp_path):
  with workdir_lock.hold(tmp_path) as path:
    holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid()
    with pytest.raises(workdir_lock.WorkdirLocked, match=rf"in use by another run \(.*\"pid\": {os.getpid()}"):
      with workdir_lock.hold(tmp_path):
        pass
  with workdir_lock.hold(tmp_path):  # released: the next run takes it
    pass


def test_lock_of_a_killed_process_is_reclaimed(tmp_path):
  code = (
    "import sys, time; from stars_jax import workdir_lock; lock = workdir_lock.hold(sys.argv[1]); lock.__enter__(); "
    "print('held', flush=True); time.sleep(60)"
  )
  proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(workdir_lock.WorkdirLocked, match=str(proc.pid)):
      with workdir_lock.hold(tmp_path):
        pass
  finally:
    proc.kill()
    proc.wait()
  assert (tmp_path / workdir_lock.LOCK_FILE).read_text()  # the dead holder's record is still there ...
  with workdir_lock.hold(tmp_path) as path:  # ... but its lock went with it
    assert json.loads(path.read_text())["pid"] == os.getpid()
