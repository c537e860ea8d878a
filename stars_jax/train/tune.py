"""Stage 2: STARS nearest-neighbour contrastive tuning of a MAMP encoder (SPEC §4).

The jitted step encodes the batch once (both official views are the same tensor, SPEC §4.4), looks up each
projection's nearest neighbour in the support queue (own id excluded), takes the NNCLR loss of the
predictions against those neighbours, updates only the tuned parameters, and enqueues the projections.
"""

import functools
import logging
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import optax

from stars_jax import losses, sharding, support_queue
from stars_jax.data import pipeline, sources, transforms
from stars_jax.evaluate import features
from stars_jax.models import factory
from stars_jax.models.mamp import encoder_params
from stars_jax.models.stars import STARS
from stars_jax.train import checkpoint, guards, optim, runner
from stars_jax.train.checkpoint import Checkpointer
from stars_jax.train.hooks import KnnMonitor
from stars_jax.train.state import TrainState

QUEUE_ROWS = "queue/(embeddings|ids)"  # parameter-path regex of the queue's row-indexed arrays


def views(x: jax.Array, key: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
  """Raw (N, 300, 150) samples -> the tuning clips (N, M, window, V, C): crop-resize, no augmentation."""
  return transforms.augment_batch(
    key,
    x,
    p_interval=tuple(config.stars.train_p_interval),
    window=config.data.window,
    rotate=False,
    stream=config.data.stream,
  )


def loss_fn(
  params,
  batch_stats,
  model: STARS,
  clips: jax.Array,
  ids: jax.Array,
  queue: support_queue.SupportQueue,
  key: jax.Array,
  s: ml_collections.ConfigDict,
):
  """NNCLR objective of one batch. Returns (objective, (reported loss, projections z (N, D), new BN stats))."""
  (p, z), updates = model.apply(
    {"params": params, "batch_stats": batch_stats}, clips, train=True, mutable=["batch_stats"]
  )
  p = support_queue.l2_normalize(p)  # (N, D)
  z = jax.lax.stop_gradient(support_queue.l2_normalize(z))  # (N, D)
  neighbours = support_queue.nearest_neighbours(queue, z, ids, topk=s.topk, key=key)  # (N, D)
  loss = losses.nnclr_loss(p, neighbours, s.temperature)
  if s.loss == "effective":
    # Official: loss = (loss0 + loss1) / 2 with loss1 detached and equal to loss0 (SPEC §7.2).
    objective = 0.5 * loss + 0.5 * jax.lax.stop_gradient(loss)
  else:  # 'symmetric' (checked by `check`)
    objective = loss  # both (identical) branches differentiated
  return objective, (loss, z, updates["batch_stats"])


def train_step(
  state: TrainState, batch: runner.Batch, *, model: STARS, config, tx, labels, schedule
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One tuning step on raw samples batch['x'] (N, 300, 150) with dataset ids batch['index'] (N,)."""
  key = jax.random.fold_in(state.rng, state.step)
  view_key, nn_key = jax.random.split(key)
  clips = views(batch["x"], view_key, config)
  ids = batch["index"]
  grads, (loss, z, batch_stats) = jax.grad(loss_fn, has_aux=True)(
    state.params, state.batch_stats, model, clips, ids, state.queue, nn_key, config.stars
  )
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  queue = support_queue.enqueue(state.queue, z, ids)
  metrics = {
    "loss": loss,
    "lr": schedule(state.step),
    "grad_norm": optax.tree_utils.tree_norm(grads),
    "queue_filled": jnp.mean(queue.ids >= 0),
  }
  return state.replace(
    step=state.step + 1,
    params=optim.apply_updates(state.params, updates, labels),
    batch_stats=batch_stats,
    opt_state=opt_state,
    queue=queue,
  ), metrics


def _init_inputs(config) -> jax.Array:
  return jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3), jnp.float32)  # (N, M, T, V, C)


def queue_rules(q: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> list[tuple[str, str]]:
  """Partition rules of the support queue: replicated, or its rows split over `data`."""
  if q.sharding == "replicate":
    return []
  if q.sharding != "data":
    raise ValueError(f"stars.queue.sharding={q.sharding!r}; choose 'replicate' or 'data'")
  if q.size % mesh.shape[sharding.DATA_AXIS]:
    raise ValueError(
      f"stars.queue.size={q.size} must divide over {mesh.shape[sharding.DATA_AXIS]} devices "
      "for stars.queue.sharding='data'"
    )
  return [(QUEUE_ROWS, sharding.ROWS)]


def load_init(state: TrainState, path: str | pathlib.Path) -> TrainState:
  """Initialises from a checkpoint directory of ours: a MAMP run (encoder weights; decoder and mask token
  dropped, head kept fresh, SPEC §4.3 step 2) or a STARS run (params, BN statistics and queue, step 3)."""

  def read(item: pathlib.Path) -> TrainState:
    is_stars = "queue" in checkpoint.saved_structure(item)
    params = state.params if is_stars else encoder_params(state.params)
    target = {"params": params, **({"batch_stats": state.batch_stats, "queue": state.queue} if is_stars else {})}
    restored = checkpoint.restore_checked(item, target, "stars.init")
    logging.info("Initialised STARS from %s checkpoint %s", "a STARS" if is_stars else "a MAMP", item)
    return state.replace(
      params={**state.params, **restored["params"]},
      **({"batch_stats": restored["batch_stats"], "queue": restored["queue"]} if is_stars else {}),
    )

  return checkpoint.read_newest(path, "stars.init", read)


def warm_start_queue(state: TrainState, model: STARS, config, data_iter, mesh) -> TrainState:
  """Fills the queue with train-mode projections of the first K training samples (running BN statistics
  are not touched), instead of starting from random vectors."""

  @jax.jit
  def fill(queue, variables, x, ids, key):
    (_, z), _ = model.apply(variables, views(x, key, config), train=True, mutable=["batch_stats"])
    return support_queue.enqueue(queue, support_queue.l2_normalize(z), ids)

  queue, variables = state.queue, {"params": state.params, "batch_stats": state.batch_stats}
  warm_key = jax.random.split(state.rng)[1]  # steps use fold_in(rng, step) of the unsplit key
  for i in range(-(-queue.size // config.stars.batch_size)):
    batch = sharding.global_batch(next(data_iter), mesh)
    queue = fill(queue, variables, batch["x"], batch["index"], jax.random.fold_in(warm_key, i))
  return state.replace(queue=queue)


def head_features(model: STARS, feature: str):
  """Eval-mode clip features the monitor uses: predictor output 'p' or projection 'z' (SPEC §4.8)."""
  index = {"p": 0, "z": 1}[feature]
  return lambda variables, clips: model.apply(variables, clips, train=False)[index]


LOSSES = ("effective", "symmetric")
MONITOR_SPLITS = ("val", "test")


def check(s: ml_collections.ConfigDict, num_devices: int) -> None:
  """Refuses STARS settings that cannot work, naming each key, before anything trains (also before stage 1 of a
  `pretrain_tune` job); the optimizer, schedule and recipe settings are checked where they are built."""
  guards.check_group(s, "stars", num_devices)
  problems = []
  if s.loss not in LOSSES:
    problems.append(f"stars.loss={s.loss!r}; choose one of {LOSSES}")
  if s.monitor.split not in MONITOR_SPLITS:
    problems.append(f"stars.monitor.split={s.monitor.split!r}; choose one of {MONITOR_SPLITS}")
  if s.monitor.split == "val" and not 0.0 < s.monitor.val_fraction < 1.0:
    problems.append(f"stars.monitor.val_fraction={s.monitor.val_fraction} must be in (0, 1)")
  if s.monitor.every_epochs <= 0:
    problems.append(f"stars.monitor.every_epochs={s.monitor.every_epochs} must be positive")
  if s.topk < 0:
    problems.append(f"stars.topk={s.topk} must be >= 0 (0: the nearest neighbour)")
  if s.batch_size > s.queue.size:
    problems.append(f"stars.batch_size={s.batch_size} exceeds stars.queue.size={s.queue.size}")
  if problems:
    raise ValueError("; ".join(problems))


def stage(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> runner.Stage:
  """The STARS stage: fresh head and random queue, initialised from `stars.init`, kNN monitor every epoch."""
  s = config.stars
  check(s, mesh.size)
  train_split = sources.open_seen_split(config.data, "train")
  test_split = sources.open_seen_split(config.data, "test")
  spe, _ = runner.run_length(s, len(train_split))
  model = factory.stars(config)
  schedule = optim.make_schedule(s, spe)
  init_key, queue_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  abstract_params = jax.eval_shape(functools.partial(model.init, train=False), init_key, _init_inputs(config))["params"]
  labels = optim.param_labels(abstract_params, model.depth, model.first_tuned_layer)
  tx = optim.make_optimizer(s.optim, schedule, labels, model.depth)

  def create() -> TrainState:
    variables = model.init(init_key, _init_inputs(config), train=False)
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=variables["params"],
      batch_stats=variables["batch_stats"],
      opt_state=tx.init(variables["params"]),
      queue=support_queue.init(queue_key, s.queue.size, model.dim),
      rng=state_key,
    )

  def initialize(state: TrainState, ctx: runner.RunContext) -> TrainState:
    if s.init:
      state = load_init(state, s.init)
    else:
      logging.warning("stars.init is empty: tuning a randomly initialised encoder")
    if s.queue.warm_start:
      warm_iter = pipeline.train_iterator(
        train_split, global_batch_size=s.batch_size, seed=config.seed + 1, num_threads=config.data.num_threads
      )
      state = warm_start_queue(state, model, config, warm_iter, ctx.mesh)
      warm_iter.close()
    return state

  def hooks(ctx: runner.RunContext) -> list[runner.Hook]:
    embed = features.make_feature_fn(head_features(model, "p" if s.recipe == "second" else "z"), config.data, ctx.mesh)
    return [
      KnnMonitor(
        embed,
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

  step = functools.partial(train_step, model=model, config=config, tx=tx, labels=labels, schedule=schedule)
  return runner.Stage(
    name=f"STARS {s.recipe}",
    key="stars",
    group=s,
    train_split=train_split,
    create=create,
    step=step,
    feed=("x", "index"),
    initialize=initialize,
    hooks=hooks,
    rules=queue_rules(s.queue, mesh),
  )


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: jax.sharding.Mesh) -> runner.RunResult:
  """Tunes under workdir (resuming from workdir/checkpoints); `selected` is the monitor's best state (also in
  workdir/best), or the last state when the monitor never ran."""
  result = runner.run(stage(config, mesh), config, workdir, mesh)
  if result.selected is None:
    result.selected = result.state
  return result
