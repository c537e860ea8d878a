"""The stage runner with a toy stage: run length, logging, checkpoints, hooks (called, checkpointed, restored,
summarised, selecting a state), initialisation of fresh states only, and an exact resume."""

import json
import logging
import os
import re
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import recipe_files
from recipe_files import common, mamp

from stars_jax import sharding
from stars_jax.data import npz
from stars_jax.train import checkpoint, guards, runner
from stars_jax.train.checkpoint import Checkpointer
from stars_jax.train.state import TrainState

TX = optax.sgd(0.1)


class CountingHook(runner.Hook):
  """Records the steps it saw; selects the state of step 2."""

  name = "counter"

  def __init__(self):
    self.seen: list[int] = []

  def after_step(self, step, state):
    self.seen.append(step)
    if step == 2:
      self.selected = jax.device_get(state)  # the step donates its input state: keep a host copy

  def finish(self, step, state):
    return {"seen": list(self.seen), "final_step": step}

  def get_state(self):
    return {"seen": list(self.seen)}

  def set_state(self, state):
    self.seen = list(state["seen"])


def _step(state: TrainState, batch):
  """Regress w · (mean frame of each clip) onto its label."""

  def loss_fn(params):
    x = batch["x"].mean(axis=1)  # (B, 150)
    return jnp.mean((x @ params["w"] - batch["label"]) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = TX.update(grads, state.opt_state)
  return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state), {
    "loss": loss,
    "lr": jnp.asarray(0.1),
  }


def _create() -> TrainState:
  params = {"w": jnp.zeros((150,))}
  return TrainState(
    step=jnp.zeros((), jnp.int32), params=params, batch_stats={}, opt_state=TX.init(params), rng=jax.random.PRNGKey(0)
  )


@pytest.fixture
def setup(tiny_npz):
  config = common.base("ntu60", "xsub", "pretrain")
  config.data.num_threads = 1
  group = common.training_group(
    batch_size=8,
    epochs=3,
    optim=recipe_files.optim(lr=0.1),
    schedule=common.schedule("constant", warmup_epochs=0.0, min_lr=0.0),
    checkpoint_every_steps=0,
    keep_checkpoints=5,
    log_every_steps=2,
  )
  split = npz.open_split(tiny_npz, "train")  # 24 clips: 3 steps per epoch
  return config, group, split


def _stage(group, split, hooks, initialized):
  def initialize(state, ctx):
    initialized.append(ctx.steps_per_epoch)
    return state.replace(params={"w": jnp.full((150,), 0.01)})

  return runner.Stage(
    name="toy",
    key="toy",
    group=group,
    train_split=split,
    create=_create,
    step=_step,
    feed=("x", "label"),
    initialize=initialize,
    hooks=lambda ctx: hooks,
  )


def test_run_length_and_checkpoint_interval():
  group = ml_collections.ConfigDict(dict(batch_size=8, epochs=3, max_steps=-1, checkpoint_every_steps=0))
  assert runner.run_length(group, 25) == (3, 9)
  group.max_steps = 4
  assert runner.run_length(group, 25) == (3, 4)
  assert runner.checkpoint_interval(group, 3) == 3
  group.checkpoint_every_steps = 2
  assert runner.checkpoint_interval(group, 3) == 2


def test_run_logs_checkpoints_calls_hooks_and_summarises(setup, tmp_path):
  config, group, split = setup
  hook, initialized = CountingHook(), []
  result = runner.run(_stage(group, split, [hook], initialized), config, tmp_path / "run", sharding.make_mesh())
  assert initialized == [3]  # a fresh run is initialised, with the run's context
  assert hook.seen == list(range(1, 10))
  s = result.summary
  assert (s["steps"], s["steps_per_epoch"]) == (9, 3)
  assert [h["step"] for h in s["loss_history"]] == [2, 4, 6, 8, 9]  # every 2 steps and the last one
  assert s["loss"] == s["loss_history"][-1]["loss"] and s["seen"] == hook.seen and s["final_step"] == 9
  assert int(result.state.step) == 9 and int(result.selected.step) == 2
  saved = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == [3, 6, 9]  # checkpoint_every_steps=0: every epoch end
  assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_keep_epochs_saves_and_keeps_that_epochs_end_for_a_downstream_run(setup, tmp_path):
  """keep_epochs=(1,) with 3 steps per epoch: step 3 is saved although checkpoints fall every 4 steps, outlives
  the rotation to one kept checkpoint, and is what `restore_params(..., epochs=1)` reads."""
  config, group, split = setup
  group.update(dict(checkpoint_every_steps=4, keep_checkpoints=1, keep_epochs=(1,)))
  result = runner.run(_stage(group, split, [], []), config, tmp_path / "run", sharding.make_mesh())
  ckpt_dir = tmp_path / "run" / "checkpoints"
  assert sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) == [3, 9]
  after_one_epoch = checkpoint.restore_params(ckpt_dir, {"w": jnp.zeros(150)}, "linear.init", epochs=1)["w"]
  newest = checkpoint.restore_params(ckpt_dir, {"w": jnp.zeros(150)}, "linear.init")["w"]
  np.testing.assert_array_equal(newest, result.state.params["w"])
  assert not np.array_equal(after_one_epoch, newest)


def _losses(summary):
  """The logged history without its timing (clips/s differs between runs)."""
  return [{k: v for k, v in row.items() if k != "clips_per_s"} for row in summary["loss_history"]]


def test_resume_is_exact_and_skips_initialisation(setup, tmp_path, caplog):
  config, group, split = setup
  mesh = sharding.make_mesh()
  straight = runner.run(_stage(group, split, [CountingHook()], []), config, tmp_path / "straight", mesh)
  group.max_steps = 4  # an interrupted run: stops after step 4 (the last step is always saved) ...
  runner.run(_stage(group, split, [CountingHook()], []), config, tmp_path / "resumed", mesh)
  group.max_steps = -1
  hook, initialized = CountingHook(), []
  with caplog.at_level(logging.INFO):
    resumed = runner.run(_stage(group, split, [hook], initialized), config, tmp_path / "resumed", mesh)
  assert initialized == [] and "Resumed from step 4" in caplog.text  # ... the relaunch restores, not initialises
  # The logged history and wall time are checkpointed: the summary covers the whole run, as if uninterrupted.
  assert _losses(resumed.summary) == _losses(straight.summary)
  assert [h["step"] for h in resumed.summary["loss_history"]] == [2, 4, 6, 8, 9]
  assert hook.seen == list(range(1, 10))  # the hook's state came back with the checkpoint
  np.testing.assert_array_equal(jax.device_get(straight.state.params["w"]), jax.device_get(resumed.state.params["w"]))
  # Relaunching the finished run trains no further and keeps everything.
  again = runner.run(_stage(group, split, [CountingHook()], []), config, tmp_path / "resumed", mesh)
  assert int(again.state.step) == 9 and again.summary["loss_history"] == resumed.summary["loss_history"]
  assert 0 < again.summary["wall_time_s"] <= resumed.summary["wall_time_s"]  # the saved total, not ~0


@pytest.mark.parametrize("old", ["history_and_wall_time", "no_runner_item"])
def test_checkpoints_of_earlier_versions_resume(setup, tmp_path, old):
  """The runner's JSON item keeps today's keys; a checkpoint written before it recorded the settings and the
  metric window (or before it had the item at all) resumes: the same losses, the history of what it recorded."""
  config, group, split = setup
  mesh = sharding.make_mesh()
  straight = runner.run(_stage(group, split, [], []), config, tmp_path / "straight", mesh)
  group.max_steps = 4  # stops at a log step: an earlier version's checkpoint held no window to lose
  runner.run(_stage(group, split, [], []), config, tmp_path / "run", mesh)
  metadata = tmp_path / "run" / "checkpoints" / "4" / "data" / "metadata"
  extra = json.loads(metadata.read_text())
  assert set(extra[runner.RUNNER_ITEM]) == {"history", "wall_time_s", "settings", "window", "window_from"}
  if old == "no_runner_item":
    del extra[runner.RUNNER_ITEM]
  else:
    extra[runner.RUNNER_ITEM] = {k: extra[runner.RUNNER_ITEM][k] for k in ("history", "wall_time_s")}
  metadata.write_text(json.dumps(extra))
  group.max_steps, config.model.dim = -1, 64  # a changed math setting: not recorded, so not compared
  resumed = runner.run(_stage(group, split, [], []), config, tmp_path / "run", mesh)
  np.testing.assert_array_equal(jax.device_get(straight.state.params["w"]), jax.device_get(resumed.state.params["w"]))
  kept = 2 if old == "no_runner_item" else 0  # without the item: the resumed segment only (steps 6, 8, 9)
  assert _losses(resumed.summary) == _losses(straight.summary)[kept:]


class SignalHook(runner.Hook):
  """Sends this process a real signal after step `at` (as a cloud scheduler's preemption notice would)."""

  name = "signal"

  def __init__(self, at: int, signum: int = signal.SIGTERM):
    self.at, self.signum = at, signum

  def after_step(self, step, state):
    if step == self.at:
      os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum, at", [(signal.SIGTERM, 4), (signal.SIGINT, 4), (signal.SIGTERM, 5)])
def test_signal_saves_a_checkpoint_exits_non_zero_and_resumes_exactly(setup, tmp_path, signum, at, caplog):
  """Also between two log steps (at 5; logs at 4 and 6): the metric sums since the last log are checkpointed, so
  the resumed history's entry for step 6 averages steps 5 and 6 as the uninterrupted run's does."""
  config, group, split = setup
  mesh = sharding.make_mesh()
  straight = runner.run(_stage(group, split, [], []), config, tmp_path / "straight", mesh)
  handler = signal.getsignal(signum)
  with pytest.raises(SystemExit) as stop, caplog.at_level(logging.WARNING):
    runner.run(_stage(group, split, [SignalHook(at=at, signum=signum)], []), config, tmp_path / "run", mesh)
  assert stop.value.code == 128 + signum
  assert f"{signal.Signals(signum).name} at step {at}: checkpoint saved" in caplog.text
  assert signal.getsignal(signum) == handler  # the previous handler is back
  saved = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == [3, at]  # the epoch end, and the step the signal arrived in (not an epoch end)
  resumed = runner.run(_stage(group, split, [], []), config, tmp_path / "run", mesh)
  np.testing.assert_array_equal(jax.device_get(straight.state.params["w"]), jax.device_get(resumed.state.params["w"]))
  assert _losses(resumed.summary) == _losses(straight.summary)


def test_divergence_stops_naming_the_step_and_never_saves_a_non_finite_state(setup, tmp_path):
  """A learning rate far too high: the toy regression overflows to inf / NaN within a few steps."""
  config, group, split = setup
  group.update(dict(checkpoint_every_steps=1, keep_checkpoints=2, log_every_steps=100))

  def diverging_step(state, batch):
    state, metrics = _step(state, batch)
    return state.replace(params=jax.tree.map(lambda w: w * 1e4 + 1.0, state.params)), metrics

  stage = runner.Stage(
    name="toy", key="toy", group=group, train_split=split, create=_create, step=diverging_step, feed=("x", "label")
  )
  with pytest.raises(guards.Diverged, match=r"toy: a non-finite loss .* at step (\d+); .* checkpoint \((\d+)\)") as e:
    runner.run(stage, config, tmp_path / "run", sharding.make_mesh())
  bad, kept = map(int, re.search(r"at step (\d+);.*checkpoint \((\d+)\)", str(e.value)).groups())
  assert kept == bad - 1  # checkpointed every step up to the last finite one, never past it
  saved = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
  assert bad > 3 and saved == [bad - 2, bad - 1]  # the older finite one rotated out, never the newest
  restored, _ = Checkpointer(tmp_path / "run" / "checkpoints").restore(_create())
  assert np.isfinite(np.asarray(restored.params["w"])).all() and int(restored.step) == bad - 1


@pytest.mark.parametrize(
  "setting, value, message",
  [
    ("epochs", 0, r"toy.epochs=0 must be positive"),
    ("log_every_steps", 0, r"toy.log_every_steps=0 must be positive"),
    ("checkpoint_every_steps", -1, r"toy.checkpoint_every_steps=-1 must be >= 0"),
    ("keep_checkpoints", 0, r"toy.keep_checkpoints=0 must be positive"),
    ("keep_epochs", (4,), r"toy.keep_epochs=\(4,\) must lie in \[1, toy.epochs=3\]"),
    ("batch_size", 12, r"toy.batch_size=12 must be a positive multiple of the 8 devices"),
    ("batch_size", 32, r"toy.batch_size=32 exceeds the 24 training samples of .*tiny.npz"),
  ],
)
def test_settings_that_cannot_run_are_refused_before_the_first_step(setup, tmp_path, setting, value, message):
  config, group, split = setup
  group[setting] = value
  with pytest.raises(ValueError, match=message):
    runner.run(_stage(group, split, [], []), config, tmp_path / "run", sharding.make_mesh())
  assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def test_resuming_with_settings_that_change_the_results_is_refused_unless_allowed(setup, tmp_path, caplog):
  config, group, split = setup
  mesh = sharding.make_mesh()
  group.max_steps = 4
  runner.run(_stage(group, split, [], []), config, tmp_path / "run", mesh)
  group.max_steps, group.log_every_steps, group.optim.lr, config.model.dim = -1, 1, 0.2, 64  # run-only + math
  with pytest.raises(ValueError, match=r"model.dim: 256 -> 64; toy.optim.lr: 0.1 -> 0.2\): relaunch with the saved"):
    runner.run(_stage(group, split, [], []), config, tmp_path / "run", mesh)
  config.allow_config_change = True
  with caplog.at_level(logging.WARNING):
    resumed = runner.run(_stage(group, split, [], []), config, tmp_path / "run", mesh)
  assert int(resumed.state.step) == 9 and "Resuming with changed settings" in caplog.text


def test_settings_added_after_a_checkpoint_was_written_are_not_compared():
  """A checkpoint of an earlier version lacks later settings (e.g. data.stream): they are not a change; a recorded
  setting that differs still is."""
  config = common.base("ntu60", "xsub", "pretrain")
  group = mamp.pretrain_group("ntu60")
  saved = json.loads(json.dumps(guards.math_settings(config, "pretrain", group), default=str))
  del saved["data.stream"]
  guards.check_resumed_config(saved, config, "pretrain", group)
  saved["pretrain.optim.lr"] = 0.5
  with pytest.raises(ValueError, match=r"pretrain.optim.lr: 0.5 -> 0.001"):
    guards.check_resumed_config(saved, config, "pretrain", group)
