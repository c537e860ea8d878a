"""The host loop shared by the training stages: resume, feed the jitted step, log, checkpoint.

The loop knows nothing of the model: it calls `step_fn(state, *feed(batch))` and saves the state with the
input pipeline's position (and any hook's JSON state), so a relaunch continues exactly where it stopped.
"""
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional, Protocol

import jax
import jax.numpy as jnp

from stars_jax.data.pipeline import ResumableIterator
from stars_jax.train.checkpoint import Checkpointer
from stars_jax.train.metrics import MetricWriter, progress_bar


class Hook(Protocol):
  """Runs after a step (e.g. the epoch-end kNN monitor); its JSON state is checkpointed with the run."""
  name: str

  def after_step(self, step: int, state: Any) -> None: ...

  def get_state(self) -> dict[str, Any]: ...

  def set_state(self, state: dict[str, Any]) -> None: ...


def restore(ckpt: Checkpointer, state: Any, data_iter: ResumableIterator,
            hooks: Sequence[Hook] = ()) -> Any:
  """Restores the latest checkpoint, if any, into state, iterator and hooks; returns the state."""
  if ckpt.latest_step() is None:
    return state
  state, extra = ckpt.restore(state)
  data_iter.set_state(extra["iterator"])
  for hook in hooks:
    hook.set_state(extra[hook.name])
  logging.info("Resumed from step %d", int(state.step))
  return state


def fit(state: Any, step_fn: Callable, feed: Callable[[dict], tuple], data_iter: ResumableIterator, *,
        ckpt: Checkpointer, writer: MetricWriter, total_steps: int, batch_size: int, log_every: int,
        checkpoint_every: int, desc: str, hooks: Sequence[Hook] = (),
        bar_metric: str = "loss") -> tuple[Any, list[dict[str, float]], float]:
  """Trains from state.step to total_steps. Returns (state, logged history, wall time in seconds)."""
  start = int(jax.device_get(state.step))
  bar = progress_bar(total_steps, start, desc)
  history: list[dict[str, float]] = []
  window: Optional[dict] = None
  t_start = t_log = time.perf_counter()
  for step in range(start, total_steps):
    state, metrics = step_fn(state, *feed(next(data_iter)))
    # Summed on device: no host sync until the log step.
    window = metrics if window is None else jax.tree.map(jnp.add, window, metrics)
    bar.update(1)
    done = step + 1
    if done % log_every == 0 or done == total_steps:
      steps = done - (history[-1]["step"] if history else start)
      logged = {k: float(v) / steps for k, v in jax.device_get(window).items()}
      now = time.perf_counter()
      logged["clips_per_s"] = steps * batch_size / (now - t_log)
      window, t_log = None, now
      writer.write_scalars(done, {f"train/{k}": v for k, v in logged.items()})
      bar.set_postfix({bar_metric: f"{logged[bar_metric]:.4f}", "lr": f"{logged['lr']:.2e}",
                       "clips_s": f"{logged['clips_per_s']:.0f}"})
      history.append({"step": done, **logged})
    for hook in hooks:
      hook.after_step(done, state)
    if done % checkpoint_every == 0 or done == total_steps:
      ckpt.save(state, {"iterator": data_iter.get_state(), **{h.name: h.get_state() for h in hooks}})
  bar.close()
  ckpt.wait()
  return state, history, time.perf_counter() - t_start
