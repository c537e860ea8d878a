"""What keeps a run safe, for the stage runner: settings that cannot run, settings changed on resume, divergence
(non-finite metrics) and preemption (SIGTERM / SIGINT)."""

import json
import logging
import signal
import threading
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from stars_jax import errors


def check_group(group: ml_collections.ConfigDict, key: str, num_devices: int = 1) -> None:
  """Refuses, before anything is compiled, the run-length and interval settings that cannot work, naming the
  config key: a batch that does not split over the devices, no epochs, intervals that are not positive."""
  problems = []
  if group.batch_size <= 0 or group.batch_size % num_devices:
    problems.append(f"{key}.batch_size={group.batch_size} must be a positive multiple of the {num_devices} devices")
  if group.epochs <= 0:
    problems.append(f"{key}.epochs={group.epochs} must be positive")
  if group.log_every_steps <= 0:
    problems.append(f"{key}.log_every_steps={group.log_every_steps} must be positive")
  if group.checkpoint_every_steps < 0:
    problems.append(f"{key}.checkpoint_every_steps={group.checkpoint_every_steps} must be >= 0 (0: every epoch)")
  if group.keep_checkpoints <= 0:
    problems.append(f"{key}.keep_checkpoints={group.keep_checkpoints} must be positive")
  if any(not 0 < e <= group.epochs for e in group.keep_epochs):
    problems.append(f"{key}.keep_epochs={tuple(group.keep_epochs)} must lie in [1, {key}.epochs={group.epochs}]")
  if problems:
    raise errors.BadConfig("; ".join(problems))


class Preemption:
  """Records SIGTERM / SIGINT while installed (main thread only), so the loop can checkpoint and exit at the end
  of the current step instead of dying mid-step. A second Ctrl-C interrupts at once."""

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def _handle(self, signum: int, frame) -> None:
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signum = signum

  def __enter__(self) -> "Preemption":
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def requested(self, sync: bool) -> bool:
    """Whether to stop now. With several processes every one must stop at the same step: they agree when `sync`
    (at log and checkpoint steps, which synchronise anyway), so a signal takes effect within log_every steps."""
    if jax.process_count() == 1:
      return self.signum is not None
    if not sync:
      return False
    flags = multihost_utils.process_allgather(np.int32(self.signum or 0))
    self.signum = self.signum or int(np.max(flags)) or None
    return self.signum is not None


class Diverged(RuntimeError):
  """A loss or metric became NaN or inf; the run stopped before saving the state."""


@jax.jit
def first_non_finite(first: jax.Array, metrics: dict[str, jax.Array], step: jax.Array) -> jax.Array:
  """`step` if any metric is NaN / inf and no earlier step was, else `first` (-1: none so far)."""
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(metrics)]))
  return jnp.where((first < 0) & ~finite, step, first)


# Settings a resumed run may change: they change how it runs, not what it computes.
RESUMABLE_CHANGES = (
  "job",
  "stage",  # what `job` was called in checkpoints written before it
  "allow_config_change",
  "evaluate",
  "sharding",
  "data.path",
  "data.format",
  "data.num_threads",
  "data.prefetch",
  "model.remat",
  "model.attention_impl",
  "*.max_steps",
  "*.log_every_steps",
  "*.checkpoint_every_steps",
  "*.keep_checkpoints",
  "*.keep_epochs",
  "*.init",
  "*.init_epoch",
  "*.eval_batch_size",
  "*.monitor.batch_size",
)


def math_settings(config: ml_collections.ConfigDict, key: str, group: ml_collections.ConfigDict) -> dict[str, Any]:
  """The flat settings of a stage's run that change its numbers: seed, data, model and the stage's group (named
  `key`), less RESUMABLE_CHANGES ('a.b' -> value)."""

  def flatten(tree, prefix):
    for k, v in tree.items():
      name = f"{prefix}{k}"
      if isinstance(v, dict):
        yield from flatten(v, f"{name}.")
      else:
        yield name, v

  tree = {"seed": config.seed, "data": config.data.to_dict(), "model": config.model.to_dict(), key: group.to_dict()}
  allowed = [p.replace("*", key) for p in RESUMABLE_CHANGES]
  return {
    name: value for name, value in flatten(tree, "") if not any(name == a or name.startswith(a + ".") for a in allowed)
  }


def check_resumed_config(
  saved: dict[str, Any], config: ml_collections.ConfigDict, key: str, group: ml_collections.ConfigDict
) -> None:
  """Refuses to resume when a setting that changes the math differs from the checkpoint's (listing each as
  saved -> now), unless `config.allow_config_change`. Settings the checkpoint does not record were added by a
  later version (whose defaults keep the earlier behaviour) and are not compared."""
  now = json.loads(json.dumps(math_settings(config, key, group), default=str))  # tuples as lists, as saved
  diff = [
    f"{k}: {saved[k]!r} -> {now.get(k, '<absent>')!r}" for k in sorted(saved) if saved[k] != now.get(k, "<absent>")
  ]
  if diff and not config.allow_config_change:
    raise errors.BadConfig(
      f"the checkpoint was written with other settings that change the results ({'; '.join(diff)}): relaunch "
      "with the saved values, another --workdir, or --config.allow_config_change=True to resume anyway"
    )
  if diff:
    logging.warning("Resuming with changed settings (allow_config_change): %s", "; ".join(diff))
