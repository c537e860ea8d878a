"""The runner's evaluation hooks: the STARS monitor's stratified validation split (SPEC §4.8)."""

import numpy as np
import pytest

from stars_jax.train.hooks import validation_split


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
