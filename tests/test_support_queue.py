"""The NNCLR support queue (SPEC §4.2, §4.5): ring buffer, own-id exclusion, neighbour lookup, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from stars_jax import support_queue as sq
from stars_jax.sharding import make_mesh


def _unit(rng, n, d):
  x = rng.normal(size=(n, d)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


class _RingBuffer:
  """Plain numpy reference: write row by row at the pointer, wrapping at the end."""

  def __init__(self, embeddings, ids):
    self.embeddings, self.ids, self.ptr = np.array(embeddings), np.array(ids), 0

  def push(self, z, ids):
    for row, i in zip(z, ids):
      self.embeddings[self.ptr], self.ids[self.ptr] = row, i
      self.ptr = (self.ptr + 1) % len(self.ids)


def _filled_queue(rng, size, dim, ids):
  """A queue whose rows all hold the given ids (one full lap of enqueues)."""
  queue = sq.init(jax.random.PRNGKey(0), size, dim)
  return sq.enqueue(queue, jnp.asarray(_unit(rng, size, dim)), jnp.asarray(ids, jnp.int32))


def _reference_sims(queue, z, ids):
  sims = np.asarray(z, np.float64) @ np.asarray(queue.embeddings, np.float64).T
  sims[np.asarray(queue.ids)[None, :] == np.asarray(ids)[:, None]] = -1.0
  return sims


def _row_index(queue, rows):
  """Index of each returned row in the queue (rows are copies of queue rows)."""
  emb = np.asarray(queue.embeddings)
  found = [np.flatnonzero(np.all(emb == r, axis=1)) for r in np.asarray(rows)]
  assert all(len(f) == 1 for f in found)
  return np.array([f[0] for f in found])


def test_init_is_unit_noise_with_empty_ids_and_deterministic():
  queue = sq.init(jax.random.PRNGKey(3), 12, 5)
  assert queue.embeddings.shape == (12, 5) and queue.embeddings.dtype == jnp.float32 and queue.size == 12
  np.testing.assert_allclose(np.linalg.norm(np.asarray(queue.embeddings), axis=1), 1.0, rtol=1e-6)
  assert sq.EMPTY_ID == -1 and queue.ids.dtype == jnp.int32 and np.all(np.asarray(queue.ids) == -1)
  assert int(queue.ptr) == 0
  assert len(np.unique(np.asarray(queue.embeddings), axis=0)) == 12  # random rows, not one repeated vector
  np.testing.assert_array_equal(queue.embeddings, sq.init(jax.random.PRNGKey(3), 12, 5).embeddings)
  assert not np.allclose(queue.embeddings, sq.init(jax.random.PRNGKey(4), 12, 5).embeddings)


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows_finite():
  x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(sq.l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_enqueue_wraps_when_batch_does_not_divide_size():
  rng = np.random.default_rng(0)
  queue = sq.init(jax.random.PRNGKey(0), 10, 3)
  batches = [_unit(rng, 4, 3) for _ in range(3)]
  for step, z in enumerate(batches):
    queue = sq.enqueue(queue, jnp.asarray(z), jnp.arange(4 * step, 4 * step + 4))
  np.testing.assert_array_equal(queue.ids, [10, 11, 2, 3, 4, 5, 6, 7, 8, 9])
  assert int(queue.ptr) == 2
  emb = np.asarray(queue.embeddings)
  np.testing.assert_array_equal(emb[0:2], batches[2][2:4])  # the oldest rows were overwritten, in order
  np.testing.assert_array_equal(emb[2:4], batches[0][2:4])
  np.testing.assert_array_equal(emb[4:8], batches[1])
  np.testing.assert_array_equal(emb[8:10], batches[2][0:2])


def test_enqueue_matches_numpy_ring_buffer_over_many_steps():
  rng = np.random.default_rng(1)
  queue = sq.init(jax.random.PRNGKey(1), 10, 4)
  ref = _RingBuffer(queue.embeddings, queue.ids)
  next_id = 0
  for b in [4, 7, 10, 3, 4, 9, 4, 3]:
    z, ids = _unit(rng, b, 4), np.arange(next_id, next_id + b)
    next_id += b
    queue = sq.enqueue(queue, jnp.asarray(z), jnp.asarray(ids))
    ref.push(z, ids)
    np.testing.assert_array_equal(queue.embeddings, ref.embeddings)
    np.testing.assert_array_equal(queue.ids, ref.ids)
    assert int(queue.ptr) == ref.ptr


def test_enqueue_jitted_matches_reference():
  rng = np.random.default_rng(2)
  queue = sq.init(jax.random.PRNGKey(2), 10, 4)
  ref = _RingBuffer(queue.embeddings, queue.ids)
  step = jax.jit(sq.enqueue)
  for i in range(7):
    z, ids = _unit(rng, 3, 4), np.arange(3 * i, 3 * i + 3)
    queue = step(queue, jnp.asarray(z), jnp.asarray(ids))
    ref.push(z, ids)
  np.testing.assert_array_equal(queue.embeddings, ref.embeddings)
  np.testing.assert_array_equal(queue.ids, ref.ids)
  assert int(queue.ptr) == ref.ptr == 1


def test_enqueue_rejects_batch_larger_than_queue():
  queue = sq.init(jax.random.PRNGKey(0), 10, 3)
  with pytest.raises(ValueError):
    sq.enqueue(queue, jnp.zeros((11, 3)), jnp.arange(11))


def test_own_id_is_excluded_with_similarity_minus_one():
  rng = np.random.default_rng(3)
  queue = sq.init(jax.random.PRNGKey(3), 8, 6)
  z = _unit(rng, 3, 6)
  queue = sq.enqueue(queue, jnp.asarray(z), jnp.array([5, 6, 7]))  # rows 0..2 hold the samples themselves
  queue = sq.enqueue(queue, jnp.asarray(z[:1]), jnp.array([5]))  # sample 5 stored twice (rows 0 and 3)
  sims = np.asarray(sq.similarities(queue, jnp.asarray(z), jnp.array([5, 6, 7])))
  assert sims[0, 0] == sims[0, 3] == sims[1, 1] == sims[2, 2] == sq.EXCLUDED_SIMILARITY == -1.0
  np.testing.assert_allclose(sims[0, 1], z[0] @ z[1], rtol=1e-5)  # other samples' rows are plain cosines
  np.testing.assert_allclose(sims, _reference_sims(queue, z, [5, 6, 7]), rtol=1e-5, atol=1e-6)
  got = np.asarray(sq.nearest_neighbours(queue, jnp.asarray(z), jnp.array([5, 6, 7])))
  for b in range(3):
    assert not np.array_equal(got[b], z[b])  # never itself, although stored with similarity 1
  want = np.asarray(queue.embeddings)[np.argmax(_reference_sims(queue, z, [5, 6, 7]), axis=1)]
  np.testing.assert_array_equal(got, want)
  # Under other ids the identical rows are found.
  np.testing.assert_array_equal(sq.nearest_neighbours(queue, jnp.asarray(z), jnp.array([100, 101, 102])), z)


def test_nearest_neighbour_is_numpy_argmax_of_cosine():
  rng = np.random.default_rng(4)
  queue = _filled_queue(rng, 16, 8, np.arange(16))
  z, ids = _unit(rng, 6, 8), np.array([0, 3, 20, 15, 21, 7])  # some ids present, some not
  got = np.asarray(sq.nearest_neighbours(queue, jnp.asarray(z), jnp.asarray(ids)))
  want = np.asarray(queue.embeddings)[np.argmax(_reference_sims(queue, z, ids), axis=1)]
  np.testing.assert_array_equal(got, want)


def test_topk_neighbour_is_a_random_one_of_the_k_most_similar():
  rng = np.random.default_rng(5)
  queue = _filled_queue(rng, 16, 8, np.arange(16))
  z, ids = _unit(rng, 4, 8), np.array([1, 2, 30, 31])
  z[0] = np.asarray(queue.embeddings)[1]  # its own row would be the most similar
  top3 = np.argsort(-_reference_sims(queue, z, ids), axis=1)[:, :3]
  picked = np.stack(
    [
      _row_index(
        queue, sq.nearest_neighbours(queue, jnp.asarray(z), jnp.asarray(ids), topk=3, key=jax.random.PRNGKey(s))
      )
      for s in range(24)
    ]
  )  # (draws, B)
  for b in range(4):
    assert set(picked[:, b]) <= set(top3[b])
    assert len(set(picked[:, b])) > 1  # actually random among the k
  assert 1 not in picked[:, 0]
  top1 = sq.nearest_neighbours(queue, jnp.asarray(z), jnp.asarray(ids), topk=1, key=jax.random.PRNGKey(0))
  np.testing.assert_array_equal(top1, sq.nearest_neighbours(queue, jnp.asarray(z), jnp.asarray(ids)))
  with pytest.raises(ValueError):
    sq.nearest_neighbours(queue, jnp.asarray(z), jnp.asarray(ids), topk=3)


def test_queue_sharded_over_devices_matches_unsharded():
  mesh = make_mesh()
  assert mesh.size == 8
  rng = np.random.default_rng(6)
  queue = sq.init(jax.random.PRNGKey(6), 16, 4)
  rows = NamedSharding(mesh, P("data"))
  sharded = sq.SupportQueue(
    jax.device_put(queue.embeddings, rows),
    jax.device_put(queue.ids, rows),
    jax.device_put(queue.ptr, NamedSharding(mesh, P())),
  )
  assert len(sharded.embeddings.sharding.device_set) == 8

  @jax.jit
  def step(queue, z, ids, key):
    queue = sq.enqueue(queue, z, ids)
    return queue, sq.nearest_neighbours(queue, z, ids), sq.nearest_neighbours(queue, z, ids, topk=3, key=key)

  for i in range(5):  # batch 6 does not divide 16: writes straddle shards and wrap around
    z, ids = jnp.asarray(_unit(rng, 6, 4)), jnp.arange(6 * i, 6 * i + 6) % 20
    key = jax.random.PRNGKey(i)
    queue, nn_plain, topk_plain = step(queue, z, ids, key)
    sharded, nn_sharded, topk_sharded = step(sharded, z, ids, key)
    np.testing.assert_array_equal(nn_sharded, nn_plain)
    np.testing.assert_array_equal(topk_sharded, topk_plain)
  np.testing.assert_array_equal(sharded.embeddings, queue.embeddings)
  np.testing.assert_array_equal(sharded.ids, queue.ids)
  assert int(sharded.ptr) == int(queue.ptr) == 30 % 16
