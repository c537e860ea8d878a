"""Stage 1: MAMP pretraining (SPEC §2–3): augment on device, motion-aware masking, reconstruct the motion of the
masked tokens, AdamW. Settings: `config.pretrain` (configs/mamp.py:pretrain_group)."""

import functools
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import optax

from stars_jax import losses, masking
from stars_jax.data import sources, transforms
from stars_jax.models import factory
from stars_jax.models.mamp import MAMP, fold_persons
from stars_jax.train import guards, optim, runner
from stars_jax.train.state import TrainState


def loss_fn(params, model: MAMP, x: jax.Array, key: jax.Array, mk: ml_collections.ConfigDict) -> jax.Array:
  """Masked motion-prediction loss of folded person-sequences x (B, T, V, C); mk = the masking settings."""
  mask = masking.sample_masking(key, x, t_patch=model.t_patch, mask_ratio=mk.mask_ratio, tau=mk.tau)
  target = losses.reconstruction_target(
    x, t_patch=model.t_patch, motion=mk.motion_target, normalize=mk.normalize_target, motion_stride=mk.motion_stride
  )
  pred = model.apply({"params": params}, x, mask)  # (B, L, t_patch * C)
  return losses.masked_mse(pred, target, mask.mask)


def gradients(
  params, rng: jax.Array, step: jax.Array, x: jax.Array, *, model: MAMP, config: ml_collections.ConfigDict
) -> tuple[jax.Array, dict]:
  """(loss, gradients) of step `step` on raw samples x (N, 300, 150): augment, mask, reconstruct motion."""
  aug_key, mask_key = jax.random.split(jax.random.fold_in(rng, step))
  clips = fold_persons(transforms.train_clips(aug_key, x, config.data))  # (N*M, T, V, C)
  return jax.value_and_grad(loss_fn)(params, model, clips, mask_key, config.pretrain.masking)


def train_step(
  state: TrainState, batch: runner.Batch, *, model: MAMP, config: ml_collections.ConfigDict, tx, labels, schedule
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One MAMP step on raw samples batch['x'] (N, 300, 150): `gradients`, then the AdamW update."""
  loss, grads = gradients(state.params, state.rng, state.step, batch["x"], model=model, config=config)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  metrics = {"loss": loss, "lr": schedule(state.step), "grad_norm": optax.tree_utils.tree_norm(grads)}
  return state.replace(
    step=state.step + 1, params=optim.apply_updates(state.params, updates, labels), opt_state=opt_state
  ), metrics


def stage(config: ml_collections.ConfigDict) -> runner.Stage:
  """The pretraining stage on the training split (without `data.held_out_classes`)."""
  g = config.pretrain
  guards.check_group(g, "pretrain")
  train_split = sources.open_seen_split(config.data, "train")
  spe, _ = runner.run_length(g, len(train_split))
  model = factory.mamp(config)
  schedule = optim.make_schedule(g, spe)
  init_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed))
  x = jnp.zeros((1, config.data.window, config.model.num_joints, 3), jnp.float32)  # (B, T, V, C)
  mask = masking.sample_masking(init_key, x, t_patch=model.t_patch, mask_ratio=g.masking.mask_ratio, tau=g.masking.tau)
  labels = optim.param_labels(jax.eval_shape(model.init, init_key, x, mask)["params"], model.depth)
  tx = optim.make_optimizer(g.optim, schedule, labels, model.depth)

  def create() -> TrainState:
    params = model.init(init_key, x, mask)["params"]
    return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, batch_stats={}, opt_state=tx.init(params), rng=state_key
    )

  step = functools.partial(train_step, model=model, config=config, tx=tx, labels=labels, schedule=schedule)
  return runner.Stage(name="MAMP pretrain", key="pretrain", group=g, train_split=train_split, create=create, step=step)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: jax.sharding.Mesh) -> runner.RunResult:
  """Pretrains under workdir (resuming from its latest checkpoint)."""
  return runner.run(stage(config), config, workdir, mesh)
