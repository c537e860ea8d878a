"""Atomic, resumable checkpoints with Orbax: the train state plus a JSON item (input pipeline position, ...).

One read serves both a resume and an initialisation from another run: `restore_checked` reads a state item
(every target leaf saved with its shape, finite values; errors name the checkpoint key, the path and the config
key that chose it), and `newest_readable` tries the steps of a directory newest first (an unreadable step is
named and the next older one tried; another model's checkpoint is an error of the config, raised at once)."""

import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from stars_jax.data import pipeline
from stars_jax.pytree import path_name

T = TypeVar("T")
STATE_ITEM = "state"  # the arrays of a step: <directory>/<step>/state
DATA_ITEM = "data"  # its JSON item: <directory>/<step>/data/metadata
RESUME_KEY = "--workdir"  # what chose the checkpoints a run resumes from, named in its errors


def _saved_fields(state: Any) -> dict[str, Any]:
  """The array fields of a flax.struct state dataclass that are set (a stage without a queue has none)."""
  return {
    f.name: getattr(state, f.name)
    for f in dataclasses.fields(state)
    if f.metadata.get("pytree_node", True) and getattr(state, f.name) is not None
  }


class Checkpointer:
  """Keeps the last `keep` checkpoints under `directory`/<step>, and those of `keep_steps` for good. Orbax writes
  to a temporary directory and renames it when complete, so an interrupted save never shadows the previous
  checkpoint."""

  def __init__(self, directory: str | pathlib.Path, keep: int = 3, keep_steps: Sequence[int] = ()):
    self.keep_steps = frozenset(keep_steps)
    policy = ocp.checkpoint_managers.AnyPreservationPolicy(
      [ocp.checkpoint_managers.LatestN(keep), ocp.checkpoint_managers.CustomSteps(sorted(self.keep_steps))]
    )
    self._manager = ocp.CheckpointManager(
      pathlib.Path(directory).absolute(),
      options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True, cleanup_tmp_directories=True),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: Any, extra: dict[str, Any]) -> None:
    """Saves the state's arrays and the JSON-serialisable `extra` under the state's step."""
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    items = {STATE_ITEM: ocp.args.StandardSave(_saved_fields(state)), DATA_ITEM: ocp.args.JsonSave(extra)}
    self._manager.save(step, args=ocp.args.Composite(**items))

  def restore(self, state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores `step`, by default the newest readable step, into the structure, dtypes and shardings of `state`
    (concrete or abstract arrays), which the checkpoint must match field for field. Returns (state, extra).

    A newer step that cannot be read (truncated array file, empty metadata, missing item, non-finite values) is
    named in a warning and set aside as `broken.<step>` (so training can write that step again), and the next
    older step is tried; when none is readable the error lists every step's reason."""
    self.wait()
    if step is not None:
      return self._read(state, step)
    step, restored, unreadable = newest_readable(
      self._manager.directory, self._manager.all_steps(), lambda s: self._read(state, s)
    )
    if unreadable:
      self._set_aside(unreadable)
      logging.warning("Resuming from step %d, the newest readable checkpoint under %s", step, self._manager.directory)
    return restored

  def _step_dir(self, step: int) -> pathlib.Path:
    return pathlib.Path(self._manager.directory) / str(step)

  def _set_aside(self, steps: list[int]) -> None:
    """Renames unreadable step directories to broken.<step> (kept for inspection, ignored by the manager)."""
    if jax.process_index() == 0:
      for step in steps:
        self._step_dir(step).rename(self._step_dir(step).with_name(f"broken.{step}"))
        logging.warning("Set %s aside as broken.%d", self._step_dir(step), step)
    self._manager.reload()

  def _read(self, state: Any, step: int) -> tuple[Any, dict[str, Any]]:
    fields = restore_checked(self._step_dir(step) / STATE_ITEM, _saved_fields(state), RESUME_KEY, whole=True)
    return state.replace(**fields), read_extra(self._step_dir(step))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


class CheckpointError(RuntimeError):
  """No checkpoint under a directory can be read."""


class CheckpointMismatch(ValueError):
  """A readable checkpoint of another model: an error of the config, not of the files (no fallback)."""


def _reason(error: BaseException) -> str:
  """The first line of an error, with its type: enough to tell a truncated file from a missing one."""
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def check_finite(tree: Any, where: str | pathlib.Path) -> None:
  """Raises ValueError naming `where` and the first parameter path that holds NaN or inf (a corrupted or
  diverged checkpoint must not be resumed or fine-tuned from silently)."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  finite = jax.device_get([jnp.all(jnp.isfinite(v)) for _, v in flat if jnp.issubdtype(v.dtype, jnp.inexact)])
  paths = [p for p, v in flat if jnp.issubdtype(v.dtype, jnp.inexact)]
  for path, ok in zip(paths, finite):
    if not ok:
      raise ValueError(
        f"{where}: non-finite values (NaN / inf) in {path_name(path)!r}; the checkpoint is corrupted or "
        "from a diverged run: restore an older step or start afresh"
      )


def has_checkpoint(directory: str | pathlib.Path) -> bool:
  """Whether `directory` holds a complete checkpoint."""
  return bool(_steps(pathlib.Path(directory)))


def _steps(directory: pathlib.Path) -> list[int]:
  """The complete steps under `directory`, oldest first (temporary and set-aside directories are not digits)."""
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def latest_item_path(directory: str | pathlib.Path, config_key: str = "") -> pathlib.Path:
  """The state item of the newest complete checkpoint under `directory` (read-only: creates nothing).
  `config_key`, the setting that named the directory, goes into the error when there is none."""
  directory = pathlib.Path(directory)
  steps = _steps(directory)
  if not steps:
    raise FileNotFoundError(f"no checkpoint under {directory}" + (f" (config key {config_key})" if config_key else ""))
  return directory / str(steps[-1]) / STATE_ITEM


def read_extra(step_dir: str | pathlib.Path) -> dict[str, Any]:
  """The JSON item saved with a step (input-pipeline position, the runner's and hooks' state, ...)."""
  return json.loads((pathlib.Path(step_dir) / DATA_ITEM / "metadata").read_text())


def restore_fields(item_path: str | pathlib.Path, target: dict[str, Any]) -> dict[str, Any]:
  """Partial restore of a saved state item, unchecked: only the sub-trees in `target` (arrays or
  ShapeDtypeStructs, whose dtypes and shardings are used), e.g. {'params': encoder params} out of a whole MAMP
  pretraining state."""
  item_path = pathlib.Path(item_path)
  if not item_path.is_dir():
    raise FileNotFoundError(f"checkpoint item {item_path} not found")
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  with ocp.PyTreeCheckpointer() as checkpointer:
    return checkpointer.restore(
      item_path.absolute(),
      args=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True
      ),
    )


def saved_structure(item_path: str | pathlib.Path) -> dict[str, Any]:
  """The tree structure (leaf metadata) of a saved state item, without reading arrays."""
  with ocp.PyTreeCheckpointer() as checkpointer:
    return checkpointer.metadata(pathlib.Path(item_path).absolute()).item_metadata.tree


def restore_checked(
  item_path: str | pathlib.Path, target: dict[str, Any], config_key: str, *, whole: bool = False
) -> dict[str, Any]:
  """The one read of a state item, for a resume and an initialisation alike: `restore_fields` after checking
  that every target leaf exists in the checkpoint with the target's shape (with `whole`, also that the
  checkpoint holds no other leaf: a resume restores the whole state); a mismatch raises CheckpointMismatch
  naming the checkpoint key and `config_key` (the setting that chose the file). Non-finite values raise a
  ValueError naming the item and the parameter."""
  saved = saved_structure(item_path)
  saved_shapes = {
    path_name(p): tuple(v.shape)
    for p, v in jax.tree_util.tree_flatten_with_path(saved, is_leaf=lambda v: hasattr(v, "shape"))[0]
  }
  flat = jax.tree_util.tree_flatten_with_path(target)[0]
  for p, v in flat:
    name = path_name(p)
    if saved_shapes.get(name) != tuple(v.shape):
      raise CheckpointMismatch(
        f"{item_path}: checkpoint key {name!r} has shape {saved_shapes.get(name)}, the model "
        f"expects {tuple(v.shape)} ({config_key} must point at a checkpoint of this model "
        "size; config.model must match it)"
      )
  unused = sorted(set(saved_shapes) - {path_name(p) for p, _ in flat}) if whole else []
  if unused:
    raise CheckpointMismatch(
      f"{item_path}: checkpoint keys {unused[:3]} ({len(unused)} in all) are not in the model's state "
      f"({config_key} must point at a checkpoint of this model; config.model must match it)"
    )
  restored = restore_fields(item_path, target)
  check_finite(restored, item_path)
  return restored


def newest_readable(
  directory: str | pathlib.Path, steps: Iterable[int], read: Callable[[int], T], config_key: str = ""
) -> tuple[int, T, list[int]]:
  """(step, `read(step)`, the newer steps that could not be read) for the newest step of `steps` that `read`
  can read: an unreadable step is named in a warning and the next older one tried; a checkpoint of another model
  (CheckpointMismatch) is raised at once. `config_key`, the setting that named `directory`, goes into the
  messages; when no step is readable, CheckpointError lists every step's reason."""
  where = f"{directory}" + (f" ({config_key})" if config_key else "")
  failures: list[tuple[int, str]] = []
  for step in sorted(steps, reverse=True):
    try:
      return step, read(step), [s for s, _ in failures]
    except CheckpointMismatch:
      raise
    except Exception as e:  # noqa: BLE001  any unreadable step: say so and fall back to the previous one
      failures.append((step, _reason(e)))
      step_where = f"{pathlib.Path(directory) / str(step)}" + (f" ({config_key})" if config_key else "")
      logging.warning("%s: unreadable checkpoint (%s); trying the previous step", step_where, failures[-1][1])
  reasons = "; ".join(f"step {s}: {r}" for s, r in failures)
  raise CheckpointError(f"{where}: no readable checkpoint ({reasons})")


def read_newest(directory: str | pathlib.Path, config_key: str, read: Callable[[pathlib.Path], T]) -> T:
  """`read(state item)` of the newest step under `directory` that can be read (read-only: an unreadable step is
  skipped, not set aside), as a resume falls back (`newest_readable`). `config_key` goes into the errors."""
  directory = latest_item_path(directory, config_key).parents[1]
  return newest_readable(directory, _steps(directory), lambda s: read(directory / str(s) / STATE_ITEM), config_key)[1]


def step_after_epochs(directory: str | pathlib.Path, epochs: int, config_key: str) -> int:
  """The step at which the run that wrote the checkpoints under `directory` had trained `epochs` epochs (its
  steps per epoch from the input-pipeline position its checkpoints record). `config_key` names the setting."""
  latest = latest_item_path(directory, config_key).parent
  try:
    iterator = read_extra(latest)["iterator"]
    spe = pipeline.steps_per_epoch(iterator["num_samples"], iterator["global_batch_size"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(
      f"{latest}: no input-pipeline position recorded ({_reason(e)}), so the checkpoint after {epochs} epochs "
      f"({config_key}) cannot be located (an imported checkpoint is one epoch already: set {config_key}=-1)"
    ) from e
  return epochs * spe


def restore_params(
  directory: str | pathlib.Path, target: dict[str, Any], config_key: str, epochs: int = -1
) -> dict[str, Any]:
  """The parameters in `target` (e.g. an encoder's, with their placement) from the newest readable checkpoint
  under `directory`: a MAMP run's checkpoints/, a STARS run's best/ or checkpoints/, or an imported official one.
  With `epochs` > 0, from the checkpoint saved after that many epochs instead (no fallback: it must exist)."""

  def read(item: pathlib.Path) -> dict[str, Any]:
    params = restore_checked(item, {"params": target}, config_key)["params"]
    logging.info("%s: parameters from %s", config_key, item)
    return params

  if epochs <= 0:
    return read_newest(directory, config_key, read)
  epoch_key = f"{config_key}_epoch"
  step = step_after_epochs(directory, epochs, epoch_key)
  item = pathlib.Path(directory) / str(step) / STATE_ITEM
  if not item.is_dir():
    raise FileNotFoundError(
      f"{directory}: no checkpoint after {epochs} epochs (step {step}; {epoch_key}); it holds steps "
      f"{_steps(pathlib.Path(directory))}. Keep it by pretraining with keep_epochs including it, or set the key to "
      "-1 for the newest."
    )
  return read(item)
