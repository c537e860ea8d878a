"""Atomic, resumable checkpoints with Orbax: the train state plus the input pipeline's position."""
import pathlib
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from stars_jax.train.state import TrainState


def _saved_fields(state: TrainState) -> dict[str, Any]:
  return {"step": state.step, "params": state.params, "opt_state": state.opt_state, "rng": state.rng}


class Checkpointer:
  """Keeps the last `keep` checkpoints under `directory`/<step>. Orbax writes to a temporary directory and
  renames it when complete, so an interrupted save never shadows the previous checkpoint."""

  def __init__(self, directory: str | pathlib.Path, keep: int = 3):
    self._manager = ocp.CheckpointManager(
        pathlib.Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, state: TrainState, data_state: dict[str, Any]) -> None:
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_saved_fields(state)), data=ocp.args.JsonSave(data_state)))

  def restore(self, state: TrainState, step: Optional[int] = None) -> tuple[TrainState, dict[str, Any]]:
    """Restores into the structure, dtypes and shardings of `state` (concrete or abstract arrays)."""
    step = self.latest_step() if step is None else step
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _saved_fields(state))
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
    return state.replace(**restored["state"]), restored["data"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
