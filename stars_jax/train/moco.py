"""The MoCo tuning ablation of the STARS repository (SPEC §4.11, `net/moco.py`): a momentum teacher, a key queue.

Student and teacher are both the STARS model (encoder + projection/prediction head). Per step: the teacher
moves towards the pre-step student (EMA over all parameters, before the key forward), encodes the batch
shuffled across the devices (the official DDP batch shuffle for BatchNorm, here a permutation of the global
batch that the sharded jit turns into an exchange over the `data` axis), and its normalised predictor outputs
are the keys; the queries are the student's normalised predictor outputs on the same clips (the two official
views are identical, SPEC §4.4); loss = cross-entropy of [q·k, q·queue] / T with target 0; then the keys are
enqueued. The official step also advances the queue pointer a second time, by the per-GPU batch (SPEC §7.25):
`moco.pointer_skip` rows (0 turns it off).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax import losses, sharding, support_queue
from stars_jax.models import factory
from stars_jax.models.stars import STARS
from stars_jax.train import nnclr, tuning
from stars_jax.train.state import TrainState


def teacher_keys(
  model: STARS, teacher: dict, clips: jax.Array, key: jax.Array | None, mesh: jax.sharding.Mesh | None
) -> tuple[jax.Array, dict]:
  """Normalised teacher predictor outputs (N, D) of `clips` in train mode, and its new BN statistics. With `key`,
  the batch is encoded in a random order spread over the devices and put back (BatchNorm statistics are over the
  global batch either way, as the official SyncBatchNorm's, so the shuffle only moves samples between devices)."""
  n = clips.shape[0]
  order = jax.random.permutation(key, n) if key is not None else None
  if order is not None:
    clips = clips[order]
    if mesh is not None:
      clips = jax.lax.with_sharding_constraint(clips, sharding.batch_sharding(mesh))
  (k, _), updates = model.apply(teacher, clips, train=True, mutable=["batch_stats"])
  k = support_queue.l2_normalize(k)  # (N, D)
  if order is not None:
    k = k[jnp.argsort(order)]
  return jax.lax.stop_gradient(k), updates["batch_stats"]


def loss_fn(params, batch_stats, model: STARS, clips: jax.Array, keys: jax.Array, queue: jax.Array, temperature: float):
  """MoCo objective of one batch. Returns (loss, new student BN statistics)."""
  (p, _), updates = model.apply(
    {"params": params, "batch_stats": batch_stats}, clips, train=True, mutable=["batch_stats"]
  )
  q = support_queue.l2_normalize(p)  # (N, D)
  return losses.moco_loss(q, keys, queue, temperature), updates["batch_stats"]


def train_step(
  state: TrainState, batch: dict[str, jax.Array], *, model: STARS, config, mesh, tx, labels, schedule
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One MoCo step on raw samples batch['x'] (N, 300, 150) with dataset ids batch['index'] (N,)."""
  m = config.stars.moco
  view_key, shuffle_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
  clips = tuning.views(batch["x"], view_key, config)
  teacher = {**state.teacher, "params": tuning.ema(state.teacher["params"], state.params, m.momentum)}
  keys, teacher_stats = teacher_keys(model, teacher, clips, shuffle_key if m.shuffle_keys else None, mesh)
  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
    state.params, state.batch_stats, model, clips, keys, state.queue.embeddings, m.temperature
  )
  params, opt_state = tuning.apply_gradients(state, grads, tx=tx, labels=labels)
  queue = support_queue.enqueue(state.queue, keys, batch["index"])
  queue = queue.replace(ptr=(queue.ptr + m.pointer_skip) % queue.size)
  return state.replace(
    step=state.step + 1,
    params=params,
    batch_stats=batch_stats,
    opt_state=opt_state,
    queue=queue,
    teacher={"params": teacher["params"], "batch_stats": teacher_stats},
  ), tuning.metrics(loss, grads, schedule(state.step))


def check(s: ml_collections.ConfigDict) -> None:
  """Refuses MoCo settings that cannot work, naming each key."""
  m, problems = s.moco, []
  if not 0.0 <= m.momentum <= 1.0:
    problems.append(f"stars.moco.momentum={m.momentum} must be in [0, 1]")
  if m.temperature <= 0:
    problems.append(f"stars.moco.temperature={m.temperature} must be positive")
  if not 0 <= m.pointer_skip < s.queue.size:
    problems.append(f"stars.moco.pointer_skip={m.pointer_skip} must be in [0, stars.queue.size={s.queue.size})")
  if s.batch_size > s.queue.size:
    problems.append(f"stars.batch_size={s.batch_size} exceeds stars.queue.size={s.queue.size}")
  if m.teacher_head_init not in tuning.TEACHER_HEAD_INITS:
    problems.append(f"stars.moco.teacher_head_init={m.teacher_head_init!r}; choose one of {tuning.TEACHER_HEAD_INITS}")
  if problems:
    raise ValueError("; ".join(problems))


def objective(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, steps_per_epoch: int) -> tuning.Objective:
  """MoCo on the STARS model: teacher and a random unit-vector key queue as extra state."""
  del steps_per_epoch
  s = config.stars
  check(s)
  # One student forward per step: its BN statistics move once (NNCLR's second branch, hence
  # stars.bn_updates_per_step, does not exist here).
  model = factory.stars(config).clone(bn_updates_per_step=1)

  def extra_state(key: jax.Array, variables: dict) -> dict:
    queue_key, head_key = jax.random.split(key)
    return {
      "queue": support_queue.init(queue_key, s.queue.size, model.dim),
      "teacher": tuning.teacher_variables(model, head_key, variables, s.moco.teacher_head_init, config),
    }

  return tuning.Objective(
    name="MoCo tuning",
    model=model,
    extra_state=extra_state,
    step=functools.partial(train_step, model=model, config=config, mesh=mesh),
    monitor=nnclr.head_features(model, nnclr.monitor_feature(s.recipe)),
    rules=tuning.sharded_rows_rule(nnclr.QUEUE_ROWS, s.queue.size, s.queue.sharding, "stars.queue", mesh),
  )
