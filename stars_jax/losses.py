"""Losses: the MAMP motion-reconstruction objective (SPEC §2.6–2.7) and the stage-2 tuning objectives: NNCLR
(§4.5), MoCo and DINO with the KoLeo regulariser (§4.11)."""

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


def _rows_dot(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)


def moco_loss(q: jax.Array, k: jax.Array, queue: jax.Array, temperature: float) -> jax.Array:
  """MoCo InfoNCE: logits [q·k, q·queue] / T, cross-entropy with target 0, mean over rows.

  q, k (B, D) unit rows (k without gradient), queue (K, D) unit rows of earlier keys.
  """
  positive = jnp.sum(q * k, axis=-1, keepdims=True)  # (B, 1)
  logits = jnp.concatenate([positive, _rows_dot(q, queue)], axis=1) / temperature  # (B, 1 + K)
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


def sinkhorn_knopp(teacher: jax.Array, temperature: float, iterations: int = 3) -> jax.Array:
  """Balanced soft assignments of B teacher outputs (B, K) to K prototypes: rows sum to 1 (SwAV / DINO's
  `sinkhorn_knopp`, SPEC §4.11). Q = exp(t / T) normalised to a total of 1, then `iterations` times every
  prototype to mass 1/K and every sample to 1/B; finally scaled by B. Subtracting the global maximum first
  changes nothing (the first normalisation divides it out) but keeps exp finite for any T."""
  b, k = teacher.shape
  logits = teacher.astype(jnp.float32) / temperature
  q = jnp.exp(logits - jnp.max(logits))  # (B, K)
  q = q / jnp.sum(q)
  for _ in range(iterations):
    q = q / jnp.sum(q, axis=0, keepdims=True) / k  # each prototype (column here) to 1/K
    q = q / jnp.sum(q, axis=1, keepdims=True) / b  # each sample (row) to 1/B
  return q * b


def dino_cross_entropy(student: jax.Array, targets: jax.Array, temperature: float) -> jax.Array:
  """DINO cross-entropy over cross-view pairs: mean over pairs (teacher view i, student view v), v != i, of the
  batch mean of -sum(target_i · log_softmax(student_v / T)). student (V, B, K), targets (Vt, B, K) with
  Vt <= V (the teacher sees the global views only); targets carry no gradient."""
  log_p = jax.nn.log_softmax(student.astype(jnp.float32) / temperature, axis=-1)  # (V, B, K)
  terms = [
    jnp.mean(jnp.sum(-targets[i] * log_p[v], axis=-1))
    for i in range(targets.shape[0])
    for v in range(student.shape[0])
    if v != i
  ]
  return sum(terms) / len(terms)


def koleo_loss(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Kozachenko–Leonenko entropy regulariser (DINOv2's KoLeoLoss): -mean log distance of each L2-normalised row
  of x (B, D) to its nearest other row. As torch's PairwiseDistance, eps is added to the difference."""
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
  dots = _rows_dot(x, x)  # (B, B)
  dots = jnp.where(jnp.eye(x.shape[0], dtype=bool), -1.0, dots)
  nearest = jax.lax.stop_gradient(jnp.argmax(dots, axis=1))  # (B,)
  distances = jnp.linalg.norm(x - x[nearest] + eps, axis=-1)  # (B,)
  return -jnp.mean(jnp.log(distances + eps))
