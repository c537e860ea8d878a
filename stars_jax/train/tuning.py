"""What every stage-2 tuning objective shares (SPEC §4.3-4.8, §4.11): the clips, the optimizer over the tuned
layers, initialisation from a MAMP or tuning checkpoint, the kNN monitor, the teacher EMA, and the assembly of
one runner stage. An objective (`nnclr`, `moco`, `dino`) supplies its model, extra state and step.
"""

import dataclasses
import functools
import logging
import pathlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from stars_jax import sharding
from stars_jax.data import pipeline, sources, transforms
from stars_jax.evaluate import features
from stars_jax.models.mamp import encoder_params
from stars_jax.models.stars import TunedEncoder
from stars_jax.train import checkpoint, guards, optim, runner
from stars_jax.train.checkpoint import Checkpointer
from stars_jax.train.hooks import KnnMonitor
from stars_jax.train.state import TrainState

MONITOR_SPLITS = ("val", "test")
TEACHER_HEAD_INITS = ("independent", "copy")
ROW_PLACEMENTS = ("replicate", "data")  # a row-indexed queue: on every device, or its rows split over `data`
Variables = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Objective:
  """One tuning objective on the shared stage.

  model: the student; extra_state(key, student variables) -> the state fields it adds ({'queue': ...,
  'teacher': ...}); step(state, batch, *, tx, labels, schedule) -> (state, metrics), pure and jitted by the
  runner; monitor(variables, clips) -> eval-mode features (N, D) of the kNN monitor; rules: partition rules of
  its extra state; prepare(state, data iterator, mesh): run once on a fresh, initialised state (e.g. a queue warm
  start), or None; name: how logs call the stage."""

  name: str
  model: TunedEncoder
  extra_state: Callable[[jax.Array, Variables], dict[str, Any]]
  step: Callable[..., tuple[TrainState, dict[str, jax.Array]]]
  monitor: Callable[[Variables, jax.Array], jax.Array]
  rules: Sequence[tuple[str, str]] = ()
  prepare: Callable[[TrainState, Iterator, jax.sharding.Mesh], TrainState] | None = None


def views(x: jax.Array, key: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
  """Raw (N, 300, 150) samples -> the tuning clips (N, M, window, V, C): crop-resize, no augmentation. With the
  official p_interval (1.0,) every view of a sample is this same tensor (SPEC §4.4)."""
  return transforms.augment_batch(
    key,
    x,
    p_interval=tuple(config.stars.train_p_interval),
    window=config.data.window,
    rotate=False,
    stream=config.data.stream,
  )


def init_inputs(config) -> jax.Array:
  return jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3), jnp.float32)  # (N, M, T, V, C)


def apply_gradients(state: TrainState, grads: Any, *, tx, labels) -> tuple[Any, Any]:
  """(new params, new optimizer state): the tuned tensors updated, the frozen ones untouched."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  return optim.apply_updates(state.params, updates, labels), opt_state


def ema(teacher: Any, student: Any, momentum: jax.Array | float) -> Any:
  """teacher · m + student · (1 - m) on every leaf (the official momentum update, all parameters)."""
  return jax.tree.map(lambda t, s: t * momentum + s * (1.0 - momentum), teacher, student)


def teacher_variables(
  model: TunedEncoder, key: jax.Array, student: Variables, head_init: str, config: ml_collections.ConfigDict
) -> dict[str, Any]:
  """The teacher at creation: the student's weights, except that with head_init='independent' (official) its
  head is drawn anew, since the official `weights_init` runs after the student was copied into the teacher
  (SPEC §4.3); 'copy' keeps the student's head."""
  if head_init not in TEACHER_HEAD_INITS:
    raise ValueError(f"teacher head init {head_init!r}; choose one of {TEACHER_HEAD_INITS}")
  params = dict(student["params"])
  if head_init == "independent":
    params["head"] = model.init(key, init_inputs(config), train=False)["params"]["head"]
  return {"params": params, "batch_stats": student.get("batch_stats", {})}


def load_init(state: TrainState, path: str | pathlib.Path, config_key: str = "stars.init") -> TrainState:
  """Initialises from a checkpoint directory (SPEC §4.3): a MAMP run or another encoder checkpoint (encoder
  weights into the student and, if there is one, the teacher; heads stay fresh, step 2), or a tuning run of the
  same objective (params, BN statistics, queue and teacher all restored, step 3)."""
  extras = {k: getattr(state, k) for k in ("queue", "teacher") if getattr(state, k) is not None}

  def read(item: pathlib.Path) -> TrainState:
    saved = checkpoint.saved_structure(item)
    if any(k in saved for k in ("queue", "teacher")):
      target = {"params": state.params, **({"batch_stats": state.batch_stats} if state.batch_stats else {}), **extras}
      restored = checkpoint.restore_checked(item, target, config_key)
      logging.info("Initialised the tuning state from the tuning checkpoint %s", item)
      return state.replace(**restored)
    encoder = checkpoint.restore_checked(item, {"params": encoder_params(state.params)}, config_key)["params"]
    logging.info("Initialised the encoder from %s", item)
    new = state.replace(params={**state.params, **encoder})
    if state.teacher is not None:  # official: the MAMP weights are loaded into both encoders
      # Own buffers: the step donates the state, and one buffer in two leaves would be donated twice.
      teacher_encoder = jax.tree.map(lambda x: x.copy(), encoder)
      new = new.replace(teacher={**state.teacher, "params": {**state.teacher["params"], **teacher_encoder}})
    return new

  return checkpoint.read_newest(path, config_key, read)


def check(s: ml_collections.ConfigDict, num_devices: int) -> None:
  """Refuses the shared tuning settings that cannot work, naming each key, before anything trains."""
  guards.check_group(s, "stars", num_devices)
  problems = []
  if s.monitor.split not in MONITOR_SPLITS:
    problems.append(f"stars.monitor.split={s.monitor.split!r}; choose one of {MONITOR_SPLITS}")
  if s.monitor.split == "val" and not 0.0 < s.monitor.val_fraction < 1.0:
    problems.append(f"stars.monitor.val_fraction={s.monitor.val_fraction} must be in (0, 1)")
  if s.monitor.every_epochs <= 0:
    problems.append(f"stars.monitor.every_epochs={s.monitor.every_epochs} must be positive")
  if problems:
    raise ValueError("; ".join(problems))


def stage(
  config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, make_objective: Callable[..., Objective]
) -> runner.Stage:
  """The tuning stage of `make_objective(config, mesh, steps_per_epoch)`: fresh head and extra state, initialised
  from `stars.init`, optimizer over the recipe's layers, kNN monitor every `monitor.every_epochs`."""
  s = config.stars
  check(s, mesh.size)
  train_split = sources.open_seen_split(config.data, "train")
  test_split = sources.open_seen_split(config.data, "test")
  spe, _ = runner.run_length(s, len(train_split))
  objective = make_objective(config, mesh, spe)
  model = objective.model
  schedule = optim.make_schedule(s, spe)
  init_key, extra_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  init = functools.partial(model.init, train=False)
  abstract_params = jax.eval_shape(init, init_key, init_inputs(config))["params"]
  labels = optim.param_labels(abstract_params, model.depth, model.first_tuned_layer)
  tx = optim.make_optimizer(s.optim, schedule, labels, model.depth)

  def create() -> TrainState:
    variables = init(init_key, init_inputs(config))
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=variables["params"],
      batch_stats=variables.get("batch_stats", {}),
      opt_state=tx.init(variables["params"]),
      rng=state_key,
      **objective.extra_state(extra_key, variables),
    )

  def initialize(state: TrainState, ctx: runner.RunContext) -> TrainState:
    if s.init:
      state = load_init(state, s.init)
    else:
      logging.warning("stars.init is empty: tuning a randomly initialised encoder")
    if objective.prepare is not None:
      data_iter = pipeline.train_iterator(
        train_split, global_batch_size=s.batch_size, seed=config.seed + 1, num_threads=config.data.num_threads
      )
      state = objective.prepare(state, data_iter, ctx.mesh)
      data_iter.close()
    return state

  def hooks(ctx: runner.RunContext) -> list[runner.Hook]:
    return [
      KnnMonitor(
        features.make_feature_fn(objective.monitor, config.data, ctx.mesh),
        s.monitor,
        train_split=train_split,
        test_split=test_split,
        num_classes=train_split.num_classes,
        seed=config.seed,
        every_steps=ctx.steps_per_epoch * s.monitor.every_epochs,
        mesh=ctx.mesh,
        writer=ctx.writer,
        best_ckpt=Checkpointer(ctx.workdir / "best", keep=1),
      )
    ]

  return runner.Stage(
    name=f"{objective.name} {s.recipe}",
    key="stars",
    group=s,
    train_split=train_split,
    create=create,
    step=functools.partial(objective.step, tx=tx, labels=labels, schedule=schedule),
    feed=("x", "index"),
    initialize=initialize,
    hooks=hooks,
    rules=objective.rules,
  )


def sharded_rows_rule(pattern: str, size: int, placement: str, key: str, mesh: jax.sharding.Mesh) -> list:
  """Partition rule of a row-indexed queue: replicated, or its rows split over `data` (size must divide)."""
  if placement == "replicate":
    return []
  if placement != "data":
    raise ValueError(f"{key}.sharding={placement!r}; choose one of {ROW_PLACEMENTS}")
  if size % mesh.shape[sharding.DATA_AXIS]:
    raise ValueError(
      f"{key}.size={size} must divide over {mesh.shape[sharding.DATA_AXIS]} devices for {key}.sharding='data'"
    )
  return [(pattern, sharding.ROWS)]


def metrics(loss: jax.Array, grads: Any, lr: jax.Array, **extra: jax.Array) -> dict[str, jax.Array]:
  return {"loss": loss, "lr": lr, "grad_norm": optax.tree_utils.tree_norm(grads), **extra}
