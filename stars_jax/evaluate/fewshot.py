"""Few-shot evaluation of frozen features on classes the encoder never saw.

* STARS protocol (SPEC §1.9): kNN (k = 1, 2, 5, 10) restricted to the novel classes, the training split as bank
  and the test split as queries; on NTU-120 the novel classes are actions 61-120, unseen by an NTU-60 encoder.
* Standard NTU-120 one-shot protocol (not in the official code): 20 novel classes A1, A7, ..., A115 (the other
  100 are auxiliary, for training); one exemplar per novel class, every other novel sample is a query labelled
  with the class of its most cosine-similar exemplar. The official exemplar list names raw files that our npz
  layout cannot identify, so exemplars are drawn with a seed and accuracy is averaged over several draws.
* Synthetic analogue: the same functions on `data.held_out_classes`.

The class lists of these protocols are config constants (`configs/common.py`).
"""

from collections.abc import Iterable, Sequence

import numpy as np

from stars_jax.evaluate.knn import knn_accuracies, knn_predict


def novel_class_split(labels: np.ndarray, classes: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
  """(novel, auxiliary) boolean masks, (N,) each: samples whose label is / is not in `classes`."""
  novel = np.isin(np.asarray(labels), np.asarray(tuple(classes)))
  return novel, ~novel


def fewshot_knn(
  train_x: np.ndarray,
  train_y: np.ndarray,
  test_x: np.ndarray,
  test_y: np.ndarray,
  classes: Iterable[int],
  ks: Sequence[int] = (1, 2, 5, 10),
) -> dict[int, float]:
  """{k: kNN top-1 accuracy (percent)} with bank and queries restricted to samples of `classes`."""
  classes = tuple(classes)
  bank, _ = novel_class_split(train_y, classes)
  queries, _ = novel_class_split(test_y, classes)
  return knn_accuracies(
    train_x[bank], train_y[bank], test_x[queries], test_y[queries], ks=ks, num_classes=1 + max(classes)
  )


def one_shot_exemplars(labels: np.ndarray, classes: Iterable[int], seed: int) -> np.ndarray:
  """(len(classes),) sample indices: for each class in order, one of its samples drawn uniformly (seeded)."""
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  exemplars = []
  for c in classes:
    members = np.flatnonzero(labels == c)
    if not len(members):
      raise ValueError(f"class {c} has no samples")
    exemplars.append(rng.choice(members))
  return np.asarray(exemplars, np.int64)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def one_shot_accuracy(
  x: np.ndarray, y: np.ndarray, classes: Iterable[int], seeds: Sequence[int] = (0, 1, 2, 3, 4)
) -> dict:
  """One-shot top-1 accuracy (percent) over several exemplar draws: {'mean', 'std' (ddof 1), 'per_seed':
  {seed: acc}}. x, y: features and labels of the evaluation samples (the standard protocol uses every sample of
  the novel classes); samples of other classes are ignored."""
  classes = tuple(classes)
  novel, _ = novel_class_split(y, classes)
  per_seed = {}
  for seed in seeds:
    exemplars = one_shot_exemplars(y, classes, seed)  # (C,)
    queries = novel.copy()
    queries[exemplars] = False
    preds = knn_predict(x[exemplars], y[exemplars], x[queries], k=1, num_classes=1 + max(classes))
    per_seed[seed] = 100.0 * float((preds == y[queries]).mean())
  mean, std = mean_std(list(per_seed.values()))
  return {"mean": mean, "std": std, "per_seed": per_seed}
