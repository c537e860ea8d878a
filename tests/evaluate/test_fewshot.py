"""Few-shot protocols on hand-made 2-D features (points on the unit circle at given angles, in degrees)."""

import numpy as np
import pytest
from recipe_files import common

from stars_jax.evaluate.fewshot import fewshot_knn, novel_class_split, one_shot_accuracy, one_shot_exemplars
from stars_jax.evaluate.knn import knn_accuracies


def _circle(*degrees):
  rad = np.deg2rad(np.asarray(degrees, np.float64))
  return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_ntu120_class_lists():
  novel, one_shot = common.NTU120_STARS_NOVEL, common.NTU120_ONE_SHOT_NOVEL
  assert novel[0] == 60 and novel[-1] == 119 and len(novel) == 60
  assert len(one_shot) == 20 and one_shot[:3] == (0, 6, 12) and one_shot[-1] == 114  # A1, A7, A13, A115


def test_novel_class_split():
  novel, auxiliary = novel_class_split(np.array([0, 1, 2, 1, 3]), (1, 3))
  np.testing.assert_array_equal(novel, [False, True, False, True, True])
  np.testing.assert_array_equal(auxiliary, ~novel)


def test_fewshot_knn_ignores_other_classes():
  # Novel classes 2 (bank at 0°) and 3 (bank at 90°); auxiliary 0 (10°) and 1 (80°) lie next to the queries.
  train_x, train_y = _circle(0, 90, 10, 80), np.array([2, 3, 0, 1])
  test_x, test_y = _circle(12, 78, 60, 10), np.array([2, 3, 2, 0])
  # Restricted: 12° -> 0° (2, right); 78° -> 90° (3, right); 60° -> 90° (3, wrong); the class-0 query is dropped.
  # k = 2 votes 2 vs 3 for every query, a tie that goes to class 2: right, wrong, right.
  got = fewshot_knn(train_x, train_y, test_x, test_y, classes=(2, 3), ks=(1, 2))
  assert got == pytest.approx({1: 200 / 3, 2: 200 / 3})
  # Unrestricted, the auxiliary bank samples win: 12° -> 0, 78° -> 1, 60° -> 1, 10° -> 0: only the last right.
  assert knn_accuracies(train_x, train_y, test_x, test_y, ks=(1,))[1] == 25.0


def test_one_shot_exemplars_are_seeded_and_per_class():
  labels = np.array([0, 1, 0, 2, 2, 0, 1, 2, 0, 2])
  a = one_shot_exemplars(labels, (2, 0), seed=7)
  np.testing.assert_array_equal(a, one_shot_exemplars(labels, (2, 0), seed=7))
  np.testing.assert_array_equal(labels[a], [2, 0])
  draws = {tuple(one_shot_exemplars(labels, (2, 0), seed=s)) for s in range(20)}
  assert len(draws) > 1
  with pytest.raises(ValueError):
    one_shot_exemplars(labels, (5,), seed=0)


def test_one_shot_accuracy_by_hand():
  # Novel class 0 at 0° and 60°, novel class 2 only at 90° (its exemplar is forced, it has no query); auxiliary
  # class 1 at 85° is neither exemplar nor query. If class 0's exemplar is 0°, the query 60° is nearer 90°:
  # 0 %; if it is 60°, the query 0° is nearer 60°: 100 %.
  x, y = _circle(0, 60, 90, 85), np.array([0, 0, 2, 1])
  seeds = tuple(range(10))
  got = one_shot_accuracy(x, y, (0, 2), seeds)
  want = {s: 100.0 if one_shot_exemplars(y, (0, 2), s)[0] == 1 else 0.0 for s in seeds}
  assert got["per_seed"] == want
  assert set(want.values()) == {0.0, 100.0}  # both draws occur among these seeds
  assert got["mean"] == pytest.approx(np.mean(list(want.values())))
  assert got["std"] == pytest.approx(np.std(list(want.values()), ddof=1))


def test_one_shot_separated_classes():
  x = _circle(0, 5, 10, 15, 120, 125, 130, 240, 250)
  y = np.array([0, 0, 0, 0, 6, 6, 6, 12, 12])
  got = one_shot_accuracy(x, y, (0, 6, 12), seeds=(0, 1, 2))
  assert got == {"mean": 100.0, "std": 0.0, "per_seed": {0: 100.0, 1: 100.0, 2: 100.0}}
