"""kNN classification of frozen features: STARS' knn_eval.py (SPEC §4.10) and its weighted kNN monitor (§4.8).

`knn_accuracy` is the official sklearn classifier; `knn_accuracies` is the same classifier on device (cosine
top-k with a uniform vote, queries in chunks so no (Q, N) similarity matrix for the whole test set exists).
Tie rule of the uniform vote (as sklearn's `KNeighborsClassifier.predict`, which takes the argmax of the class
counts or `scipy.stats.mode`, both the smallest class on ties): the class with the most votes among the k
nearest neighbours, and among classes with equally many votes the smallest class id.
"""

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize

KNN_KS = (1, 2, 5, 10)  # the k of STARS' knn_eval.py (SPEC §4.10): every kNN report of this package


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 1) -> float:
  """Top-1 accuracy (percent): L2-normalised features, cosine metric, uniform majority vote."""
  clf = KNeighborsClassifier(n_neighbors=k, metric="cosine")
  clf.fit(normalize(train_x), train_y)
  return 100.0 * float((clf.predict(normalize(test_x)) == test_y).mean())


def _over_chunks(predict: Callable[[jax.Array], jax.Array], queries: np.ndarray, chunk: int) -> np.ndarray:
  """`predict` on L2-normalised queries, `chunk` rows at a time (the last chunk zero-padded to the same shape,
  so it compiles once); the results concatenated along the query axis (axis 0)."""
  queries = normalize(np.asarray(queries, np.float32))  # (Q, D)
  chunk = max(1, min(chunk, len(queries)))
  outs = []
  for start in range(0, len(queries), chunk):
    part = queries[start : start + chunk]  # (<= chunk, D)
    padded = np.pad(part, ((0, chunk - len(part)), (0, 0)))  # (chunk, D)
    outs.append(np.asarray(predict(jnp.asarray(padded)))[: len(part)])
  return np.concatenate(outs) if outs else np.zeros((0,), np.int32)


def _similarities(bank: jax.Array, queries: jax.Array) -> jax.Array:
  return jnp.matmul(queries, bank.T, precision=jax.lax.Precision.HIGHEST)  # (Q, N)


@functools.partial(jax.jit, static_argnames=("ks", "num_classes"))
def _vote_predict(
  bank: jax.Array, bank_labels: jax.Array, queries: jax.Array, *, ks: tuple[int, ...], num_classes: int
) -> jax.Array:
  """(Q, len(ks)) uniform-vote predictions for every k from one top-max(ks) search."""
  _, top_idx = jax.lax.top_k(_similarities(bank, queries), max(ks))  # (Q, K), most similar first
  votes = jax.nn.one_hot(bank_labels[top_idx], num_classes, dtype=jnp.int32)  # (Q, K, C)
  counts = jnp.cumsum(votes, axis=1)[:, jnp.asarray(ks) - 1]  # (Q, len(ks), C): votes of the k nearest
  return jnp.argmax(counts, axis=-1)  # (Q, len(ks)); argmax returns the first (smallest) tied class


def _check_ks(ks: Sequence[int], bank_size: int) -> tuple[int, ...]:
  ks = tuple(int(k) for k in ks)
  if not ks or min(ks) < 1 or max(ks) > bank_size:
    raise ValueError(f"need 1 <= k <= bank size ({bank_size}); got ks={ks}")
  return ks


def _predict_ks(
  bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, ks: tuple[int, ...], num_classes: int, chunk: int
) -> np.ndarray:
  bank_dev = jnp.asarray(normalize(np.asarray(bank, np.float32)))  # (N, D)
  labels = jnp.asarray(bank_labels, jnp.int32)  # (N,)
  predict = functools.partial(_vote_predict, bank_dev, labels, ks=ks, num_classes=num_classes)
  return _over_chunks(predict, queries, chunk).reshape(-1, len(ks))  # (Q, len(ks))


def knn_predict(
  bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, *, k: int, num_classes: int, chunk: int = 1024
) -> np.ndarray:
  """(Q,) class predictions: cosine kNN, uniform majority vote, ties to the smallest class id (module doc).

  `bank_labels` are ints in [0, num_classes); `chunk` queries are compared with the bank at a time."""
  ks = _check_ks((k,), len(bank))
  return _predict_ks(bank, bank_labels, queries, ks, num_classes, chunk)[:, 0]


def knn_accuracies(
  train_x: np.ndarray,
  train_y: np.ndarray,
  test_x: np.ndarray,
  test_y: np.ndarray,
  ks: Sequence[int] = KNN_KS,
  num_classes: int | None = None,
  chunk: int = 1024,
) -> dict[int, float]:
  """{k: top-1 accuracy (percent)} of `knn_predict` with the training set as bank, every k from one search;
  equal to `knn_accuracy` (sklearn). `num_classes` defaults to 1 + the largest label."""
  ks = _check_ks(ks, len(train_x))
  if num_classes is None:
    num_classes = 1 + int(max(np.max(train_y), np.max(test_y, initial=0)))
  preds = _predict_ks(train_x, train_y, test_x, ks, num_classes, chunk)  # (Q, len(ks))
  hits = preds == np.asarray(test_y)[:, None]  # (Q, len(ks))
  return {k: 100.0 * float(hits[:, i].mean()) for i, k in enumerate(ks)}


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _weighted_knn_predict(
  bank: jax.Array, bank_labels: jax.Array, queries: jax.Array, *, k: int, temperature: float, num_classes: int
) -> jax.Array:
  top_sims, top_idx = jax.lax.top_k(_similarities(bank, queries), k)  # (Q, k)
  weights = jnp.exp(top_sims / temperature)  # (Q, k)
  votes = jax.nn.one_hot(bank_labels[top_idx], num_classes) * weights[..., None]  # (Q, k, C)
  return jnp.argmax(votes.sum(axis=1), axis=-1)  # (Q,)


def weighted_knn_accuracy(
  bank: np.ndarray,
  bank_labels: np.ndarray,
  queries: np.ndarray,
  query_labels: np.ndarray,
  *,
  k: int,
  temperature: float,
  num_classes: int,
  chunk: int = 1024,
) -> float:
  """InstDisc weighted kNN top-1 (percent), as the STARS monitor (SPEC §4.8): L2-normalised features, the k
  most cosine-similar bank samples vote for their class with weight exp(similarity / temperature)."""
  k = min(k, len(bank))
  bank_dev = jnp.asarray(normalize(np.asarray(bank, np.float32)))  # (N, D)
  labels = jnp.asarray(bank_labels, jnp.int32)  # (N,)
  predict = functools.partial(
    _weighted_knn_predict, bank_dev, labels, k=k, temperature=temperature, num_classes=num_classes
  )
  return 100.0 * float((_over_chunks(predict, queries, chunk) == query_labels).mean())
