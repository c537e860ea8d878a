"""On-device kNN (`knn_predict`, `knn_accuracies`) against sklearn's KNeighborsClassifier(metric='cosine')."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize

from stars_jax.evaluate.knn import knn_accuracies, knn_accuracy, knn_predict

KS = (1, 2, 5, 10)


def _sklearn_predict(bank, bank_y, queries, k):
  clf = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(normalize(bank), bank_y)
  return clf.predict(normalize(queries))


def _random_set(seed, n_bank=120, n_query=70, dim=16, num_classes=6):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim))
  bank_y = rng.integers(0, num_classes, n_bank)
  query_y = rng.integers(0, num_classes, n_query)
  bank = (centres[bank_y] + 1.5 * rng.normal(size=(n_bank, dim))) * rng.uniform(0.5, 3.0, (n_bank, 1))
  queries = centres[query_y] + 1.5 * rng.normal(size=(n_query, dim))
  return bank.astype(np.float32), bank_y, queries.astype(np.float32), query_y


@pytest.mark.parametrize("seed", [0, 1])
def test_predictions_equal_sklearn(seed):
  bank, bank_y, queries, query_y = _random_set(seed)
  sims = normalize(queries) @ normalize(bank).T
  top2 = bank_y[np.argsort(-sims, axis=1)[:, :2]]
  assert (top2[:, 0] != top2[:, 1]).sum() > 10  # k = 2 has many 1-1 vote ties
  for k in KS:
    got = knn_predict(bank, bank_y, queries, k=k, num_classes=6)
    np.testing.assert_array_equal(got, _sklearn_predict(bank, bank_y, queries, k), err_msg=f"k={k}")
  accs = knn_accuracies(bank, bank_y, queries, query_y, ks=KS)
  assert set(accs) == set(KS)
  for k in KS:
    assert accs[k] == pytest.approx(knn_accuracy(bank, bank_y, queries, query_y, k=k))


def test_ties_go_to_the_smallest_class():
  # Bank on the unit circle at angles 0.1, 0.2, 0.3, 0.4 rad from the query (1, 0), so the neighbour order
  # is fixed; classes chosen so that k = 2 and k = 4 are exact vote ties.
  angles = np.array([0.1, 0.2, 0.3, 0.4])
  bank = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
  query = np.array([[1.0, 0.0]], np.float32)
  for bank_y, want in [
    ((3, 1, 3, 1), {1: 3, 2: 1, 3: 3, 4: 1}),
    ((1, 3, 3, 1), {1: 1, 2: 1, 3: 3, 4: 1}),
    ((2, 0, 4, 4), {1: 2, 2: 0, 3: 0, 4: 4}),
  ]:
    bank_y = np.array(bank_y)
    for k, cls in want.items():
      assert knn_predict(bank, bank_y, query, k=k, num_classes=5)[0] == cls, (bank_y, k)
      assert _sklearn_predict(bank, bank_y, query, k)[0] == cls, (bank_y, k)


def test_chunk_size_does_not_change_results():
  bank, bank_y, queries, query_y = _random_set(2)
  whole = knn_accuracies(bank, bank_y, queries, query_y, ks=KS, chunk=1024)
  for chunk in (1, 7, 32):
    assert knn_accuracies(bank, bank_y, queries, query_y, ks=KS, chunk=chunk) == whole
    np.testing.assert_array_equal(
      knn_predict(bank, bank_y, queries, k=5, num_classes=6, chunk=chunk),
      knn_predict(bank, bank_y, queries, k=5, num_classes=6),
    )


def test_k_larger_than_bank_is_an_error():
  bank, bank_y, queries, query_y = _random_set(3, n_bank=4)
  with pytest.raises(ValueError):
    knn_accuracies(bank, bank_y, queries, query_y, ks=(1, 5))
