"""Quick frozen-feature checks run at the end of pretraining: kNN-1 and a logistic-regression probe.

These compare the trained encoder with a randomly initialised one. They are a health check (cheap, on the
host); the SPEC §3.3 linear-probe protocol is a separate stage.
"""
import jax
import ml_collections
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from stars_jax.data.npz import SkeletonSplit
from stars_jax.evaluate import features, knn
from stars_jax.models.mamp import Encoder


def logistic_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                      test_y: np.ndarray, seed: int = 0) -> float:
  """Top-1 (percent) of an L2-regularised multinomial logistic regression on standardised features."""
  scaler = StandardScaler().fit(train_x)
  clf = LogisticRegression(max_iter=2000, random_state=seed)
  clf.fit(scaler.transform(train_x), train_y)
  return 100.0 * float((clf.predict(scaler.transform(test_x)) == test_y).mean())


def probe(encoder: Encoder, named_params: dict[str, dict], train_split: SkeletonSplit,
          test_split: SkeletonSplit, data_config: ml_collections.ConfigDict, batch_size: int,
          mesh: jax.sharding.Mesh) -> dict[str, dict[str, float]]:
  """{'knn1': {name: acc}, 'logistic': {name: acc}}: test accuracy (percent) of each encoder's features."""
  embed = features.make_embed_fn(encoder, data_config, mesh)  # compiled once for every parameter set
  results: dict[str, dict[str, float]] = {"knn1": {}, "logistic": {}}
  for name, params in named_params.items():
    tr_x, tr_y = features.extract(embed, params, train_split, batch_size, mesh)
    te_x, te_y = features.extract(embed, params, test_split, batch_size, mesh)
    results["knn1"][name] = knn.knn_accuracy(tr_x, tr_y, te_x, te_y, k=1)
    results["logistic"][name] = logistic_accuracy(tr_x, tr_y, te_x, te_y)
  return results
