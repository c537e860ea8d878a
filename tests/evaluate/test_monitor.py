"""The STARS kNN monitor (SPEC §4.8): InstDisc weighted kNN and the stratified validation split."""
import numpy as np
import pytest

from stars_jax.evaluate.knn import weighted_knn_accuracy
from stars_jax.evaluate.monitor import validation_split


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
  got = weighted_knn_accuracy(bank.astype(np.float32), bank_y, queries.astype(np.float32), query_y, k=k,
                              temperature=0.1, num_classes=4)
  want = _numpy_weighted_knn(bank, bank_y, queries, query_y, k, 0.1, 4)
  assert 0.0 < want < 100.0  # a non-trivial case: some queries right, some wrong
  assert got == pytest.approx(want, abs=1e-9)
  chunked = weighted_knn_accuracy(bank.astype(np.float32), bank_y, queries.astype(np.float32), query_y, k=k,
                                  temperature=0.1, num_classes=4, chunk=3)
  assert chunked == got
  # Features are L2-normalised first: rescaling samples changes nothing.
  scaled = weighted_knn_accuracy((bank * rng.uniform(0.1, 10.0, size=(40, 1))).astype(np.float32), bank_y,
                                 (queries * 7.0).astype(np.float32), query_y, k=k, temperature=0.1,
                                 num_classes=4)
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


def test_validation_split_is_a_stratified_partition():
  sizes = {0: 1, 1: 2, 2: 3, 3: 10, 4: 25, 5: 40}
  labels = np.random.default_rng(0).permutation(np.repeat(list(sizes), list(sizes.values())))
  bank, val = validation_split(labels, 0.2, seed=0)
  assert bank.dtype == val.dtype == np.int64
  assert len(np.intersect1d(bank, val)) == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([bank, val])), np.arange(len(labels)))
  for c, n in sizes.items():
    n_val, n_bank = np.sum(labels[val] == c), np.sum(labels[bank] == c)
    if n == 1:
      assert (n_val, n_bank) == (0, 1)
    else:
      assert n_val >= 1 and n_bank >= 1, c
      assert abs(n_val - 0.2 * n) <= 1, c
  assert abs(len(val) / len(labels) - 0.2) < 0.03
  # A large fraction still leaves every class with at least one bank sample.
  bank, val = validation_split(labels, 0.95, seed=0)
  assert all(np.sum(labels[bank] == c) >= 1 for c in sizes)
  assert np.sum(labels[val] == 5) == 38


def test_validation_split_is_seeded():
  labels = np.repeat(np.arange(4), 20)
  first = validation_split(labels, 0.25, seed=3)
  again = validation_split(labels, 0.25, seed=3)
  other = validation_split(labels, 0.25, seed=4)
  np.testing.assert_array_equal(first[0], again[0])
  np.testing.assert_array_equal(first[1], again[1])
  assert len(other[1]) == len(first[1]) == 20
  assert not np.array_equal(other[1], first[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_validation_fraction_outside_open_interval_raises(fraction):
  with pytest.raises(ValueError):
    validation_split(np.arange(10) % 2, fraction, seed=0)
