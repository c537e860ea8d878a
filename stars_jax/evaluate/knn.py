"""kNN classification of frozen features as STARS' knn_eval.py does it (SPEC §4.10)."""
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 1) -> float:
  """Top-1 accuracy (percent): L2-normalised features, cosine metric, uniform majority vote."""
  clf = KNeighborsClassifier(n_neighbors=k, metric="cosine")
  clf.fit(normalize(train_x), train_y)
  return 100.0 * float((clf.predict(normalize(test_x)) == test_y).mean())
