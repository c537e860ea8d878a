"""STARS' own objective (SPEC §4.5): nearest-neighbour contrastive tuning against a support queue.

The jitted step encodes the batch once (both official views are the same tensor, SPEC §4.4), looks up each
projection's nearest neighbour in the support queue (own id excluded), takes the NNCLR loss of the
predictions against those neighbours, updates only the tuned parameters, and enqueues the projections.
"""

import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax import losses, sharding, support_queue
from stars_jax.models import factory
from stars_jax.models.stars import STARS
from stars_jax.train import tuning
from stars_jax.train.state import TrainState

QUEUE_ROWS = "queue/(embeddings|ids)"  # parameter-path regex of the queue's row-indexed arrays
LOSSES = ("effective", "symmetric")


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
  state: TrainState, batch: dict[str, jax.Array], *, model: STARS, config, tx, labels, schedule
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One tuning step on raw samples batch['x'] (N, 300, 150) with dataset ids batch['index'] (N,)."""
  key = jax.random.fold_in(state.rng, state.step)
  view_key, nn_key = jax.random.split(key)
  clips = tuning.views(batch["x"], view_key, config)
  ids = batch["index"]
  grads, (loss, z, batch_stats) = jax.grad(loss_fn, has_aux=True)(
    state.params, state.batch_stats, model, clips, ids, state.queue, nn_key, config.stars
  )
  params, opt_state = tuning.apply_gradients(state, grads, tx=tx, labels=labels)
  queue = support_queue.enqueue(state.queue, z, ids)
  metrics = tuning.metrics(loss, grads, schedule(state.step), queue_filled=jnp.mean(queue.ids >= 0))
  return state.replace(
    step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state, queue=queue
  ), metrics


def warm_start_queue(state: TrainState, model: STARS, config, data_iter: Iterator, mesh) -> TrainState:
  """Fills the queue with train-mode projections of the first K training samples (running BN statistics
  are not touched), instead of starting from random vectors."""

  @jax.jit
  def fill(queue, variables, x, ids, key):
    (_, z), _ = model.apply(variables, tuning.views(x, key, config), train=True, mutable=["batch_stats"])
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


def monitor_feature(recipe: str) -> str:
  """The official monitor reads p after the head-only recipe and z otherwise (SPEC §4.8)."""
  return "p" if recipe == "second" else "z"


def check(s: ml_collections.ConfigDict) -> None:
  """Refuses NNCLR settings that cannot work, naming each key."""
  problems = []
  if s.loss not in LOSSES:
    problems.append(f"stars.loss={s.loss!r}; choose one of {LOSSES}")
  if s.topk < 0:
    problems.append(f"stars.topk={s.topk} must be >= 0 (0: the nearest neighbour)")
  if s.batch_size > s.queue.size:
    problems.append(f"stars.batch_size={s.batch_size} exceeds stars.queue.size={s.queue.size}")
  if problems:
    raise ValueError("; ".join(problems))


def objective(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, steps_per_epoch: int) -> tuning.Objective:
  """NNCLR on the STARS model: a random unit-vector support queue (ids -1), optionally warm-started."""
  del steps_per_epoch
  s = config.stars
  check(s)
  model = factory.stars(config)

  def prepare(state: TrainState, data_iter: Iterator, mesh: jax.sharding.Mesh) -> TrainState:
    return warm_start_queue(state, model, config, data_iter, mesh)

  return tuning.Objective(
    name="STARS",
    model=model,
    extra_state=lambda key, variables: {"queue": support_queue.init(key, s.queue.size, model.dim)},
    step=functools.partial(train_step, model=model, config=config),
    monitor=head_features(model, monitor_feature(s.recipe)),
    rules=tuning.sharded_rows_rule(QUEUE_ROWS, s.queue.size, s.queue.sharding, "stars.queue", mesh),
    prepare=prepare if s.queue.warm_start else None,
  )
