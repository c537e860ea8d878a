"""The one stage runner: every training stage (pretrain, tune, linear, fine-tune) is a `Stage` run by `run`.

A stage supplies only what differs: how to create its state, its pure jitted step, which batch fields the step
reads, how a fresh (not resumed) state is initialised, and its hooks. The runner owns the rest: run length,
sharded state creation, the jitted step with explicit shardings, resume (state, input position, hook state),
logging, checkpoints, and clean-up, and returns a `RunResult` (the state plus the JSON summary).
"""

import contextlib
import dataclasses
import logging
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax import sharding
from stars_jax.data import pipeline
from stars_jax.data.npz import SkeletonSplit
from stars_jax.train import state as state_lib
from stars_jax.train.checkpoint import Checkpointer
from stars_jax.train.metrics import MetricWriter, progress_bar
from stars_jax.train.state import TrainState

Batch = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class RunContext:
  """What a stage's hooks and initialiser may use: the job's mesh, the run's writer, directory and length."""

  mesh: jax.sharding.Mesh
  writer: MetricWriter
  workdir: pathlib.Path
  steps_per_epoch: int
  total_steps: int


class Hook:
  """Runs after each step (e.g. an epoch-end evaluation); its JSON state is checkpointed with the run."""

  name: str = "hook"
  selected: TrainState | None = None  # a state the hook selected (e.g. the best monitor epoch), if any

  def after_step(self, step: int, state: TrainState) -> None:
    pass

  def finish(self, step: int, state: TrainState) -> dict[str, Any]:
    """Called once at the end of the run (also when it was already complete); returns its JSON summary."""
    return {}

  def get_state(self) -> dict[str, Any]:
    return {}

  def set_state(self, state: dict[str, Any]) -> None:
    pass

  def close(self) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class Stage:
  """What one training stage adds to the runner.

  create: fresh state (traced under jit into its sharded placement); step: pure (state, batch) -> (state,
  metrics), metrics include 'loss' and 'lr'; feed: the batch fields the step reads ('x', 'label', 'index');
  initialize: applied to a fresh state only (not on resume), e.g. loading the previous stage's weights;
  hooks: built once the run's writer exists; rules: partition rules tried before the parameter rules.
  """

  name: str
  group: ml_collections.ConfigDict
  train_split: SkeletonSplit
  create: Callable[[], TrainState]
  step: Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]
  feed: tuple[str, ...] = ("x",)
  initialize: Callable[[TrainState, RunContext], TrainState] | None = None
  hooks: Callable[[RunContext], Sequence[Hook]] = lambda ctx: ()
  rules: Sequence[tuple[str, str]] = ()


@dataclasses.dataclass
class RunResult:
  state: TrainState  # the last state
  summary: dict[str, Any]  # JSON: steps, steps_per_epoch, wall_time_s, loss_history, hooks' ...
  selected: TrainState | None = None  # the state a hook selected (STARS: best kNN monitor epoch)


def run_length(group: ml_collections.ConfigDict, num_samples: int) -> tuple[int, int]:
  """(steps per epoch, total steps) of a stage group: `epochs` full epochs, cut at `max_steps` if > 0."""
  spe = pipeline.steps_per_epoch(num_samples, group.batch_size)
  total = spe * group.epochs
  return spe, (min(total, group.max_steps) if group.max_steps > 0 else total)


def checkpoint_interval(group: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """`checkpoint_every_steps`, or every epoch end when it is 0."""
  return group.checkpoint_every_steps if group.checkpoint_every_steps > 0 else steps_per_epoch


def restore(
  ckpt: Checkpointer, state: TrainState, data_iter: pipeline.ResumableIterator, hooks: Sequence[Hook] = ()
) -> TrainState:
  """Restores the latest checkpoint into state, iterator and hooks; returns the state."""
  state, extra = ckpt.restore(state)
  data_iter.set_state(extra["iterator"])
  for hook in hooks:
    hook.set_state(extra[hook.name])
  logging.info("Resumed from step %d", int(state.step))
  return state


def fit(
  state: TrainState,
  step_fn: Callable,
  feed: Callable[[dict], Batch],
  data_iter: pipeline.ResumableIterator,
  *,
  ckpt: Checkpointer,
  writer: MetricWriter,
  total_steps: int,
  batch_size: int,
  log_every: int,
  checkpoint_every: int,
  desc: str,
  hooks: Sequence[Hook] = (),
) -> tuple[TrainState, list[dict[str, float]], float]:
  """Trains from state.step to total_steps. Returns (state, logged history, wall time in seconds)."""
  start = int(jax.device_get(state.step))
  bar = progress_bar(total_steps, start, desc)
  history: list[dict[str, float]] = []
  window: dict | None = None
  t_start = t_log = time.perf_counter()
  for step in range(start, total_steps):
    state, metrics = step_fn(state, feed(next(data_iter)))
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
      bar.set_postfix(
        {"loss": f"{logged['loss']:.4f}", "lr": f"{logged['lr']:.2e}", "clips_s": f"{logged['clips_per_s']:.0f}"}
      )
      history.append({"step": done, **logged})
    for hook in hooks:
      hook.after_step(done, state)
    if done % checkpoint_every == 0 or done == total_steps:
      ckpt.save(state, {"iterator": data_iter.get_state(), **{h.name: h.get_state() for h in hooks}})
  bar.close()
  ckpt.wait()
  return state, history, time.perf_counter() - t_start


def run(
  stage: Stage, config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: jax.sharding.Mesh
) -> RunResult:
  """Runs `stage` under workdir (checkpoints/, tensorboard/), resuming from its latest checkpoint."""
  workdir, g = pathlib.Path(workdir), stage.group
  spe, total_steps = run_length(g, len(stage.train_split))
  state, shardings = state_lib.create_sharded(stage.create, mesh, config.sharding, stage.rules)
  step_fn = jax.jit(
    stage.step,
    in_shardings=(shardings, sharding.batch_sharding(mesh)),
    out_shardings=(shardings, sharding.replicated(mesh)),
    donate_argnums=0,
  )
  with contextlib.ExitStack() as stack:
    ckpt = Checkpointer(workdir / "checkpoints", keep=g.keep_checkpoints)
    stack.callback(ckpt.close)
    writer = MetricWriter(workdir / "tensorboard")
    stack.callback(writer.close)
    ctx = RunContext(mesh=mesh, writer=writer, workdir=workdir, steps_per_epoch=spe, total_steps=total_steps)
    hooks = list(stage.hooks(ctx))
    for hook in hooks:
      stack.callback(hook.close)
    data_iter = pipeline.train_iterator(
      stage.train_split,
      global_batch_size=g.batch_size,
      seed=config.seed,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
      num_threads=config.data.num_threads,
      prefetch=config.data.prefetch,
    )
    stack.callback(data_iter.close)
    if ckpt.latest_step() is not None:
      state = restore(ckpt, state, data_iter, hooks)
    elif stage.initialize is not None:
      state = stage.initialize(state, ctx)
    feed = lambda batch: sharding.global_batch({k: batch[k] for k in stage.feed}, mesh)  # noqa: E731
    state, history, wall_time = fit(
      state,
      step_fn,
      feed,
      data_iter,
      ckpt=ckpt,
      writer=writer,
      total_steps=total_steps,
      batch_size=g.batch_size,
      log_every=g.log_every_steps,
      checkpoint_every=checkpoint_interval(g, spe),
      desc=stage.name,
      hooks=hooks,
    )
    summary: dict[str, Any] = {
      "steps": total_steps,
      "steps_per_epoch": spe,
      "wall_time_s": wall_time,
      "loss_history": history,
      **(history[-1] if history else {}),
    }
    for hook in hooks:
      summary.update(hook.finish(total_steps, state))
    selected = next((h.selected for h in hooks if h.selected is not None), None)
  return RunResult(state=state, summary=summary, selected=selected)
