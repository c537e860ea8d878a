"""Token masking for MAMP pretraining: pure functions of a PRNG key and the input clip (SPEC §2.5).

A masking is described by three integer arrays per person-sequence (batch element):
  ids_keep    (B, K)  token indices that stay visible, in the order the encoder sees them;
  ids_restore (B, L)  permutation putting [visible tokens, mask tokens] back in token order;
  mask        (B, L)  1.0 where a token is masked, 0.0 where visible (token order).
Tokens are ordered segment-major: index = segment * joints + joint.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Masking(NamedTuple):
  ids_keep: jax.Array  # (B, K) int32
  ids_restore: jax.Array  # (B, L) int32
  mask: jax.Array  # (B, L) float32


def num_visible(num_tokens: int, mask_ratio: float) -> int:
  """Visible-token count as the official code computes it: int(L * (1 - ratio)).

  With L = 750 and ratio 0.9 floating point gives int(74.99999999999999) = 74, not 75 (SPEC §7.14);
  we keep that effective behaviour.
  """
  return int(num_tokens * (1 - mask_ratio))


def patchify(x: jax.Array, t_patch: int) -> jax.Array:
  """(B, T, V, C) -> (B, T/t_patch * V, t_patch * C); each token's values ordered (frame-in-segment, xyz)."""
  b, t, v, c = x.shape
  x = x.reshape(b, t // t_patch, t_patch, v, c)  # (B, TP, u, V, C)
  x = x.transpose(0, 1, 3, 2, 4)  # (B, TP, V, u, C)
  return x.reshape(b, (t // t_patch) * v, t_patch * c)


def token_motion(x: jax.Array, t_patch: int) -> jax.Array:
  """Per-token motion magnitude (SPEC §2.5 step 3): mean |patch(tp) - patch(tp-1)|, segment 0 copies segment 1.

  x: (B, T, V, C) joint positions. Returns (B, L) with L = T/t_patch * V.
  """
  b, t, v, _ = x.shape
  patches = patchify(x, t_patch).reshape(b, t // t_patch, v, -1)  # (B, TP, V, u*C)
  motion = jnp.abs(patches[:, 1:] - patches[:, :-1]).mean(axis=-1)  # (B, TP-1, V)
  motion = jnp.concatenate([motion[:, :1], motion], axis=1)  # (B, TP, V)
  return motion.reshape(b, -1)


def _from_scores(scores: jax.Array, num_keep: int) -> Masking:
  """Keep the `num_keep` lowest-scoring tokens; the rest are masked."""
  ids_shuffle = jnp.argsort(scores, axis=-1)  # (B, L), ascending: low score = visible
  ids_restore = jnp.argsort(ids_shuffle, axis=-1)
  mask = (ids_restore >= num_keep).astype(jnp.float32)  # (B, L)
  return Masking(ids_shuffle[:, :num_keep].astype(jnp.int32), ids_restore.astype(jnp.int32), mask)


def uniform_masking(key: jax.Array, batch: int, num_tokens: int, num_keep: int) -> Masking:
  """Uniform random masking (the MAE baseline; MAMP with tau = 0)."""
  noise = jax.random.uniform(key, (batch, num_tokens))
  return _from_scores(noise, num_keep)


def motion_aware_masking(
  key: jax.Array | None, x: jax.Array, *, t_patch: int, num_keep: int, tau: float, noise: jax.Array | None = None
) -> Masking:
  """Motion-aware masking (SPEC §2.5): a Gumbel-top-k sample that masks high-motion tokens more often.

  x: (B, T, V, C) input positions (before embedding). Motion m is scaled to [0, 1/tau] by its per-sequence
  maximum, p = softmax(m), score = log p + Gumbel noise; the num_keep lowest scores stay visible. An all-zero
  (absent) person has m = 0 everywhere and is therefore masked uniformly. The uniform draws u (B, L) behind the
  Gumbel noise come from `key`, or from the caller as `noise` (e.g. the official code's torch.rand draws).
  """
  motion = token_motion(x, t_patch)  # (B, L)
  motion = motion / (motion.max(axis=-1, keepdims=True) * tau + 1e-10)
  log_p = jax.nn.log_softmax(motion, axis=-1)
  if noise is None:
    if key is None:
      raise ValueError("motion_aware_masking needs a PRNG key or the uniform noise")
    u = jax.random.uniform(key, motion.shape)
  elif noise.shape != motion.shape:
    raise ValueError(f"noise of shape {noise.shape}; motion_aware_masking needs one draw per token {motion.shape}")
  else:
    u = noise
  scores = log_p - jnp.log(-jnp.log(u + 1e-10) + 1e-10)  # (B, L)
  return _from_scores(scores, num_keep)


def masking_from_keep(ids_keep: jax.Array, num_tokens: int) -> Masking:
  """Completes precomputed visible indices (e.g. from another implementation) into a full Masking."""
  b, k = ids_keep.shape
  rows = jnp.arange(b)[:, None]
  mask = jnp.ones((b, num_tokens), jnp.float32).at[rows, ids_keep].set(0.0)
  masked_ids = jnp.argsort(mask, axis=-1, stable=True)[:, k:]  # (B, L-K) masked, in token order
  ids_shuffle = jnp.concatenate([ids_keep, masked_ids], axis=-1)
  ids_restore = jnp.argsort(ids_shuffle, axis=-1).astype(jnp.int32)
  return Masking(ids_keep.astype(jnp.int32), ids_restore, mask)


def sample_masking(key: jax.Array, x: jax.Array, *, t_patch: int, mask_ratio: float, tau: float) -> Masking:
  """MAMP's masking for folded person-sequences x (B, T, V, C): motion-aware if tau > 0, else uniform."""
  b, t, v, _ = x.shape
  num_tokens = t // t_patch * v
  num_keep = num_visible(num_tokens, mask_ratio)
  if tau > 0:
    return motion_aware_masking(key, x, t_patch=t_patch, num_keep=num_keep, tau=tau)
  return uniform_masking(key, b, num_tokens, num_keep)
