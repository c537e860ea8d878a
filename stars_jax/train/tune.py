"""Stage 2: STARS nearest-neighbour contrastive tuning of a MAMP encoder (SPEC §4).

The jitted step encodes the batch once (both official views are the same tensor, SPEC §4.4), looks up each
projection's nearest neighbour in the support queue (own id excluded), takes the NNCLR loss of the
predictions against those neighbours, updates only the tuned parameters, and enqueues the projections.
"""
import functools
import logging
import pathlib
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from stars_jax import losses, support_queue
from stars_jax.data import pipeline, sources, transforms
from stars_jax.data.npz import without_classes
from stars_jax.evaluate import features
from stars_jax.evaluate.monitor import KnnMonitor
from stars_jax.models.stars import STARS
from stars_jax.train import checkpoint, loop, schedules, sharding
from stars_jax.train.metrics import MetricWriter
from stars_jax.train.pretrain import encoder_kwargs, global_batch
from stars_jax.train.state import (TuneState, apply_tuned_updates, layer_lr_scales, tuning_labels,
                                   tuning_optimizer)

QUEUE_ROWS = "queue/(embeddings|ids)"  # parameter-path regex of the queue's row-indexed arrays


def first_tuned_layer(recipe: str, depth: int) -> int:
  """Lowest tuned layer (numbering of models/stars.py) of a recipe (SPEC §4.1, §4.6)."""
  layers = {"second": depth + 2, "third": depth // 2 + 1, "merged": depth // 2 + 1, "full": 0}
  if recipe not in layers:
    raise ValueError(f"stars.recipe={recipe!r}; choose one of {sorted(layers)}")
  return layers[recipe]


def build_model(config: ml_collections.ConfigDict) -> STARS:
  s = config.stars
  return STARS(**encoder_kwargs(config), head_hidden_dim=s.head_hidden_dim,
               bn_updates_per_step=s.bn_updates_per_step,
               first_tuned_layer=first_tuned_layer(s.recipe, config.model.depth))


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
  o = config.stars.optim
  if o.schedule == "constant":
    return optax.constant_schedule(o.lr)
  if o.schedule == "warmup_cosine":
    return schedules.warmup_half_cosine(base_lr=o.lr, min_lr=o.min_lr, warmup_epochs=o.warmup_epochs,
                                        epochs=config.stars.epochs, steps_per_epoch=steps_per_epoch)
  raise ValueError(f"stars.optim.schedule={o.schedule!r}; choose 'constant' or 'warmup_cosine'")


def make_optimizer(config: ml_collections.ConfigDict, model: STARS, schedule: optax.Schedule,
                   params) -> tuple[optax.GradientTransformation, Any]:
  """(optimizer, per-parameter labels) of the recipe: frozen layers get neither updates nor state."""
  o = config.stars.optim
  labels = tuning_labels(params, model.depth, model.first_tuned_layer)
  tx = tuning_optimizer(labels, layer_lr_scales(model.depth, o.layer_decay), schedule, b1=o.b1, b2=o.b2,
                        eps=o.eps, weight_decay=o.weight_decay, decay_groups=o.decay_groups, clip=o.clip,
                        clip_norm=o.clip_norm)
  return tx, labels


def views(x: jax.Array, key: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
  """Raw (N, 300, 150) samples -> the tuning clips (N, M, window, V, C): crop-resize, no augmentation."""
  return transforms.augment_batch(key, x, p_interval=tuple(config.stars.train_p_interval),
                                  window=config.data.window, rotate=False)


def loss_fn(params, batch_stats, model: STARS, clips: jax.Array, ids: jax.Array,
            queue: support_queue.SupportQueue, key: jax.Array, s: ml_collections.ConfigDict):
  """NNCLR objective of one batch. Returns (objective, (reported loss, projections z (N, D), new BN stats))."""
  (p, z), updates = model.apply({"params": params, "batch_stats": batch_stats}, clips, train=True,
                                mutable=["batch_stats"])
  p = support_queue.l2_normalize(p)                              # (N, D)
  z = jax.lax.stop_gradient(support_queue.l2_normalize(z))       # (N, D)
  neighbours = support_queue.nearest_neighbours(queue, z, ids, topk=s.topk, key=key)  # (N, D)
  loss = losses.nnclr_loss(p, neighbours, s.temperature)
  if s.loss == "effective":
    # Official: loss = (loss0 + loss1) / 2 with loss1 detached and equal to loss0 (SPEC §7.2).
    objective = 0.5 * loss + 0.5 * jax.lax.stop_gradient(loss)
  elif s.loss == "symmetric":
    objective = loss  # both (identical) branches differentiated
  else:
    raise ValueError(f"stars.loss={s.loss!r}; choose 'effective' or 'symmetric'")
  return objective, (loss, z, updates["batch_stats"])


def train_step(state: TuneState, x: jax.Array, ids: jax.Array, *, model: STARS, config, tx, labels,
               schedule) -> tuple[TuneState, dict[str, jax.Array]]:
  """One tuning step on raw samples x (N, 300, 150) with dataset ids (N,)."""
  key = jax.random.fold_in(state.rng, state.step)
  view_key, nn_key = jax.random.split(key)
  clips = views(x, view_key, config)
  grads, (loss, z, batch_stats) = jax.grad(loss_fn, has_aux=True)(
      state.params, state.batch_stats, model, clips, ids, state.queue, nn_key, config.stars)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  queue = support_queue.enqueue(state.queue, z, ids)
  metrics = {"loss": loss, "lr": schedule(state.step), "grad_norm": optax.tree_utils.tree_norm(grads),
             "queue_filled": jnp.mean(queue.ids >= 0)}
  return state.replace(step=state.step + 1, params=apply_tuned_updates(state.params, updates, labels),
                       batch_stats=batch_stats, opt_state=opt_state, queue=queue), metrics


def _init_inputs(config) -> jax.Array:
  return jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3), jnp.float32)  # (N, M, T, V, C)


def init_state(config: ml_collections.ConfigDict, model: STARS, schedule: optax.Schedule,
               mesh: jax.sharding.Mesh):
  """Fresh state (head as the official `weights_init`, random queue), created in its sharded placement.
  Returns (state, state shardings, tx, labels)."""
  init_key, queue_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  abstract_params = jax.eval_shape(functools.partial(model.init, train=False), init_key,
                                   _init_inputs(config))["params"]
  tx, labels = make_optimizer(config, model, schedule, abstract_params)
  q = config.stars.queue
  if config.stars.batch_size > q.size:
    raise ValueError(f"stars.batch_size={config.stars.batch_size} exceeds stars.queue.size={q.size}")

  def create():
    variables = model.init(init_key, _init_inputs(config), train=False)
    return TuneState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                     batch_stats=variables["batch_stats"], opt_state=tx.init(variables["params"]),
                     queue=support_queue.init(queue_key, q.size, model.dim), rng=state_key)

  abstract = jax.eval_shape(create)
  rules = []
  if q.sharding == "data":
    if q.size % mesh.shape[sharding.DATA_AXIS]:
      raise ValueError(f"stars.queue.size={q.size} must divide over {mesh.shape[sharding.DATA_AXIS]} devices "
                       "for stars.queue.sharding='data'")
    rules.append((QUEUE_ROWS, sharding.ROWS))
  elif q.sharding != "replicate":
    raise ValueError(f"stars.queue.sharding={q.sharding!r}; choose 'replicate' or 'data'")
  rules += sharding.default_rules(config.sharding.fsdp)
  shardings = sharding.tree_shardings(abstract, mesh, rules, config.sharding.fsdp_min_size)
  return jax.jit(create, out_shardings=shardings)(), shardings, tx, labels


def load_init(state: TuneState, path: str | pathlib.Path) -> TuneState:
  """Initialises from a checkpoint directory of ours: a MAMP run (encoder weights; decoder and mask token
  dropped, head kept fresh, SPEC §4.3 step 2) or a STARS run (params, BN statistics and queue, step 3)."""
  item = checkpoint.latest_item_path(path, "stars.init")
  is_stars = "queue" in checkpoint.saved_structure(item)
  params = state.params if is_stars else features.encoder_params(state.params)
  target = {"params": params, **({"batch_stats": state.batch_stats, "queue": state.queue} if is_stars else {})}
  restored = checkpoint.restore_checked(item, target, "stars.init")
  logging.info("Initialised STARS from %s checkpoint %s", "a STARS" if is_stars else "a MAMP", item)
  return state.replace(params={**state.params, **restored["params"]},
                       **({"batch_stats": restored["batch_stats"], "queue": restored["queue"]}
                          if is_stars else {}))


def warm_start_queue(state: TuneState, model: STARS, config, data_iter, mesh) -> TuneState:
  """Fills the queue with train-mode projections of the first K training samples (running BN statistics
  are not touched), instead of starting from random vectors."""
  @jax.jit
  def fill(queue, variables, x, ids, key):
    (_, z), _ = model.apply(variables, views(x, key, config), train=True, mutable=["batch_stats"])
    return support_queue.enqueue(queue, support_queue.l2_normalize(z), ids)

  queue, variables = state.queue, {"params": state.params, "batch_stats": state.batch_stats}
  warm_key = jax.random.split(state.rng)[1]  # steps use fold_in(rng, step) of the unsplit key
  for i in range(-(-queue.size // config.stars.batch_size)):
    batch = next(data_iter)
    queue = fill(queue, variables, global_batch(batch["x"], mesh), global_batch(batch["index"], mesh),
                 jax.random.fold_in(warm_key, i))
  return state.replace(queue=queue)


def compile_step(config, model, schedule, tx, labels, mesh, state_shardings):
  step = functools.partial(train_step, model=model, config=config, tx=tx, labels=labels, schedule=schedule)
  data = sharding.batch_sharding(mesh)
  return jax.jit(step, in_shardings=(state_shardings, data, data),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)


def head_features(model: STARS, feature: str):
  """Eval-mode clip features the monitor uses: predictor output 'p' or projection 'z' (SPEC §4.8)."""
  index = {"p": 0, "z": 1}[feature]
  return lambda variables, clips: model.apply(variables, clips, train=False)[index]


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Tunes (resuming from workdir/checkpoints if present) and returns the run's summary."""
  workdir = pathlib.Path(workdir)
  s = config.stars
  train_split, test_split = (without_classes(sources.open_split(config.data, split),
                                             config.data.held_out_classes) for split in ("train", "test"))
  spe = pipeline.steps_per_epoch(len(train_split), s.batch_size)
  total_steps = spe * s.epochs if s.max_steps <= 0 else min(spe * s.epochs, s.max_steps)

  mesh = sharding.make_mesh()
  model = build_model(config)
  schedule = make_schedule(config, spe)
  state, state_shardings, tx, labels = init_state(config, model, schedule, mesh)
  step_fn = compile_step(config, model, schedule, tx, labels, mesh, state_shardings)

  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  best_ckpt = checkpoint.Checkpointer(workdir / "best", keep=1)
  writer = MetricWriter(workdir / "tensorboard")
  monitor = KnnMonitor(
      features.make_feature_fn(head_features(model, "p" if s.recipe == "second" else "z"), config.data, mesh),
      s.monitor, train_split=train_split, test_split=test_split, num_classes=train_split.num_classes,
      seed=config.seed, every_steps=spe * s.monitor.every_epochs, mesh=mesh, writer=writer,
      best_ckpt=best_ckpt)
  data_iter = pipeline.train_iterator(
      train_split, global_batch_size=s.batch_size, seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), num_threads=config.data.num_threads, prefetch=config.data.prefetch)
  resuming = ckpt.latest_step() is not None
  try:
    if resuming:
      state = loop.restore(ckpt, state, data_iter, [monitor])
    else:
      if s.init:
        state = load_init(state, s.init)
      else:
        logging.warning("stars.init is empty: tuning a randomly initialised encoder")
      if s.queue.warm_start:
        warm_iter = pipeline.train_iterator(train_split, global_batch_size=s.batch_size, seed=config.seed + 1,
                                            num_threads=config.data.num_threads)
        state = warm_start_queue(state, model, config, warm_iter, mesh)
        warm_iter.close()
    feed = lambda batch: (global_batch(batch["x"], mesh), global_batch(batch["index"], mesh))  # noqa: E731
    state, history, wall_time = loop.fit(
        state, step_fn, feed, data_iter, ckpt=ckpt, writer=writer, total_steps=total_steps,
        batch_size=s.batch_size, log_every=config.log_every_steps,
        checkpoint_every=min(config.checkpoint_every_steps, spe), desc=f"STARS {s.recipe}", hooks=[monitor])
  finally:
    data_iter.close()
    ckpt.close()
    writer.close()
  best_state: Optional[TuneState] = None
  if monitor.best:
    best_state, _ = best_ckpt.restore(state)
  best_ckpt.close()
  return {"state": state, "best_state": best_state if best_state is not None else state, "model": model,
          "mesh": mesh, "steps": total_steps, "steps_per_epoch": spe, "history": history,
          "monitor": monitor.get_state(), "monitor_split": monitor.label, "wall_time_s": wall_time}
