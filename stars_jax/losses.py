"""Losses: the MAMP motion-reconstruction objective (SPEC §2.6–2.7)."""

import jax
import jax.numpy as jnp

from stars_jax import masking


def motion_target(x: jax.Array, stride: int = 1) -> jax.Array:
  """Per-frame motion x[t+stride] - x[t]; the last `stride` frames are zero. (B, T, V, C) -> (B, T, V, C)."""
  motion = x[:, stride:] - x[:, :-stride]
  return jnp.concatenate([motion, jnp.zeros_like(x[:, :stride])], axis=1)


def normalize_tokens(target: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Per-token standardisation with the unbiased variance (torch's default, n - 1). (B, L, P) -> same."""
  mean = target.mean(axis=-1, keepdims=True)
  var = target.var(axis=-1, keepdims=True, ddof=1)
  return (target - mean) / jnp.sqrt(var + eps)


def reconstruction_target(
  x: jax.Array, *, t_patch: int, motion: bool = True, normalize: bool = True, motion_stride: int = 1
) -> jax.Array:
  """MAMP target (motion; MAE baseline: positions), patchified per token. (B, T, V, C) -> (B, L, t_patch*C)."""
  target = motion_target(x, motion_stride) if motion else x
  target = masking.patchify(target, t_patch)
  return normalize_tokens(target) if normalize else target


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over masked tokens of the per-token mean squared error. pred/target (B, L, P), mask (B, L)."""
  per_token = jnp.square(pred.astype(jnp.float32) - target).mean(axis=-1)  # (B, L)
  return (per_token * mask).sum() / mask.sum()


def nnclr_loss(predictions: jax.Array, neighbours: jax.Array, temperature: float) -> jax.Array:
  """NNCLR cross-entropy (SPEC §4.5): row i of neighbours (B, D) against every prediction (B, D), target i.

  Both inputs are unit rows over the *global* batch; the mean over rows equals the official per-rank mean
  followed by DDP's gradient averaging.
  """
  logits = jnp.matmul(neighbours, predictions.T, precision=jax.lax.Precision.HIGHEST) / temperature  # (B, B)
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits))
