"""Sequence transformation and splits (SPEC §1.4): centring, second person, padding, split rules and counts."""

import numpy as np
import pytest
from ntu_names import MISSING, all_names

from stars_jax.data_prep import ntu_transform as tr


def test_centre_on_first_frame_spine_middle_of_actor1():
  joints = np.zeros((3, 150), np.float32)
  joints[1:, :75] = np.arange(75, dtype=np.float32) + 1  # actor 1 appears at frame 1
  joints[:, 75:] = 100.0
  joints[2, 75:] = 0  # actor 2 missing in frame 2
  out = tr.centre(joints)
  origin = np.float32([4, 5, 6])  # joint 2 (columns 3-5) of actor 1 at frame 1
  assert not out[0, :75].any()  # actor 1 absent: stays zero
  np.testing.assert_array_equal(out[1, :75], joints[1, :75] - np.tile(origin, 25))
  np.testing.assert_array_equal(out[:2, 75:], 100.0 - np.tile(origin, 25)[None].repeat(2, 0))
  assert not out[2, 75:].any()


def test_second_person_zero_or_duplicate_and_padding():
  joints = np.arange(2 * 75, dtype=np.float32).reshape(2, 75)
  zeros = tr.transform(joints, "zeros")
  dup = tr.transform(joints, "duplicate")
  centred = joints - np.tile(joints[0, 3:6], 25)
  np.testing.assert_array_equal(zeros, np.concatenate([centred, np.zeros_like(centred)], axis=1))
  np.testing.assert_array_equal(dup, np.concatenate([centred, centred], axis=1))
  two = np.ones((2, 150), np.float32)
  assert tr.two_persons(two, "duplicate") is two  # two actors: never duplicated
  padded = tr.pad(dup, 300)
  assert padded.shape == (300, 150) and not padded[2:].any()
  np.testing.assert_array_equal(padded[:2], dup)


def test_split_order_is_id_list_order_then_name_order():
  names = ["S001C001P002R001A001", "S001C002P001R001A001", "S001C003P003R001A001", "S002C002P001R001A002"]
  xview = tr.split_indices(names, tr.SPLITS[("ntu60", "xview")])  # train cameras [2, 3], test [1]
  assert xview["train"].tolist() == [1, 3, 2] and xview["test"].tolist() == [0]
  xsub = tr.split_indices(names, tr.SPLITS[("ntu60", "xsub")])  # train [1, 2, 4, ...], test [3, ...]
  assert xsub["train"].tolist() == [1, 3, 0] and xsub["test"].tolist() == [2]
  xset = tr.split_indices(names, tr.SPLITS[("ntu120", "xset")])  # train even setups, test odd
  assert xset["train"].tolist() == [3] and xset["test"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
  "dataset, split, train, test",
  [
    ("ntu60", "xsub", 40091, 16487),
    ("ntu60", "xview", 37646, 18932),
    ("ntu120", "xsub", 63026, 50919),
    ("ntu120", "xset", 54468, 59477),
  ],
)
def test_split_sizes_match_spec(dataset, split, train, test):
  names = sorted(set(all_names(tr.MAX_SETUP[dataset])) - set(MISSING))
  assert len(names) == {"ntu60": 56578, "ntu120": 113945}[dataset]  # SPEC §1.1
  indices = tr.split_indices(names, tr.SPLITS[(dataset, split)])
  assert (len(indices["train"]), len(indices["test"])) == (train, test)
  assert len(np.union1d(indices["train"], indices["test"])) == len(names)  # a partition


def test_split_rules():
  xsub120 = tr.SPLITS[("ntu120", "xsub")]
  assert len(xsub120.train) == 53 and len(xsub120.train) + len(xsub120.test) == 106
  assert tr.SPLITS[("ntu120", "xset")].train == tuple(range(2, 33, 2))
  assert tr.label_of("S018C001P008R001A061") == 60
