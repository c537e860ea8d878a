"""kNN classification of frozen features: STARS' knn_eval.py (SPEC §4.10) and its weighted kNN monitor (§4.8)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 1) -> float:
  """Top-1 accuracy (percent): L2-normalised features, cosine metric, uniform majority vote."""
  clf = KNeighborsClassifier(n_neighbors=k, metric="cosine")
  clf.fit(normalize(train_x), train_y)
  return 100.0 * float((clf.predict(normalize(test_x)) == test_y).mean())


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _weighted_knn_predict(bank: jax.Array, bank_labels: jax.Array, queries: jax.Array, *, k: int,
                          temperature: float, num_classes: int) -> jax.Array:
  sims = jnp.matmul(queries, bank.T, precision=jax.lax.Precision.HIGHEST)  # (Q, N)
  top_sims, top_idx = jax.lax.top_k(sims, k)  # (Q, k)
  weights = jnp.exp(top_sims / temperature)  # (Q, k)
  votes = jax.nn.one_hot(bank_labels[top_idx], num_classes) * weights[..., None]  # (Q, k, C)
  return jnp.argmax(votes.sum(axis=1), axis=-1)  # (Q,)


def weighted_knn_accuracy(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray,
                          query_labels: np.ndarray, *, k: int, temperature: float, num_classes: int,
                          chunk: int = 1024) -> float:
  """InstDisc weighted kNN top-1 (percent), as the STARS monitor (SPEC §4.8): L2-normalised features, the k
  most cosine-similar bank samples vote for their class with weight exp(similarity / temperature)."""
  k = min(k, len(bank))
  bank = jnp.asarray(normalize(bank))
  labels = jnp.asarray(bank_labels, jnp.int32)
  queries = normalize(queries)
  preds = [np.asarray(_weighted_knn_predict(bank, labels, jnp.asarray(queries[i:i + chunk]), k=k,
                                            temperature=temperature, num_classes=num_classes))
           for i in range(0, len(queries), chunk)]
  return 100.0 * float((np.concatenate(preds) == query_labels).mean())
