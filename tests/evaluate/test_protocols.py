"""Protocols a valid but small split cannot run are skipped with the reason, never a crash after training."""

import numpy as np

from stars_jax.evaluate import probe, protocols


def _features(labels: np.ndarray, seed: int = 0) -> np.ndarray:
  """(N, 8) features clustered by label."""
  rng = np.random.default_rng(seed)
  return (np.eye(8)[labels % 8] + 0.1 * rng.standard_normal((len(labels), 8))).astype(np.float32)


def _run(train_y, test_y, held_out=()):
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  return probe.frozen_protocols(
    _features(train_y), train_y, _features(test_y, 1), test_y, held_out=held_out, num_classes=8
  )


def test_one_test_clip_per_class_skips_silhouette_only():
  """scikit-learn's silhouette needs 2 <= labels <= n_samples - 1: 6 labels in 6 clips is one too many."""
  train_y, test_y = np.arange(24) % 6, np.arange(6)
  skips = protocols.skipped_protocols(train_y, test_y)
  assert skips == {"silhouette": "needs 2 <= classes <= clips - 1 on the test split; it has 6 classes in 6 clips"}
  out = _run(train_y, test_y)
  assert "silhouette" not in out
  assert {"knn1", "knn10", "logistic", "nmi", "ari"} <= set(out)


def test_a_small_bank_skips_the_large_k_and_one_class_skips_logistic_and_clusters():
  skips = protocols.skipped_protocols(np.zeros(3, int), np.zeros(4, int))
  assert set(skips) == {"knn5", "knn10", "logistic", "silhouette", "nmi", "ari"}
  assert skips["knn5"] == "k=5 exceeds the 3 training clips"
  out = _run(np.zeros(3, int), np.zeros(4, int))
  assert set(out) == {"knn1", "knn2"}


def test_held_out_classes_with_one_test_clip_each_skip_oneshot_but_not_fewshot():
  train_y = np.arange(24) % 6
  test_y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 5])  # held-out 4 and 5: one test clip each
  skips = protocols.skipped_protocols(train_y, test_y, held_out=(4, 5))
  assert skips == {"oneshot": "each held-out class has one test clip: no query is left after the exemplars"}
  out = _run(train_y, test_y, held_out=(4, 5))
  assert "oneshot" not in out and 0.0 <= out["fewshot"] <= 100.0


def test_held_out_classes_missing_from_the_test_split_skip_fewshot_and_oneshot():
  train_y, test_y = np.arange(24) % 6, np.arange(12) % 4  # no test clip of 4 or 5
  skips = protocols.skipped_protocols(train_y, test_y, held_out=(4, 5))
  assert skips["fewshot"] == "the held-out classes (4, 5) have 8 training and 0 test clips"
  assert skips["oneshot"] == "held-out classes [4, 5] have no test clip to draw an exemplar from"
  out = _run(train_y, test_y, held_out=(4, 5))
  assert "fewshot" not in out and "oneshot" not in out and "knn1" in out


def test_a_split_large_enough_skips_nothing():
  assert protocols.skipped_protocols(np.arange(40) % 8, np.arange(24) % 8, held_out=(6, 7)) == {}
