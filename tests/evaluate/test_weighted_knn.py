"""The weighted kNN of the STARS monitor (SPEC §4.8, InstDisc) against a numpy reference."""

import numpy as np
import pytest

from stars_jax.evaluate.knn import weighted_knn_accuracy


def _numpy_weighted_knn(bank, bank_labels, queries, query_labels, k, temperature, num_classes):
  """InstDisc: cosine top-k neighbours vote for their class with weight exp(sim / T); percent top-1."""
  bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
  queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  sims = queries @ bank.T  # (Q, N)
  top = np.argsort(-sims, axis=1)[:, :k]  # (Q, k)
  votes = np.zeros((len(queries), num_classes))
  for q in range(len(queries)):
    for i in top[q]:
      votes[q, bank_labels[i]] += np.exp(sims[q, i] / temperature)
  return 100.0 * np.mean(votes.argmax(axis=1) == query_labels)


def _clusters(rng, n, centers, noise):
  labels = rng.integers(0, len(centers), n)
  return centers[labels] + noise * rng.normal(size=(n, centers.shape[1])), labels


@pytest.mark.parametrize("k", [1, 3, 5])
def test_weighted_knn_matches_numpy_reference(k):
  rng = np.random.default_rng(k)
  centers = rng.normal(size=(4, 8))
  bank, bank_y = _clusters(rng, 40, centers, 0.8)
  queries, query_y = _clusters(rng, 25, centers, 1.0)
  got = weighted_knn_accuracy(
    bank.astype(np.float32), bank_y, queries.astype(np.float32), query_y, k=k, temperature=0.1, num_classes=4
  )
  want = _numpy_weighted_knn(bank, bank_y, queries, query_y, k, 0.1, 4)
  assert 0.0 < want < 100.0  # a non-trivial case: some queries right, some wrong
  assert got == pytest.approx(want, abs=1e-9)
  chunked = weighted_knn_accuracy(
    bank.astype(np.float32), bank_y, queries.astype(np.float32), query_y, k=k, temperature=0.1, num_classes=4, chunk=3
  )
  assert chunked == got
  # Features are L2-normalised first: rescaling samples changes nothing.
  scaled = weighted_knn_accuracy(
    (bank * rng.uniform(0.1, 10.0, size=(40, 1))).astype(np.float32),
    bank_y,
    (queries * 7.0).astype(np.float32),
    query_y,
    k=k,
    temperature=0.1,
    num_classes=4,
  )
  assert scaled == got


def test_weighted_vote_beats_majority_when_the_nearest_sample_is_much_closer():
  angle = lambda a: [np.cos(a), np.sin(a)]
  bank = np.array([angle(0.1), angle(1.0), angle(-1.0)], np.float32)  # sims ~0.995 (class 0), ~0.54 (class 1)
  bank_y = np.array([0, 1, 1])
  query, query_y = np.array([[1.0, 0.0]], np.float32), np.array([0])
  assert weighted_knn_accuracy(bank, bank_y, query, query_y, k=3, temperature=0.1, num_classes=2) == 100.0
  # With a large temperature the weights are nearly uniform and the two class-1 samples win.
  assert weighted_knn_accuracy(bank, bank_y, query, query_y, k=3, temperature=100.0, num_classes=2) == 0.0
  # k larger than the bank is clipped to the bank size.
  assert weighted_knn_accuracy(bank, bank_y, query, query_y, k=10, temperature=0.1, num_classes=2) == 100.0
