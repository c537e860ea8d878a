"""The DINO tuning ablation of the STARS repository (SPEC §4.11, `net/dino.py`, `loss/dino.py`).

Student and teacher are the encoder + Linear(D -> out_dim) (`DINOTuner`), outputs L2-normalised. Per step: the
teacher moves towards the pre-step student with a momentum on a cosine schedule from `teacher_momentum` to 1;
its outputs on the global views become targets by Sinkhorn–Knopp (temperature 0.04, 3 iterations), computed
per GPU in the official run: `sinkhorn_groups` groups of the global batch, each with all its views; the loss is
the cross-entropy of those targets against the student's softmax (temperature 0.1) over cross-view pairs, plus
`koleo_weight` times the KoLeo regulariser of the student outputs, summed over chunks of each group.

Official quirks reproduced behind options (SPEC §7.18): the momentum schedule runs over 40,091 // 32 = 1252 steps
per epoch whatever the data and device count (`momentum_steps_per_epoch`; 0 = the run's own), and KoLeo splits
every view into two chunks because the official code uses n_globals for n_locals (`koleo_chunks_per_view`).

The two official global views are the same full-length crop and the model has no BatchNorm, so student and
teacher each encode the batch once and the result stands for both views: the same loss and gradient as
encoding both copies.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax import losses, support_queue
from stars_jax.models import factory
from stars_jax.models.stars import DINOTuner
from stars_jax.train import tuning
from stars_jax.train.state import TrainState

NUM_GLOBAL_VIEWS = 2  # Feeder_multi n_globals (no local views in the official configs)
CENTERINGS = ("sinkhorn_knopp", "softmax")


def teacher_momentum(step: jax.Array, d: ml_collections.ConfigDict, schedule_steps: int) -> jax.Array:
  """The official `cosine_scheduler(m0, 1, ...)[step]`: 1 + (m0 - 1) (1 + cos(pi step / L)) / 2."""
  phase = jnp.minimum(step, schedule_steps).astype(jnp.float32) / schedule_steps
  return 1.0 + 0.5 * (d.teacher_momentum - 1.0) * (1.0 + jnp.cos(jnp.pi * phase))


def by_group(x: jax.Array, groups: int) -> jax.Array:
  """Views (V, N, K) -> per-group rows (G, V * N / G, K): group g holds samples g·N/G ... (g+1)·N/G - 1 of every
  view (the samples one official GPU holds), view-major as the official concatenation."""
  v, n, k = x.shape
  return x.reshape(v, groups, n // groups, k).transpose(1, 0, 2, 3).reshape(groups, v * n // groups, k)


def targets(teacher: jax.Array, d: ml_collections.ConfigDict) -> jax.Array:
  """Teacher outputs (V, N, K) -> target distributions (V, N, K), no gradient."""
  v, n, k = teacher.shape
  if d.centering == "softmax":
    return jax.lax.stop_gradient(jax.nn.softmax(teacher / d.teacher_temperature, axis=-1))
  sk = functools.partial(losses.sinkhorn_knopp, temperature=d.teacher_temperature, iterations=d.sinkhorn_iterations)
  q = jax.vmap(sk)(by_group(teacher, d.sinkhorn_groups))  # (G, V * N / G, K)
  q = q.reshape(d.sinkhorn_groups, v, n // d.sinkhorn_groups, k).transpose(1, 0, 2, 3).reshape(v, n, k)
  return jax.lax.stop_gradient(q)


def koleo(student: jax.Array, d: ml_collections.ConfigDict) -> jax.Array:
  """Mean over groups of the sum of KoLeo over each group's chunks (`koleo_chunks_per_view` per view)."""
  rows = by_group(student, d.sinkhorn_groups)  # (G, V * n, K)
  g, r, k = rows.shape
  chunks = rows.reshape(g, student.shape[0] * d.koleo_chunks_per_view, -1, k)  # (G, chunks, rows, K)
  return jnp.mean(jnp.sum(jax.vmap(jax.vmap(losses.koleo_loss))(chunks), axis=1))


def loss_fn(params, model: DINOTuner, clips: jax.Array, teacher_out: jax.Array, d: ml_collections.ConfigDict):
  """DINO objective of one batch. Returns (loss, (cross-entropy, KoLeo))."""
  s = support_queue.l2_normalize(model.apply({"params": params}, clips))  # (N, K)
  student = jnp.broadcast_to(s, (NUM_GLOBAL_VIEWS, *s.shape))  # (V, N, K): identical views
  teacher = jnp.broadcast_to(teacher_out, (NUM_GLOBAL_VIEWS, *teacher_out.shape))
  ce = losses.dino_cross_entropy(student, targets(teacher, d), d.student_temperature)
  reg = koleo(student, d)
  return ce + d.koleo_weight * reg, (ce, reg)


def train_step(
  state: TrainState, batch: dict[str, jax.Array], *, model: DINOTuner, config, schedule_steps: int, tx, labels, schedule
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One DINO step on raw samples batch['x'] (N, 300, 150)."""
  d = config.stars.dino
  clips = tuning.views(batch["x"], jax.random.fold_in(state.rng, state.step), config)
  momentum = teacher_momentum(state.step, d, schedule_steps)
  teacher = tuning.ema(state.teacher["params"], state.params, momentum)
  teacher_out = jax.lax.stop_gradient(support_queue.l2_normalize(model.apply({"params": teacher}, clips)))  # (N, K)
  (loss, (ce, reg)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, model, clips, teacher_out, d)
  params, opt_state = tuning.apply_gradients(state, grads, tx=tx, labels=labels)
  return state.replace(
    step=state.step + 1, params=params, opt_state=opt_state, teacher={"params": teacher, "batch_stats": {}}
  ), tuning.metrics(loss, grads, schedule(state.step), cross_entropy=ce, koleo=reg, teacher_momentum=momentum)


def monitor(model: DINOTuner, recipe: str):
  """Eval-mode monitor features: the head output after the head-only recipe, else the pooled encoder feature
  (the official `return_feature=True`)."""
  if recipe == "second":
    return lambda variables, clips: model.apply(variables, clips)
  return lambda variables, clips: model.apply(variables, clips, method=DINOTuner.pooled)


def check(s: ml_collections.ConfigDict) -> None:
  """Refuses DINO settings that cannot work, naming each key."""
  d, problems = s.dino, []
  if d.centering not in CENTERINGS:
    problems.append(f"stars.dino.centering={d.centering!r}; choose one of {CENTERINGS}")
  if d.sinkhorn_groups <= 0 or s.batch_size % d.sinkhorn_groups:
    problems.append(f"stars.dino.sinkhorn_groups={d.sinkhorn_groups} must divide stars.batch_size={s.batch_size}")
  elif d.koleo_chunks_per_view <= 0 or (s.batch_size // d.sinkhorn_groups) % d.koleo_chunks_per_view:
    problems.append(
      f"stars.dino.koleo_chunks_per_view={d.koleo_chunks_per_view} must divide the group size "
      f"stars.batch_size / stars.dino.sinkhorn_groups = {s.batch_size // d.sinkhorn_groups}"
    )
  if not 0.0 <= d.teacher_momentum <= 1.0:
    problems.append(f"stars.dino.teacher_momentum={d.teacher_momentum} must be in [0, 1]")
  if d.momentum_steps_per_epoch < 0:
    problems.append(f"stars.dino.momentum_steps_per_epoch={d.momentum_steps_per_epoch} must be >= 0 (0: the run's)")
  if d.teacher_head_init not in tuning.TEACHER_HEAD_INITS:
    problems.append(f"stars.dino.teacher_head_init={d.teacher_head_init!r}; choose one of {tuning.TEACHER_HEAD_INITS}")
  if problems:
    raise ValueError("; ".join(problems))


def objective(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, steps_per_epoch: int) -> tuning.Objective:
  """DINO on encoder + Linear head: the teacher as extra state, no queue."""
  del mesh
  s, d = config.stars, config.stars.dino
  check(s)
  model = factory.dino(config)
  schedule_steps = s.epochs * (d.momentum_steps_per_epoch or steps_per_epoch)
  return tuning.Objective(
    name="DINO tuning",
    model=model,
    extra_state=lambda key, variables: {
      "teacher": tuning.teacher_variables(model, key, variables, d.teacher_head_init, config)
    },
    step=functools.partial(train_step, model=model, config=config, schedule_steps=schedule_steps),
    monitor=monitor(model, s.recipe),
  )
