"""The one stage runner: every training stage (pretrain, tune, linear, fine-tune) is a `Stage` run by `run`.

A stage supplies only what differs: how to create its state, its pure jitted step, which batch fields the step
reads, how a fresh (not resumed) state is initialised, and its hooks. The runner owns the rest: run length,
sharded state creation, the jitted step with explicit shardings, resume (state, input position, hook state, the
logged history and wall time), logging, checkpoints (also at a SIGTERM / SIGINT, then exit), and clean-up, and
returns a `RunResult` (the state plus the JSON summary).
"""

import contextlib
import dataclasses
import json
import logging
import pathlib
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax import sharding
from stars_jax.data import pipeline
from stars_jax.data.npz import SkeletonSplit
from stars_jax.train import guards
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

  def evaluates(self, step: int) -> bool:
    """Whether `after_step` reads the state at `step` (the runner checks it is finite first)."""
    return False

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
  key: str  # the config group, e.g. 'pretrain': errors name its settings as '<key>.<setting>'
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


def compile_stage(
  stage: Stage, mesh: jax.sharding.Mesh, sharding_config: ml_collections.ConfigDict
) -> tuple[TrainState, Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]]:
  """A fresh state of `stage` in its sharded placement, and its step jitted with explicit shardings (batch over
  `data`, metrics replicated; the state is donated)."""
  state, shardings = state_lib.create_sharded(stage.create, mesh, sharding_config, stage.rules)
  step_fn = jax.jit(
    stage.step,
    in_shardings=(shardings, sharding.batch_sharding(mesh)),
    out_shardings=(shardings, sharding.replicated(mesh)),
    donate_argnums=0,
  )
  return state, step_fn


def run_length(group: ml_collections.ConfigDict, num_samples: int) -> tuple[int, int]:
  """(steps per epoch, total steps) of a stage group: `epochs` full epochs, cut at `max_steps` if > 0."""
  spe = pipeline.steps_per_epoch(num_samples, group.batch_size)
  total = spe * group.epochs
  return spe, (min(total, group.max_steps) if group.max_steps > 0 else total)


def checkpoint_interval(group: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """`checkpoint_every_steps`, or every epoch end when it is 0."""
  return group.checkpoint_every_steps if group.checkpoint_every_steps > 0 else steps_per_epoch


@dataclasses.dataclass(frozen=True)
class Plan:
  """The run's fixed plan, from its config group (not checkpointed: run-only settings may change on a relaunch)."""

  total_steps: int
  batch_size: int  # global: the clips of one step
  log_every: int
  checkpoint_every: int
  desc: str  # names the run in the progress bar and its errors

  @classmethod
  def of(cls, stage: Stage, steps_per_epoch: int, total_steps: int) -> "Plan":
    g = stage.group
    return cls(
      total_steps=total_steps,
      batch_size=g.batch_size,
      log_every=g.log_every_steps,
      checkpoint_every=checkpoint_interval(g, steps_per_epoch),
      desc=stage.name,
    )


RUNNER_ITEM = "runner"  # the runner's own JSON state in a checkpoint: a `Progress` as `Progress.to_json` writes it


@dataclasses.dataclass(frozen=True)
class Progress:
  """The runner's resumable state, checkpointed as one JSON item: the logged history and the wall time of the
  steps so far, the result-changing settings the run trains with (`guards.math_settings`; None: not recorded),
  and the metric sums of the steps since the last log (`window`, over the steps after `window_from`; None: the
  last step was logged). All are restored, so an interrupted run ends with the same history as an
  uninterrupted one, also when it stopped between two log steps."""

  history: list[dict[str, float]] = dataclasses.field(default_factory=list)
  wall_time_s: float = 0.0
  settings: dict[str, Any] | None = None
  window: dict[str, float] | None = None
  window_from: int | None = None

  def to_json(self) -> dict[str, Any]:
    return {
      "history": list(self.history),
      "wall_time_s": self.wall_time_s,
      "settings": self.settings or {},
      "window": self.window,
      "window_from": self.window_from,
    }

  @classmethod
  def from_json(cls, item: dict[str, Any] | None) -> "Progress":
    """Also the items of earlier versions: none at all (the history of the resumed segment only), or without
    settings and window (not compared; the window restarts at the restored step, which was a log step then)."""
    item = item or {}
    return cls(
      history=list(item.get("history", [])),
      wall_time_s=item.get("wall_time_s", 0.0),
      settings=item.get("settings"),
      window=item.get("window"),
      window_from=item.get("window_from"),
    )


def restore(
  ckpt: Checkpointer, state: TrainState, data_iter: pipeline.ResumableIterator, hooks: Sequence[Hook] = ()
) -> tuple[TrainState, Progress]:
  """Restores the latest checkpoint into state, iterator and hooks. Returns (state, the runner's progress)."""
  state, extra = ckpt.restore(state)
  data_iter.set_state(extra["iterator"])
  for hook in hooks:
    hook.set_state(extra[hook.name])
  logging.info("Resumed from step %d", int(state.step))
  return state, Progress.from_json(extra.get(RUNNER_ITEM))


def fit(
  state: TrainState,
  step_fn: Callable,
  feed: Callable[[dict], Batch],
  data_iter: pipeline.ResumableIterator,
  plan: Plan,
  progress: Progress,
  *,
  ckpt: Checkpointer,
  writer: MetricWriter,
  hooks: Sequence[Hook] = (),
  preemption: guards.Preemption | None = None,
) -> tuple[TrainState, Progress]:
  """Trains from state.step to plan.total_steps, continuing `progress` (that of the steps before, saved with
  every checkpoint). Returns (state, progress over the whole run). On a signal recorded by `preemption` it saves
  a checkpoint after the current step and raises SystemExit(128 + signal number).

  Divergence: whether every metric (loss, learning rate, gradient norm, ...) is finite is tracked on device and
  read wherever the host syncs anyway (log steps) and before the state is used: checkpoints, evaluating hooks.
  The first non-finite step raises `Diverged` naming it; a non-finite state is never saved, so the newest
  checkpoint is the last finite one."""
  start = int(jax.device_get(state.step))
  last_logged = start if progress.window_from is None else progress.window_from
  bar = progress_bar(plan.total_steps, start, plan.desc)
  history = list(progress.history)
  # float32 sums round-trip exactly through Python floats, so the resumed sums continue bit for bit.
  window = None if progress.window is None else {k: jnp.asarray(v, jnp.float32) for k, v in progress.window.items()}
  t_start = t_log = time.perf_counter()

  def now_progress() -> Progress:
    sums = None if window is None else {k: float(v) for k, v in jax.device_get(window).items()}
    wall_time_s = progress.wall_time_s + time.perf_counter() - t_start
    return dataclasses.replace(
      progress, history=list(history), wall_time_s=wall_time_s, window=sums, window_from=last_logged
    )

  first_bad = jnp.asarray(-1, jnp.int32)

  def check_finite() -> None:
    bad = int(first_bad)
    if bad >= 0:
      raise guards.Diverged(
        f"{plan.desc}: a non-finite loss or gradient (NaN / inf) at step {bad}; nothing of it was saved, the "
        f"newest checkpoint ({ckpt.latest_step()}) is the last finite state. Likely causes: a learning rate too "
        "high for this batch size (optim.lr), or non-finite values in the data."
      )

  def save(state: TrainState) -> None:
    check_finite()
    hook_states = {h.name: h.get_state() for h in hooks}
    ckpt.save(state, {"iterator": data_iter.get_state(), RUNNER_ITEM: now_progress().to_json(), **hook_states})

  for step in range(start, plan.total_steps):
    state, metrics = step_fn(state, feed(next(data_iter)))
    # Summed on device: no host sync until the log step.
    window = metrics if window is None else jax.tree.map(jnp.add, window, metrics)
    bar.update(1)
    done = step + 1
    first_bad = guards.first_non_finite(first_bad, metrics, jnp.asarray(done, jnp.int32))
    if done % plan.log_every == 0 or done == plan.total_steps:
      check_finite()
      steps, last_logged = done - last_logged, done
      logged = {k: float(v) / steps for k, v in jax.device_get(window).items()}
      now = time.perf_counter()
      logged["clips_per_s"] = steps * plan.batch_size / (now - t_log)
      window, t_log = None, now
      writer.write_scalars(done, {f"train/{k}": v for k, v in logged.items()})
      bar.set_postfix(
        {"loss": f"{logged['loss']:.4f}", "lr": f"{logged['lr']:.2e}", "clips_s": f"{logged['clips_per_s']:.0f}"}
      )
      history.append({"step": done, **logged})
    if any(hook.evaluates(done) for hook in hooks):
      check_finite()
    for hook in hooks:
      hook.after_step(done, state)
    save_step = done % plan.checkpoint_every == 0 or done == plan.total_steps or done in ckpt.keep_steps
    if save_step:
      save(state)
    if preemption is not None and preemption.requested(sync=save_step or done % plan.log_every == 0):
      save(state)  # no-op when this step was just saved
      ckpt.wait()
      name = signal.Signals(preemption.signum).name
      logging.warning("%s at step %d: checkpoint saved; relaunch the same command to resume.", name, done)
      raise SystemExit(128 + preemption.signum)
  bar.close()
  ckpt.wait()
  return state, now_progress()


def run(
  stage: Stage, config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: jax.sharding.Mesh
) -> RunResult:
  """Runs `stage` under workdir (checkpoints/, tensorboard/), resuming from its latest checkpoint."""
  workdir, g = pathlib.Path(workdir), stage.group
  guards.check_group(g, stage.key, mesh.size)
  spe, total_steps = run_length(g, len(stage.train_split))
  if spe == 0:
    raise ValueError(
      f"{stage.key}.batch_size={g.batch_size} exceeds the {len(stage.train_split)} training samples of "
      f"{stage.train_split.path}: not one full batch per epoch"
    )
  state, step_fn = compile_stage(stage, mesh, config.sharding)
  with contextlib.ExitStack() as stack:
    ckpt = Checkpointer(workdir / "checkpoints", keep=g.keep_checkpoints, keep_steps=[e * spe for e in g.keep_epochs])
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
    preemption = stack.enter_context(guards.Preemption())
    settings = json.loads(json.dumps(guards.math_settings(config, stage.key, g), default=str))
    progress = Progress(settings=settings)
    if ckpt.latest_step() is not None:
      state, resumed = restore(ckpt, state, data_iter, hooks)
      if resumed.settings is not None:  # checkpoints of earlier versions did not record them
        guards.check_resumed_config(resumed.settings, config, stage.key, g)
      progress = dataclasses.replace(resumed, settings=settings)
    elif stage.initialize is not None:
      state = stage.initialize(state, ctx)
    feed = lambda batch: sharding.global_batch({k: batch[k] for k in stage.feed}, mesh)  # noqa: E731
    state, progress = fit(
      state,
      step_fn,
      feed,
      data_iter,
      Plan.of(stage, spe, total_steps),
      progress,
      ckpt=ckpt,
      writer=writer,
      hooks=hooks,
      preemption=preemption,
    )
    summary: dict[str, Any] = {
      "steps": total_steps,
      "steps_per_epoch": spe,
      "wall_time_s": progress.wall_time_s,
      "loss_history": progress.history,
      **(progress.history[-1] if progress.history else {}),
    }
    for hook in hooks:
      summary.update(hook.finish(total_steps, state))
    selected = next((h.selected for h in hooks if h.selected is not None), None)
  return RunResult(state=state, summary=summary, selected=selected)
