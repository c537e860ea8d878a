"""Command line: `stars-jax --config=configs/<file>.py[:arg] --workdir=DIR` (= `python -m stars_jax.main`).

Runs the job named by `config.job` on one mesh over all devices and writes DIR/results.json with its final
metrics and the config. Any config value can be overridden, e.g. `--config.pretrain.batch_size=64
--config.pretrain.epochs=10`; `stars_jax.config_lib.load_config` loads a config the same way in Python.

Tools that are not training jobs are subcommands, `stars-jax <name> ...` (see `_SUBCOMMANDS`); each parses its
own arguments.
"""

import contextlib
import errno
import importlib
import logging
import pathlib
import sys

import jax
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from stars_jax import config_lib, config_schema, errors, io, jobs, sharding, workdir_lock
from stars_jax.evaluate import preflight
from stars_jax.models import factory
from stars_jax.train import checkpoint, guards

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "A config file with get_config([arg]): configs/<file>.py or configs/<file>.py:<arg>."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.json.")
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed",
  False,
  "Call jax.distributed.initialize() (multi-host runs). On TPU pods, SLURM and Open MPI "
  "the cluster is auto-detected; elsewhere give the three flags below (they imply --distributed).",
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0's coordinator service.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1.")


_DISK_FULL = ("RESOURCE_EXHAUSTED", "No space left on device")
# The user's input or setting, not a bug: every command ends these with their one-line message and exit 2 (any
# other exception keeps its traceback). errors.BadInput covers the readers' and validators' own types (npz layout,
# raw files, config values, the pipeline's input check); the others are the workdir lock, unreadable or
# mismatched checkpoints, and the OSErrors that name a path.
BAD_INPUT = (
  errors.BadInput,
  workdir_lock.WorkdirLocked,
  checkpoint.CheckpointError,
  checkpoint.CheckpointMismatch,
  FileNotFoundError,
  FileExistsError,
  NotADirectoryError,
  IsADirectoryError,
  PermissionError,
)


def _quiet_orbax(record: logging.LogRecord) -> bool:
  """Orbax logs every save step at INFO; keep its warnings and errors, except the per-thread reports of a full
  disk (the job ends with one line saying so)."""
  if "orbax" not in record.pathname:
    return True
  return record.levelno >= logging.WARNING and not any(m in record.getMessage() for m in _DISK_FULL)


def _disk_full(error: BaseException) -> bool:
  """Whether `error` (or an error it was raised from) is a full disk."""
  while error is not None:
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or any(m in str(error) for m in _DISK_FULL):
      return True
    error = error.__cause__ or error.__context__
  return False


def main(argv) -> None:
  del argv
  logging.getLogger("absl").addFilter(_quiet_orbax)
  explicit = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if _DISTRIBUTED.value or any(v is not None for v in explicit):
    jax.distributed.initialize(*explicit)
    logging.info("Process %d of %d", jax.process_index(), jax.process_count())
  config = _CONFIG.value
  workdir = pathlib.Path(_WORKDIR.value)
  try:
    _checked_run(config, workdir)
  except guards.Diverged as e:
    logging.error("%s", e)
    sys.exit(1)
  except BAD_INPUT as e:
    logging.error("%s", e)
    sys.exit(2)
  except Exception as e:
    if not _disk_full(e):
      raise
    logging.error(
      "No space left on the device of %s while writing (%s); the newest complete checkpoint is intact "
      "(saves are atomic): free space and relaunch the same command to resume.",
      workdir,
      type(e).__name__,
    )
    sys.exit(1)


def _checked_run(config, workdir: pathlib.Path) -> None:
  """The job of `config.job` in `workdir` (created) under its lock, after the checks of what it will read."""
  config_schema.validate(config, tuple(jobs.JOBS), jax.device_count())  # every setting, before any model
  factory.execution(config)  # a compute dtype or attention kernel this chip cannot run, before any data
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except (FileExistsError, NotADirectoryError):
    raise errors.BadInput(f"--workdir={workdir}: a file stands in its path; give a directory") from None
  except OSError as e:  # not writable, a read-only file system, ...
    raise errors.BadInput(f"--workdir={workdir}: cannot create it ({e.strerror or e})") from None
  logging.info("Devices: %s; job %s; workdir %s", jax.devices(), config.job, workdir)
  # Process 0 holds the workdir for the job (the other processes of a multi-host job share it).
  lock = workdir_lock.hold(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  with lock:
    preflight.check_inputs(config)
    _run_job(config, workdir)


def _run_job(config, workdir: pathlib.Path) -> None:
  """Runs `config.job` and writes workdir/results.json (process 0)."""
  execution = factory.execution(config).to_dict()  # the resolved dtype and kernel, recorded with the results
  results = jobs.JOBS[config.job](config, workdir, sharding.make_mesh())
  results["config"] = config.to_dict()
  results["devices"] = [d.device_kind for d in jax.devices()]
  results["execution"] = execution
  if jax.process_index() == 0:
    io.write_json_atomic(workdir / "results.json", results)
    logging.info("Wrote %s", workdir / "results.json")


# name -> module with `main(argv: list[str]) -> int` (argv without the program and subcommand names).
_SUBCOMMANDS: dict[str, str] = {
  "prepare": "stars_jax.data_prep.cli",
  "import-torch": "stars_jax.interop.import_torch",
  "export-torch": "stars_jax.interop.export_torch",
  "report": "stars_jax.evaluate.report",
  "extract": "stars_jax.extract",
  "ensemble": "stars_jax.evaluate.ensemble",
}


def unknown_override(argv: list[str]) -> str | None:
  """One line naming what is wrong with `--config=FILE[:ARG]` (no such file; the file's own error, e.g. an unknown
  ARG) or the first `--config.<key>=...` whose key the config does not have (and the keys it does have there), or
  None. The flag parser would otherwise fail with a chain of tracebacks."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    return None
  path = pathlib.Path(spec.split(":", 1)[0])
  if not path.is_file():
    return f"--config={spec}: no config file {path}"
  try:
    config = config_lib.load_config(spec)
  except Exception as e:  # noqa: BLE001  the config file's error (its last line names the cause)
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"--config={spec}: {lines[-1] if lines else type(e).__name__}"
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    key = arg[len("--config.") :].split("=", 1)[0]
    node, parts = config, key.split(".")
    for i, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        where = ".".join(parts[:i]) or "the config"
        known = ", ".join(sorted(node)) if isinstance(node, ml_collections.ConfigDict) else "no keys (a value)"
        return f"{arg}: {spec} has no key {key!r}; {where} has {known}"
      node = node[part]
  return None


def run() -> None:
  """Console-script entry point (`stars-jax`)."""
  if len(sys.argv) > 1 and sys.argv[1] in _SUBCOMMANDS:
    name = sys.argv[1]
    module = importlib.import_module(_SUBCOMMANDS[name])
    try:
      code = module.main(sys.argv[2:])
    except BAD_INPUT as e:
      print(f"stars-jax {name}: {e}", file=sys.stderr)
      code = 2
    sys.exit(code)
  problem = unknown_override(sys.argv[1:])
  if problem:
    print(f"stars-jax: {problem}", file=sys.stderr)
    sys.exit(2)
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, argv=sys.argv)


if __name__ == "__main__":
  run()
