"""The NNCLR support set (SPEC §4.2, §4.5): a ring buffer of unit-norm projections held as device state.

Stored row-major (K, D); the official buffer is feature-major (D, K). Everything here is a pure function of
arrays, so the queue lives in the train state and is updated inside the jitted step.
"""

import flax
import jax
import jax.numpy as jnp

EMPTY_ID = -1
EXCLUDED_SIMILARITY = -1.0  # the official code overwrites own-id similarities with -1 (not -inf)


@flax.struct.dataclass
class SupportQueue:
  embeddings: jax.Array  # (K, D) float32, unit rows
  ids: jax.Array  # (K,) int32 dataset index of each row, EMPTY_ID for the initial noise
  ptr: jax.Array  # () int32 next row to write

  @property
  def size(self) -> int:
    return self.embeddings.shape[0]


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Rows scaled to unit L2 norm (torch.nn.functional.normalize). (..., D) -> (..., D)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def init(key: jax.Array, size: int, dim: int) -> SupportQueue:
  """Standard-normal rows normalised to unit length, ids EMPTY_ID, pointer 0 (the official initial buffer)."""
  embeddings = l2_normalize(jax.random.normal(key, (size, dim), jnp.float32))
  return SupportQueue(embeddings, jnp.full((size,), EMPTY_ID, jnp.int32), jnp.zeros((), jnp.int32))


def enqueue(queue: SupportQueue, z: jax.Array, ids: jax.Array) -> SupportQueue:
  """Writes a batch at the pointer, wrapping around the end. z (B, D) unit rows, ids (B,); needs B <= K.

  Rows ptr, ptr + 1, ... (mod K) are overwritten; the pointer advances by B (mod K). The official code
  crashes when B does not divide K (SPEC §7.8); this handles every B <= K.
  """
  b = z.shape[0]
  if b > queue.size:
    raise ValueError(f"batch of {b} does not fit a support queue of {queue.size}")
  rows = (queue.ptr + jnp.arange(b, dtype=jnp.int32)) % queue.size  # (B,)
  return SupportQueue(
    queue.embeddings.at[rows].set(z.astype(jnp.float32)),
    queue.ids.at[rows].set(ids.astype(jnp.int32)),
    (queue.ptr + b) % queue.size,
  )


def similarities(queue: SupportQueue, z: jax.Array, ids: jax.Array) -> jax.Array:
  """Cosine similarity of each unit row of z (B, D) to every support row, own ids excluded. -> (B, K)."""
  sims = jnp.matmul(z.astype(jnp.float32), queue.embeddings.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.where(queue.ids[None, :] == ids[:, None], EXCLUDED_SIMILARITY, sims)


def nearest_neighbours(
  queue: SupportQueue, z: jax.Array, ids: jax.Array, *, topk: int = 0, key: jax.Array | None = None
) -> jax.Array:
  """The support row nearest to each z (B, D), skipping rows holding the sample's own id. -> (B, D).

  topk = 0: the most similar row (the official setting). topk > 0: a uniformly random one of the topk
  most similar rows (needs `key`).
  """
  sims = similarities(queue, z, ids)  # (B, K)
  if topk <= 0:
    index = jnp.argmax(sims, axis=1)  # (B,)
  else:
    if key is None:
      raise ValueError("nearest_neighbours with topk > 0 needs a PRNG key")
    _, top = jax.lax.top_k(sims, topk)  # (B, topk)
    pick = jax.random.randint(key, (z.shape[0], 1), 0, topk)  # (B, 1)
    index = jnp.take_along_axis(top, pick, axis=1)[:, 0]
  return queue.embeddings[index]
