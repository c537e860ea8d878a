"""Stage 1: MAMP pretraining (SPEC §2–3). A pure jitted step and the host loop that feeds it."""
import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from stars_jax import losses, masking
from stars_jax.data import pipeline, sources, transforms
from stars_jax.data.npz import without_classes
from stars_jax.models.mamp import MAMP, fold_persons
from stars_jax.train import checkpoint, loop, schedules, sharding
from stars_jax.train.metrics import MetricWriter
from stars_jax.train.state import TrainState, adamw

RAW_FRAMES, RAW_VALUES = 300, 150  # official npz sample layout (T, M*V*C)


def compute_dtype(name: str) -> jnp.dtype:
  """'auto' -> bfloat16 on accelerators, float32 on CPU."""
  if name == "auto":
    return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
  return jnp.dtype(name)


def encoder_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The Encoder fields every stage's model takes from config.model and config.data."""
  m = config.model
  return dict(dim=m.dim, depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio,
              num_frames=config.data.window, num_joints=m.num_joints, t_patch=m.t_patch,
              dtype=compute_dtype(m.compute_dtype), attention_impl=m.attention_impl or None, remat=m.remat)


def build_model(config: ml_collections.ConfigDict) -> MAMP:
  m = config.model
  return MAMP(**encoder_kwargs(config), decoder_dim=m.decoder_dim, decoder_depth=m.decoder_depth,
              decoder_heads=m.decoder_heads)


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int):
  o = config.optim
  return schedules.warmup_half_cosine(base_lr=o.lr, min_lr=o.min_lr, warmup_epochs=o.warmup_epochs,
                                      epochs=o.epochs, steps_per_epoch=steps_per_epoch)


def prepare_clips(key: jax.Array, x: jax.Array, config: ml_collections.ConfigDict,
                  train: bool = True) -> jax.Array:
  """Raw (N, 300, 150) samples -> augmented (N, M, window, V, C) clips, on device (SPEC §1.6)."""
  d = config.data
  return transforms.augment_batch(
      key, x, p_interval=tuple(d.train_p_interval if train else d.eval_p_interval), window=d.window,
      rotate=bool(d.random_rot and train), max_angle=d.rot_max)


def loss_fn(params, model: MAMP, x: jax.Array, key: jax.Array, config: ml_collections.ConfigDict):
  """Masked motion-prediction loss of folded person-sequences x (B, T, V, C)."""
  mk = config.masking
  mask = masking.sample_masking(key, x, t_patch=model.t_patch, mask_ratio=mk.mask_ratio, tau=mk.tau)
  target = losses.reconstruction_target(x, t_patch=model.t_patch, motion=mk.motion_target,
                                        normalize=mk.normalize_target, motion_stride=mk.motion_stride)
  pred = model.apply({"params": params}, x, mask)  # (B, L, t_patch * C)
  return losses.masked_mse(pred, target, mask.mask)


def train_step(state: TrainState, x: jax.Array, *, model: MAMP, config: ml_collections.ConfigDict,
               schedule) -> tuple[TrainState, dict[str, jax.Array]]:
  """One MAMP step on raw samples x (N, 300, 150): augment, mask, reconstruct motion, AdamW update."""
  key = jax.random.fold_in(state.rng, state.step)
  aug_key, mask_key = jax.random.split(key)
  clips = fold_persons(prepare_clips(aug_key, x, config))  # (N*M, T, V, C)
  loss, grads = jax.value_and_grad(loss_fn)(state.params, model, clips, mask_key, config)
  metrics = {"loss": loss, "lr": schedule(state.step), "grad_norm": optax.tree_utils.tree_norm(grads)}
  return state.apply_gradients(grads), metrics


def init_state(config: ml_collections.ConfigDict, model: MAMP, schedule,
               mesh: jax.sharding.Mesh) -> tuple[TrainState, Any]:
  """Initial state, created directly in its sharded placement. Returns (state, state shardings)."""
  rng = jax.random.PRNGKey(config.seed)
  init_key, state_key = jax.random.split(rng)
  x = jnp.zeros((1, config.data.window, config.model.num_joints, 3), jnp.float32)
  mask = masking.sample_masking(init_key, x, t_patch=model.t_patch,
                                mask_ratio=config.masking.mask_ratio, tau=config.masking.tau)

  def create():
    params = model.init(init_key, x, mask)["params"]
    tx = adamw(schedule, b1=config.optim.b1, b2=config.optim.b2, eps=config.optim.eps,
               weight_decay=config.optim.weight_decay, params=params)
    return TrainState.create(params=params, tx=tx, apply_fn=model.apply, rng=state_key)

  abstract = jax.eval_shape(create)
  rules = sharding.default_rules(config.sharding.fsdp)
  shardings = sharding.tree_shardings(abstract, mesh, rules, config.sharding.fsdp_min_size)
  return jax.jit(create, out_shardings=shardings)(), shardings


def compile_step(config, model, schedule, mesh, state_shardings):
  step = functools.partial(train_step, model=model, config=config, schedule=schedule)
  return jax.jit(step, in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)


def global_batch(local_x: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
  """This host's slice of the batch -> one global array sharded over `data`."""
  return jax.make_array_from_process_local_data(sharding.batch_sharding(mesh), local_x)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Pretrains (resuming from the latest checkpoint in workdir) and returns the run's summary metrics."""
  workdir = pathlib.Path(workdir)
  train_split = without_classes(sources.open_split(config.data, "train"), config.data.held_out_classes)
  spe = pipeline.steps_per_epoch(len(train_split), config.batch_size)
  total_steps = spe * config.optim.epochs
  if config.max_steps > 0:
    total_steps = min(total_steps, config.max_steps)

  mesh = sharding.make_mesh()
  model = build_model(config)
  schedule = make_schedule(config, spe)
  state, state_shardings = init_state(config, model, schedule, mesh)
  step_fn = compile_step(config, model, schedule, mesh, state_shardings)

  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  data_iter = pipeline.train_iterator(
      train_split, global_batch_size=config.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      num_threads=config.data.num_threads, prefetch=config.data.prefetch)
  state = loop.restore(ckpt, state, data_iter)
  writer = MetricWriter(workdir / "tensorboard")
  try:
    state, history, wall_time = loop.fit(
        state, step_fn, lambda batch: (global_batch(batch["x"], mesh),), data_iter, ckpt=ckpt,
        writer=writer, total_steps=total_steps, batch_size=config.batch_size,
        log_every=config.log_every_steps, checkpoint_every=config.checkpoint_every_steps,
        desc="MAMP pretrain")
  finally:
    data_iter.close()
    ckpt.close()
    writer.close()
  return {"state": state, "model": model, "mesh": mesh, "steps": total_steps, "steps_per_epoch": spe,
          "history": history, "wall_time_s": wall_time}
