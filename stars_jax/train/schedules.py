"""Learning-rate schedules as pure functions of the iteration (SPEC §3.1)."""

import jax.numpy as jnp
import optax


def warmup_half_cosine(
  *, base_lr: float, min_lr: float, warmup_epochs: float, epochs: float, steps_per_epoch: int
) -> optax.Schedule:
  """MAE/MAMP per-iteration schedule: linear warmup from 0, then half-cosine from base_lr to min_lr.

  With fractional epoch e = step / steps_per_epoch: lr = base * e / warmup for e < warmup, else
  min + (base - min) * (1 + cos(pi * (e - warmup) / (epochs - warmup))) / 2.
  """

  def schedule(step):
    e = jnp.asarray(step, jnp.float32) / steps_per_epoch
    warm = base_lr * e / max(warmup_epochs, 1e-8)
    progress = (e - warmup_epochs) / max(epochs - warmup_epochs, 1e-8)
    cosine = min_lr + (base_lr - min_lr) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return jnp.where(e < warmup_epochs, warm, cosine)

  return schedule
